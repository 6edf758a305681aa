//! Messaging: WhatsApp sessions, messages in both directions, conversations
//! and the outbox that delivers sent messages exactly once in the normal
//! case (see [`crate::usecases::Dispatcher`] for the one unavoidable window).

mod content;
mod link;
mod message;
mod session;

pub use content::{Caption, FileName, MediaUrl, MessageText, OutboundMedia};
pub use link::{LinkAck, LinkEvent, LinkRequests, LinkUpdate, PairOutcome};
pub(crate) use message::strip_nul;
pub use message::{
    Conversation, ConversationQuery, DeliveryError, Direction, IdempotencyKey, InboundMessage,
    MediaInfo, Message, MessageContent, MessageStatus, ProviderEvent, SendMessage, StatusChange,
    StatusUpdate, WaId,
};
pub use session::{
    CloudApiSettings, LinkCode, LinkedAccount, ProviderKind, ProviderSettings, SecretString,
    Session, SessionName, SessionStatus,
};

/// The old name of [`DeliveryError`], kept so embedders can move to the new
/// one at their own pace.
#[deprecated(note = "renamed to `DeliveryError`")]
pub type MessageError = DeliveryError;
