//! # maveraa-server
//!
//! The `maveraa` binary's library: configuration ([`settings`]), wiring
//! ([`app`]) and the admin commands ([`cli`]). `main.rs` only parses the
//! command line and calls [`cli::run`].

pub mod app;
pub mod cli;
pub mod dev_provider;
pub mod metrics;
pub mod settings;
pub mod telemetry;

pub use app::{Application, Services, StopHandle};
pub use settings::Settings;
