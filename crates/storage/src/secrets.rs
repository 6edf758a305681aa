//! Secrets at rest: values sealed with XChaCha20-Poly1305 under a key from
//! configuration. Each sealed value names its key's id, so a key can be
//! rotated: values are opened with whichever configured key they name and
//! sealed again under the current one (see `rotation`).
//!
//! A sealed value is the text `mvs1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! a 24-byte random nonce (safe to pick at random at this size), and as
//! associated data `mvs1:<key id>:<context>`, where the context names the
//! value's place (`sessions/<uuid>/access_token`), so a sealed value copied
//! to another row or field does not open there.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::private_file::create_private;

/// The format tag that starts every sealed value.
const FORMAT: &str = "mvs1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Why a secret could not be sealed or opened, or a key not loaded. Never
/// carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The value names a key that is not configured.
    #[error(
        "sealed under key {key_id}, which is not configured (give it as secrets.key, or in \
         secrets.previous_keys / secrets.previous_key_files until `maveraa secrets rotate` has run)"
    )]
    UnknownKey {
        /// The id the value names.
        key_id: String,
    },
    /// The key the value names did not open it: the configured key with
    /// that id is not the one that sealed it, or the value was altered.
    #[error(
        "cannot be decrypted with key {key_id}: the value was altered or is not for this place"
    )]
    Undecryptable {
        /// The id the value names.
        key_id: String,
    },
    /// The text is not a sealed value.
    #[error("not a sealed value ({0})")]
    Malformed(&'static str),
    /// No key is configured where one is needed.
    #[error("no secrets key is configured")]
    NoKey,
    /// A key's text is not 32 bytes in base64 or hex.
    #[error("invalid secrets key: {0}")]
    InvalidKey(String),
    /// A key file could not be read or written.
    #[error("secrets key file {}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// One 256-bit key and its id. `Debug` shows the id only; the key bytes
/// live inside the cipher, which wipes them when dropped.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(bytes)
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        // The id is a fingerprint, not the key: 64 bits of a domain-separated
        // SHA-256, enough to tell a handful of keys apart, useless to guess
        // a 256-bit key from.
        let digest = Sha256::new()
            .chain_update(b"maveraa secrets key id v1\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: hex::encode(&digest[..8]),
            cipher: XChaCha20Poly1305::new(&(*bytes).into()),
        }
    }

    /// A key from its text: 32 bytes as 64 hex digits, or as base64
    /// (standard or URL-safe, with or without padding). Surrounding
    /// whitespace is ignored.
    ///
    /// # Errors
    /// [`SecretError::InvalidKey`], saying what was wrong but not echoing it.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let decoded = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
        };
        let mut decoded =
            Zeroizing::new(decoded.ok_or_else(|| {
                SecretError::InvalidKey("neither base64 nor 64 hex digits".into())
            })?);
        let mut bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            SecretError::InvalidKey(format!(
                "{} bytes, where 32 are needed (generate one with `maveraa secrets generate-key` \
                 or `openssl rand -base64 32`)",
                decoded.len()
            ))
        })?;
        decoded.zeroize();
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// A new random key, and its text (base64) to keep.
    ///
    /// # Errors
    /// [`SecretError::Random`] when the OS cannot give randomness.
    pub fn generate() -> Result<(Self, Zeroizing<String>), SecretError> {
        let mut bytes = random::<KEY_LEN>()?;
        let text = Zeroizing::new(STANDARD.encode(bytes));
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        Ok((key, text))
    }

    /// The key in the file at `path` (its text as [`SecretKey::parse`]
    /// takes it).
    ///
    /// # Errors
    /// [`SecretError::KeyFile`] when it cannot be read or holds no key.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let file_err = |reason: String| SecretError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?);
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the secrets key file can be read by other users: chmod 600 it");
        }
        Self::parse(&text).map_err(|e| file_err(e.to_string()))
    }

    /// The key in the file at `path`, created (mode 0600, a new random key)
    /// when there is none; also says whether it was created. Safe when
    /// several processes start at once: the file appears whole and only
    /// once (written beside it, then hard-linked into place, which never
    /// replaces a file), and every process uses the one that won.
    ///
    /// # Errors
    /// [`SecretError::KeyFile`] when it can be neither read nor created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretError> {
        if path.exists() {
            return Ok((Self::from_file(path)?, false));
        }
        let file_err = |reason: String| SecretError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| file_err(format!("cannot create its folder: {e}")))?;
        }
        let (_, text) = Self::generate()?;
        match create_private(path, &text, None) {
            Ok(true) => Ok((Self::from_file(path)?, true)),
            // Another process created it first: use theirs.
            Ok(false) => Ok((Self::from_file(path)?, false)),
            Err(e) => Err(file_err(format!("cannot create it: {e}"))),
        }
    }

    /// The key's id, as sealed values name it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value opened: the plaintext (wiped when dropped) and the id of
/// the key that sealed it.
pub struct Opened {
    /// The secret.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key that sealed it.
    pub key_id: String,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Seals secrets under the current key and opens them under any configured
/// key (the current one, or a previous one kept until rotation has run).
/// Cheap to clone. What the WhatsApp Web device keys will be stored with
/// too: [`SecretCipher::seal`] takes any bytes.
#[derive(Clone)]
pub struct SecretCipher {
    keys: Arc<[SecretKey]>,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(SecretKey::id).collect();
        f.debug_struct("SecretCipher")
            .field("key_ids", &ids)
            .finish()
    }
}

