//! Fetching received media from the provider that holds it.

use async_trait::async_trait;

use crate::messaging::{MediaInfo, Session};

/// A media file fetched from its provider.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// Its bytes, decrypted.
    pub bytes: Vec<u8>,
    /// Its MIME type, as the provider gives it.
    pub mime_type: Option<String>,
}

impl std::fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFile")
            .field("len", &self.bytes.len())
            .field("mime_type", &self.mime_type)
            .finish()
    }
}

/// Why media could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The provider no longer has it (expired or deleted), or never kept
    /// it for this session's provider: trying again will not help.
    #[error("the media is no longer available: {reason}")]
    Gone {
        /// What the provider said.
        reason: String,
    },
    /// It is larger than this server fetches.
    #[error("the media is larger than {limit_bytes} bytes")]
    TooLarge {
        /// The limit.
        limit_bytes: u64,
    },
    /// The provider could not be reached or failed; trying later may work.
    #[error("the media could not be fetched: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
}

/// Fetches the media of received messages from the provider of their
/// session.
#[async_trait]
pub trait MediaSource: Send + Sync {
    /// The file of `media`, received on `session`.
    ///
    /// # Errors
    /// [`MediaError`].
    async fn fetch(&self, session: &Session, media: &MediaInfo) -> Result<MediaFile, MediaError>;
}
