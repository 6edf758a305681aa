//! Ports: what the use cases need from the outside world. Adapters (the
//! PostgreSQL store, the key hasher, the providers, test fakes) implement
//! these traits; a guarantee a port states is the adapter's to keep, so no
//! port method has a default that would quietly drop it.
//!
//! Every repository method confines itself to the workspace it is given:
//! an id of another workspace behaves exactly like an unknown id.

mod crm;
mod device_state;
mod links;
mod media;
mod messaging;
mod outbox;
mod provider;
mod webhooks;

pub use crate::clock::Clock;
pub use crm::{
    ApiKeyCodec, ApiKeyRepository, ConditionalUpdate, ContactRepository, EventLog, HealthCheck,
    PasswordHasher, TokenCodec, UserRepository, WebSessionRepository, WorkspaceRepository,
};
pub use device_state::{DeviceStateEntry, DeviceStateStore};
pub use links::{Link, LinkConnection, LinkEngine, LinkEventStream, SessionLinks};
pub use media::{MediaError, MediaFile, MediaSource};
pub use messaging::{EnqueueOutcome, MessageRepository, SessionRepository};
pub use outbox::{Claim, DispatchOutcome, Outbox, OutboxJob, SessionPace};
pub use provider::{
    AccountEvents, ProviderEventSink, TransportError, TransportFactory, WebhookProtocol,
    WebhookRefusal, WebhookRequest, WhatsAppTransport,
};
pub use webhooks::{WebhookPoster, WebhookQueue, WebhookRepository};