impl SecretCipher {
    /// Seals under `current`; opens under it or any of `previous`.
    pub fn new(current: SecretKey, previous: impl IntoIterator<Item = SecretKey>) -> Self {
        let mut keys = vec![current];
        for key in previous {
            if keys.iter().all(|k| k.id != key.id) {
                keys.push(key);
            }
        }
        Self { keys: keys.into() }
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plaintext` for the place `context` (the same context opens it).
    ///
    /// # Errors
    /// [`SecretError::Random`] when no nonce can be drawn.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SecretError> {
        let key = &self.keys[0];
        let nonce_bytes = random::<NONCE_LEN>()?;
        let aad = format!("{FORMAT}:{}:{context}", key.id);
        let ciphertext = key
            .cipher
            .encrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Malformed("too long to seal"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(format!(
            "{FORMAT}:{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a value [`SecretCipher::seal`] made for `context`.
    ///
    /// # Errors
    /// [`SecretError::UnknownKey`] when its key is not configured,
    /// [`SecretError::Undecryptable`] when that key does not open it,
    /// [`SecretError::Malformed`] when it is not a sealed value.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Opened, SecretError> {
        let (key_id, body) = sealed_parts(sealed)?;
        let key =
            self.keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or_else(|| SecretError::UnknownKey {
                    key_id: key_id.to_owned(),
                })?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Malformed("not base64url"))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed("too short"));
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SecretError::Malformed("too short"))?;
        let aad = format!("{FORMAT}:{key_id}:{context}");
        let plaintext = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Undecryptable {
                key_id: key_id.to_owned(),
            })?;
        Ok(Opened {
            plaintext: Zeroizing::new(plaintext),
            key_id: key_id.to_owned(),
        })
    }
}

/// The key id a sealed value names, and its body.
fn sealed_parts(sealed: &str) -> Result<(&str, &str), SecretError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT), Some(id), Some(body)) if !id.is_empty() => Ok((id, body)),
        (Some(FORMAT), ..) => Err(SecretError::Malformed("no key id")),
        _ => Err(SecretError::Malformed("unknown format")),
    }
}

/// The id of the key a sealed value names.
///
/// # Errors
/// [`SecretError::Malformed`] when it is not a sealed value.
pub fn sealed_key_id(sealed: &str) -> Result<&str, SecretError> {
    sealed_parts(sealed).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; KEY_LEN])
    }

    #[test]
    fn sealed_values_open_under_their_key_and_context_only() {
        let cipher = SecretCipher::new(key(1), []);
        let sealed = cipher
            .seal(b"EAAtoken", "sessions/1/access_token")
            .expect("seal");
        assert!(sealed.starts_with(&format!("mvs1:{}:", cipher.current_key_id())));
        assert!(!sealed.contains("EAAtoken"));
        let opened = cipher
            .open(&sealed, "sessions/1/access_token")
            .expect("open");
        assert_eq!(opened.plaintext.as_slice(), b"EAAtoken");
        // Two seals of one secret differ (a fresh nonce each).
        assert_ne!(
            sealed,
            cipher
                .seal(b"EAAtoken", "sessions/1/access_token")
                .expect("seal")
        );
        // Moved to another field or row, it does not open.
        assert!(matches!(
            cipher.open(&sealed, "sessions/2/access_token"),
            Err(SecretError::Undecryptable { .. })
        ));
        // Altered, it does not open.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert!(matches!(
            cipher.open(&altered, "sessions/1/access_token"),
            Err(SecretError::Undecryptable { .. })
        ));
    }

    #[test]
    fn another_key_reports_the_unknown_key_id_not_garbage() {
        let sealed = SecretCipher::new(key(1), [])
            .seal(b"secret", "ctx")
            .expect("seal");
        let other = SecretCipher::new(key(2), []);
        let err = other.open(&sealed, "ctx").expect_err("wrong key");
        assert!(
            matches!(&err, SecretError::UnknownKey { key_id } if key_id == key(1).id()),
            "{err}"
        );
        // With the old key as a previous one, it opens and names that key.
        let rotated = SecretCipher::new(key(2), [key(1)]);
        let opened = rotated.open(&sealed, "ctx").expect("previous key opens");
        assert_eq!(opened.key_id, key(1).id());
        assert_ne!(rotated.current_key_id(), key(1).id());
    }

    #[test]
    fn keys_parse_from_base64_or_hex_and_never_print() {
        let bytes = [7u8; KEY_LEN];
        let b64 = STANDARD.encode(bytes);
        let hexed = hex::encode(bytes);
        let a = SecretKey::parse(&format!("  {b64}\n")).expect("base64");
        let b = SecretKey::parse(&hexed).expect("hex");
        let c = SecretKey::parse(&URL_SAFE_NO_PAD.encode(bytes)).expect("base64url");
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id(), c.id());
        for shown in [
            format!("{a:?}"),
            format!("{:?}", SecretCipher::new(a.clone(), [b])),
        ] {
            assert!(!shown.contains(&b64), "{shown}");
            assert!(!shown.contains(&hexed), "{shown}");
            assert!(!shown.contains(&b64[..12]), "{shown}");
            assert!(shown.contains(a.id()), "{shown}");
        }
        let short = SecretKey::parse(&STANDARD.encode([1u8; 16])).expect_err("16 bytes");
        assert!(short.to_string().contains("16 bytes"), "{short}");
        assert!(SecretKey::parse("not a key!").is_err());
    }

    #[test]
    fn a_key_file_is_created_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("maveraa-keyfile-{}", uuid::Uuid::new_v4()));
        let path = dir.join("secrets.key");
        let (first, created) = SecretKey::load_or_create(&path).expect("create");
        assert!(created);
        let mode = fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = SecretKey::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(first.id(), again.id());
        let _ = fs::remove_dir_all(dir);
    }
}
