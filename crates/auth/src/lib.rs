//! # maveraa-auth
//!
//! API keys: `mvr_live_` followed by 40 random base62 characters from the
//! operating system's RNG (about 238 bits). Only a digest is stored: SHA-256
//! of the key, or HMAC-SHA-256 keyed with a server-side pepper when one is
//! configured. Keys are high-entropy, so a fast digest is safe and lets the
//! request path verify a key with one hash and one indexed lookup; no
//! password hash (argon2) ever runs per request.
//!
//! Dashboard passwords: [`Argon2Passwords`], argon2id with OWASP's
//! parameters, on tokio's blocking pool, a bounded number at a time.

mod passwords;
mod tokens;

pub use passwords::Argon2Passwords;
pub use tokens::RandomTokens;

use hmac::{Hmac, Mac};
use maveraa_domain::ports::ApiKeyCodec;
use maveraa_domain::{ApiKeyHash, ApiKeySecret};
use sha2::{Digest, Sha256};

/// The prefix of every live key. It makes keys recognisable to secret
/// scanners and to people.
pub const KEY_PREFIX: &str = "mvr_live_";
/// Random characters in a new key.
pub const KEY_RANDOM_CHARS: usize = 40;
/// Fewest random characters a presented key may have (older or shorter
/// keys of the same scheme).
pub const MIN_RANDOM_CHARS: usize = 32;
/// Most random characters a presented key may have.
pub const MAX_RANDOM_CHARS: usize = 128;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuthCryptoError {
    /// The operating system's RNG failed.
    #[error("the system random number generator failed: {0}")]
    Rng(String),
}

/// Makes and hashes API keys.
#[derive(Clone)]
pub struct ApiKeyHasher {
    pepper: Option<Vec<u8>>,
}

impl std::fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyHasher")
            .field("peppered", &self.pepper.is_some())
            .finish()
    }
}

impl ApiKeyHasher {
    /// A hasher; with `pepper`, digests are HMAC-SHA-256 keyed with it (a
    /// stolen database then does not let anyone test guesses offline).
    /// Changing the pepper invalidates every key issued before.
    pub fn new(pepper: Option<&str>) -> Self {
        Self {
            pepper: pepper
                .filter(|p| !p.is_empty())
                .map(|p| p.as_bytes().to_vec()),
        }
    }

    /// A new random key.
    ///
    /// # Errors
    /// [`AuthCryptoError::Rng`] when the OS RNG fails.
    pub fn try_generate(&self) -> Result<(ApiKeySecret, ApiKeyHash), AuthCryptoError> {
        let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        key.push_str(KEY_PREFIX);
        let mut buf = [0u8; 64];
        while key.len() < KEY_PREFIX.len() + KEY_RANDOM_CHARS {
            getrandom::fill(&mut buf).map_err(|e| AuthCryptoError::Rng(e.to_string()))?;
            // Rejection sampling: 248 = 4 * 62, so accepted bytes are uniform mod 62.
            for b in buf.iter().filter(|b| **b < 248) {
                if key.len() == KEY_PREFIX.len() + KEY_RANDOM_CHARS {
                    break;
                }
                key.push(char::from(BASE62[usize::from(*b % 62)]));
            }
        }
        let hash = self.digest(&key);
        Ok((ApiKeySecret::new(key), hash))
    }

    fn digest(&self, key: &str) -> ApiKeyHash {
        let bytes: [u8; 32] = match &self.pepper {
            Some(pepper) => {
                // HMAC accepts keys of any length, so this cannot fail.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
                mac.update(key.as_bytes());
                mac.finalize().into_bytes().into()
            }
            None => Sha256::digest(key.as_bytes()).into(),
        };
        ApiKeyHash::from_bytes(bytes)
    }

    /// Whether `presented` has the shape of one of our keys.
    pub fn is_well_formed(presented: &str) -> bool {
        presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
            (MIN_RANDOM_CHARS..=MAX_RANDOM_CHARS).contains(&rest.len())
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }
}

impl ApiKeyCodec for ApiKeyHasher {
    fn generate(&self) -> (ApiKeySecret, ApiKeyHash) {
        // The OS RNG failing leaves no safe way to make a key; it does not
        // happen on supported systems, and key creation is an admin action.
        match self.try_generate() {
            Ok(pair) => pair,
            Err(err) => panic!("cannot generate an API key: {err}"),
        }
    }

    fn hash(&self, presented: &str) -> Option<ApiKeyHash> {
        Self::is_well_formed(presented).then(|| self.digest(presented))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let hasher = ApiKeyHasher::new(None);
        let (key, _) = hasher.generate();
        let text = key.expose();
        assert!(text.starts_with("mvr_live_"));
        assert_eq!(text.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(
            text[KEY_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        );
        assert!(ApiKeyHasher::is_well_formed(text));
    }

    #[test]
    fn keys_are_distinct_and_use_the_whole_alphabet() {
        let hasher = ApiKeyHasher::new(None);
        let mut seen = std::collections::HashSet::new();
        let mut chars = std::collections::HashSet::new();
        for _ in 0..500 {
            let (key, _) = hasher.generate();
            chars.extend(key.expose()[KEY_PREFIX.len()..].chars());
            assert!(seen.insert(key.expose().to_owned()));
        }
        assert_eq!(chars.len(), 62);
    }

    #[test]
    fn hash_matches_the_generated_hash() {
        for pepper in [None, Some("pepper")] {
            let hasher = ApiKeyHasher::new(pepper);
            let (key, hash) = hasher.generate();
            assert_eq!(hasher.hash(key.expose()), Some(hash));
        }
    }

    #[test]
    fn pepper_changes_the_digest() {
        let (key, plain) = ApiKeyHasher::new(None).generate();
        let peppered = ApiKeyHasher::new(Some("s3cret")).hash(key.expose());
        assert_ne!(peppered, Some(plain));
    }

    #[test]
    fn malformed_keys_are_not_hashed() {
        let hasher = ApiKeyHasher::new(None);
        for bad in [
            "",
            "mvr_live_",
            "mvr_live_short",
            "mvr_test_0123456789abcdefghijklmnopqrstuvwxyz",
            "mvr_live_0123456789abcdefghijklmnopqrstuv-xyz",
            "Bearer mvr_live_0123456789abcdefghijklmnopqrstuvwxyz",
        ] {
            assert_eq!(hasher.hash(bad), None, "{bad}");
        }
        assert!(
            hasher
                .hash("mvr_live_0123456789abcdefghijklmnopqrstuv")
                .is_some()
        );
    }
}
