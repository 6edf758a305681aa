//! Dashboard users against a real PostgreSQL: one account per email
//! whatever its case, even when created at once, with its membership.

use std::sync::Arc;

use maveraa_domain::ports::PasswordHasher;
use maveraa_domain::usecases::UserService;
use maveraa_domain::{Email, Password, PasswordHash, Role, SystemClock, UserError};
use maveraa_storage::testing::{fixture, workspace};

/// A stand-in for argon2 (tested in maveraa-auth): reversible, instant.
struct PlainHasher;

#[async_trait::async_trait]
impl PasswordHasher for PlainHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, String> {
        Ok(PasswordHash::new(format!("plain:{}", password.expose())))
    }
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, String> {
        Ok(hash.as_str() == format!("plain:{}", password.expose()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_per_email_whatever_its_case_even_created_at_once() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let users = UserService::new(
        f.store.clone(),
        f.store.clone(),
        Arc::new(PlainHasher),
        Arc::new(SystemClock),
    );
    let password = Password::parse("password", "long enough password").expect("password");
    let attempts: Vec<_> = [
        "jane@example.com",
        "JANE@example.com",
        "Jane@Example.com",
        "jane@EXAMPLE.COM",
    ]
    .into_iter()
    .cycle()
    .take(8)
    .map(|e| {
        let (users, password) = (users.clone(), password.clone());
        let email = Email::parse("email", e).expect("email");
        tokio::spawn(async move { users.create(email, &password, ws, Role::Member).await })
    })
    .collect();
    let mut created = Vec::new();
    for a in attempts {
        match a.await.expect("task") {
            Ok(user) => created.push(user),
            Err(UserError::Duplicate) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one account");
    assert_eq!(created[0].email.as_str(), "jane@example.com");
    assert_eq!(f.count("SELECT count(*) AS n FROM users"), 1);
    assert_eq!(f.count("SELECT count(*) AS n FROM memberships"), 1);
    let memberships = users.memberships(created[0].id).await.expect("memberships");
    assert_eq!(memberships[0].role, Role::Member);
    let email = Email::parse("email", "JANE@EXAMPLE.COM").expect("email");
    assert_eq!(
        users.verify(&email, &password).await.map(|u| u.id),
        Ok(created[0].id)
    );
}
