//! # maveraa-domain
//!
//! The core of Maveraa, a self-hosted WhatsApp CRM: entities, validated value
//! types, the ports (traits) that adapters implement, and the use cases that
//! drive them.
//!
//! This crate knows nothing about HTTP, SQL or any WhatsApp provider. Other
//! Rust services embed it with their own adapters: implement the traits in
//! [`ports`] and hand them to the services in [`usecases`]. See
//! `examples/in_memory.rs` for a complete wiring with in-memory adapters.
//!
//! Invariants the types guarantee:
//! - a [`PhoneNumber`] is a valid international number, normalised to its
//!   digits with the country code (`6289876543210`);
//! - a [`ContactName`] is trimmed, non-empty and at most 200 characters;
//! - [`Labels`] are trimmed, non-empty, unique (case-insensitively) and in
//!   the order given, at most 50 of at most 50 characters each;
//! - a [`messaging::SendMessage`] can be sent: its text or media
//!   ([`messaging::MessageText`], [`messaging::OutboundMedia`]) was checked
//!   against WhatsApp's rules when it was parsed.

// Embedders read this crate through its docs: an undocumented public item
// fails the build.
#![deny(missing_docs)]

pub mod api_key;
pub mod clock;
pub mod contact;
pub mod error;
pub mod event;
pub mod ids;
pub mod messaging;
pub mod paging;
pub mod ports;
pub mod transport;
pub mod usecases;
pub mod user;
pub mod values;
pub mod web_session;
pub mod webhook;
pub mod workspace;

/// The value types under their old module name. Paths through it still
/// resolve, so embedders can move to [`values`] (or the crate root) at
/// their own pace.
#[deprecated(note = "renamed to `values`; the types are also at the crate root")]
pub mod validation {
    pub use crate::values::*;
}

pub use api_key::{ApiKey, ApiKeyHash, ApiKeySecret, AuthContext, KeyRateLimits};
pub use clock::{Clock, SystemClock};
pub use contact::{
    Contact, ContactPage, ContactPatch, ContactQuery, ContactStream, ImportAborted, ImportRow,
    ImportRows, ImportTally, ImportedContact, ImportedContacts, NewContact, OnDuplicate,
};
pub use error::{
    ApiKeyError, AuthError, ContactError, InboxError, MessagingError, RepositoryError,
    SessionError, UserError, WebhookError, WorkspaceError,
};
pub use event::{EVENT_TYPES, Event, EventQuery};
pub use ids::{
    ApiKeyId, ContactId, DeliveryId, IdParseError, MessageId, SessionId, UserId, WebhookId,
    WorkspaceId,
};
pub use paging::{
    ContactPosition, ConversationKey, ConversationPosition, MessagePosition, Page, PageStart,
    Position,
};
pub use user::{Email, Membership, Password, PasswordHash, Role, User};
pub use values::{
    ContactName, JID_SUFFIX, Label, Labels, PhoneNumber, ValidationError, WorkspaceName,
};
pub use web_session::{SessionPolicy, SignedIn, WebSession};
pub use webhook::{
    DeliveryPolicy, DeliveryQuery, DeliveryStatus, NewWebhook, WebhookDelivery, WebhookEndpoint,
    WebhookPatch, WebhookSecret,
};
pub use workspace::Workspace;
