//! Use cases: the operations Maveraa offers, written against the ports.

mod api_keys;
mod contacts;
mod workspaces;

pub use api_keys::ApiKeyService;
pub use contacts::ContactService;
pub use workspaces::WorkspaceService;
