//! What leaves for a provider: the outbound message and its media kinds.
//! The port that carries it, [`WhatsAppTransport`], and its
//! [`TransportError`] live with the other provider ports in
//! [`crate::ports`]; they are re-exported here for existing paths.

use std::fmt;

use crate::ids::MessageId;
use crate::messaging::{MessageText, OutboundMedia};
use crate::values::{PhoneNumber, ValidationError};

pub use crate::ports::{TransportError, WhatsAppTransport};

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

    /// Parses the kind a client names in `field` (surrounding spaces
    /// ignored).
    ///
    /// # Errors
    /// "is required" when blank; the list of kinds for any other name.
    pub fn parse_field(field: &str, input: &str) -> Result<Self, ValidationError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        Self::parse(name).ok_or_else(|| {
            ValidationError::new(field, "must be one of image, document, audio or video")
        })
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
    /// Our id of the message, for a provider that can carry it with the
    /// message and echo it in its status reports: that is how an attempt
    /// whose outcome is unknown is settled without sending again. `None`
    /// when there is no stored message behind the send.
    pub message_id: Option<MessageId>,
}
