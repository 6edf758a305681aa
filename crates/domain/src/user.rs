//! Dashboard users: people who sign in with an email and a password, and
//! the workspaces they belong to.

use chrono::{DateTime, Utc};

use crate::ids::{UserId, WorkspaceId};
use crate::values::ValidationError;

/// An email address, trimmed and lower-cased: one person, one account,
/// whatever case they type it in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321's path limit).
    pub const MAX_CHARS: usize = 254;

    /// Parses an address: one `@`, a local part and a domain with a dot,
    /// no spaces or control characters.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` otherwise.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let email = input.trim().to_lowercase();
        let invalid = || ValidationError::new(field, "is not an email address");
        if email.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        if email.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// Wraps an address read back from storage.
    pub fn from_trusted(email: String) -> Self {
        Self(email)
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: never trimmed, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Shortest password accepted (OWASP's minimum for a password that is
    /// the only factor is 8; we ask a little more).
    pub const MIN_CHARS: usize = 10;
    /// Longest accepted: long enough for passphrases, short enough that
    /// hashing it costs nothing extra.
    pub const MAX_CHARS: usize = 256;

    /// Checks a password's length (characters, not bytes).
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when it is too short or too long.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let n = input.chars().count();
        if n < Self::MIN_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The password, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A stored password hash (a PHC string, such as `$argon2id$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl PasswordHash {
    /// Wraps a hash made by a hasher or read from storage.
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages members, keys and sessions.
    Owner,
    /// Works with contacts and conversations.
    Member,
}

impl Role {
    /// `owner` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    /// Reads `owner` or `member`.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` for anything else.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        match input.trim() {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            _ => Err(ValidationError::new(field, "must be owner or member")),
        }
    }
}

/// A dashboard user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its identifier.
    pub id: UserId,
    /// Its sign-in address, unique.
    pub email: Email,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A user's place in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The user.
    pub user_id: UserId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// What the user may do there.
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_folded_and_checked() {
        let e = Email::parse("email", "  Jane.Doe@Example.COM ").expect("ok");
        assert_eq!(e.as_str(), "jane.doe@example.com");
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
            "jane@.com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_kept_as_typed_and_never_printed() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", &"x".repeat(257)).is_err());
        let p = Password::parse("password", "  correct horse  ").expect("ok");
        assert_eq!(p.expose(), "  correct horse  ");
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(
            format!("{:?}", PasswordHash::new("$argon2id$x".into())),
            "PasswordHash(***)"
        );
    }
}
