//! # maveraa-storage
//!
//! PostgreSQL adapters (diesel 2) for the ports of `maveraa-domain`, the
//! embedded migrations, and a bootstrapper that runs a project-local
//! PostgreSQL for development and tests.
//!
//! Every query runs on a blocking thread through [`Database::run`]; nothing
//! here blocks an async executor.

mod api_keys;
mod columns;
mod contact_filters;
mod contact_import;
mod contact_stream;
mod contacts;
mod device_state;
mod error;
mod events;
mod gauges;
mod keyset;
pub mod local_pg;
mod message_repository;
mod messages;
mod migrate;
mod openssl_exit;
mod outbox;
mod pool;
mod private_file;
mod revocations;
mod schema;
mod sealing;
pub mod secrets;
mod send_batch;
mod session_links;
mod session_names;
mod sessions;
mod sql;
mod store;
mod users;
mod web_sessions;
mod webhook_queue;
mod webhooks;
mod workspaces;

#[cfg(feature = "test-support")]
pub mod testing;

pub use error::StorageError;
pub use gauges::StoreGauges;
pub use local_pg::LocalPostgres;
pub use migrate::{MIGRATIONS, run_migrations};
pub use outbox::UNREADABLE_CODE;
pub use pool::{Database, PoolSettings};
pub use revocations::{
    CHANNEL as REVOCATION_CHANNEL, RevocationEvent, RevocationListener, spawn_revocation_listener,
};
pub use sealing::{SealReport, seal_sessions};
pub use secrets::{SecretCipher, SecretError, SecretKey};
pub use store::PgStore;
