//! Random tokens for dashboard sessions, their CSRF tokens and setup
//! links: 32 bytes from the operating system's RNG, as 64 hex digits; only
//! their SHA-256 is stored.

use maveraa_domain::ports::TokenCodec;
use sha2::{Digest, Sha256};

/// Makes and hashes random tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomTokens;

impl TokenCodec for RandomTokens {
    fn generate(&self) -> (String, String) {
        let mut bytes = [0u8; 32];
        // The OS RNG failing is not something a server can go on without;
        // getrandom only fails on platforms we do not run on.
        if let Err(e) = getrandom::fill(&mut bytes) {
            panic!("the system random number generator failed: {e}");
        }
        let token = hex::encode(bytes);
        let hash = self.hash(&token);
        (token, hash)
    }

    fn hash(&self, token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = RandomTokens.generate();
        let (b, _) = RandomTokens.generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(RandomTokens.hash(&a), ha);
        assert_ne!(ha, a);
    }
}
