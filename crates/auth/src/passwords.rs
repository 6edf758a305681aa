//! Passwords: argon2id with OWASP's current parameters (19 MiB, 2 passes,
//! 1 lane), hashed and checked on tokio's blocking pool, at most a few at
//! a time, never on the async executor.

use std::sync::Arc;

use argon2::password_hash::{
    PasswordHash as Phc, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use maveraa_domain::ports::PasswordHasher;
use maveraa_domain::{Password, PasswordHash};
use tokio::sync::Semaphore;

/// OWASP's argon2id minimum: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// Hashes and checks passwords with argon2id.
#[derive(Debug, Clone)]
pub struct Argon2Passwords {
    /// Turns on the blocking pool: each hash holds 19 MiB and a core for
    /// tens of milliseconds, so a burst of sign-ins queues here instead of
    /// taking every core and hundreds of megabytes.
    turns: Arc<Semaphore>,
}

impl Argon2Passwords {
    /// At most `concurrent` hashes at once (at least 1).
    pub fn new(concurrent: usize) -> Self {
        Self {
            turns: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    fn argon2() -> Result<Argon2<'static>, String> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|e| e.to_string())?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Runs `work` on the blocking pool, in turn.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|_| "the password pool is closed".to_owned())?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| format!("password task failed: {e}"))?
    }
}

#[async_trait]
impl PasswordHasher for Argon2Passwords {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, String> {
        let password = password.clone();
        self.run(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            let phc = Self::argon2()?
                .hash_password(password.expose().as_bytes(), &salt)
                .map_err(|e| e.to_string())?;
            Ok(PasswordHash::new(phc.to_string()))
        })
        .await
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, String> {
        let (password, hash) = (password.clone(), hash.clone());
        self.run(move || {
            let phc =
                Phc::new(hash.as_str()).map_err(|e| format!("unreadable password hash: {e}"))?;
            // The parameters come from the stored hash, so hashes made with
            // older parameters still verify.
            match Argon2::default().verify_password(password.expose().as_bytes(), &phc) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_salted_argon2id_hash_only() {
        let hasher = Argon2Passwords::new(2);
        let right = Password::parse("password", "correct horse battery").expect("ok");
        let wrong = Password::parse("password", "correct horse battery!").expect("ok");
        let hash = hasher.hash(&right).await.expect("hash");
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "OWASP's parameters: {}",
            hash.as_str()
        );
        assert!(hasher.verify(&right, &hash).await.expect("verify"));
        assert!(!hasher.verify(&wrong, &hash).await.expect("verify"));
        let again = hasher.hash(&right).await.expect("hash");
        assert_ne!(again, hash, "a new salt each time");
        assert!(
            hasher
                .verify(&right, &PasswordHash::new("not a hash".into()))
                .await
                .is_err()
        );
    }
}
