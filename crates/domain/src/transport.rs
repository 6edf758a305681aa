//! The WhatsApp transport port: how a message leaves for a provider.
//! Implemented by `maveraa-whatsapp-transport` (Meta's Cloud API, and a
//! simulator).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::messaging::{MessageText, OutboundMedia};
use crate::values::PhoneNumber;

/// The kinds of media a message can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A picture (JPEG, PNG).
    Image,
    /// Any file, shown with its file name.
    Document,
    /// A sound or voice note.
    Audio,
    /// A video.
    Video,
}

impl MediaKind {
    /// The name used on the wire (`image`, `document`, `audio`, `video`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(Self::Image),
            "document" => Some(Self::Document),
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            _ => None,
        }
    }

    /// Whether WhatsApp shows a caption with this kind (audio has none).
    pub fn allows_caption(self) -> bool {
        !matches!(self, Self::Audio)
    }

    /// Whether this kind carries a file name (documents only).
    pub fn allows_file_name(self) -> bool {
        matches!(self, Self::Document)
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundContent {
    /// Plain text.
    Text {
        /// The text.
        body: MessageText,
    },
    /// Media fetched by the provider from a public URL.
    Media(OutboundMedia),
}

/// A message to hand to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The recipient.
    pub to: PhoneNumber,
    /// What to send.
    pub content: OutboundContent,
}

/// Why a provider did not take a message (or a read receipt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The provider could not be reached at all: a connection failure or a
    /// timeout. Worth trying again later; the session is `disconnected`
    /// meanwhile.
    #[error("unreachable: {reason}")]
    Unreachable {
        /// What happened, for logs and the session's last error.
        reason: String,
    },
    /// The provider answered but asked to try again later: `429` or a
    /// `5xx`. `retry_after` is the provider's own advice, when it gave one.
    #[error("retryable: {reason}")]
    Retryable {
        /// What happened, for logs and the message's status history.
        reason: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help: the provider refused the request
    /// (other `4xx`), with its own error code and message kept.
    #[error("permanent: {message}")]
    Permanent {
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
    /// The provider refused the session's credentials (an expired or
    /// revoked token, a logged-out device): no message of the session can
    /// go until they are renewed. The message fails and the session turns
    /// `failed`.
    #[error("credentials refused: {message}")]
    CredentialsRefused {
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
}

/// Sends messages through one WhatsApp number (one session) of a provider.
#[async_trait]
pub trait WhatsAppTransport: Send + Sync + 'static {
    /// Hands `message` to the provider and returns the provider's id for it.
    ///
    /// # Errors
    /// [`TransportError::Retryable`] or [`TransportError::Permanent`] as
    /// described on each variant.
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError>;

    /// Tells the provider that the inbound message `provider_message_id`
    /// was read (blue ticks). Providers without read receipts return `Ok`.
    ///
    /// # Errors
    /// As [`WhatsAppTransport::send`].
    async fn mark_read(&self, provider_message_id: &str) -> Result<(), TransportError>;
}
