//! Use cases: the operations Maveraa offers, written against the ports.

mod accounts;
mod api_keys;
mod contacts;
mod dispatcher;
mod events;
mod inbox;
mod messages;
mod sessions;
mod users;
mod webhooks;
mod workspaces;

pub use accounts::{AccountError, AccountPorts, AccountService};
pub use api_keys::ApiKeyService;
pub use contacts::ContactService;
pub use dispatcher::{DispatchCounts, Dispatcher, DispatcherSettings, RetryPolicy};
pub use events::{EventError, EventService};
pub use inbox::{InboxService, WebhookIntake};
pub use messages::{MessagingService, SendOutcome};
pub use sessions::SessionService;
pub use users::UserService;
pub use webhooks::{DEFAULT_ROLL_OVERLAP, DeliveryCounts, WebhookDispatcher, WebhookService};
pub use workspaces::WorkspaceService;
