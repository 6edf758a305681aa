//! End-to-end tests: the real server on a free port, a real PostgreSQL
//! database per test, and an HTTP client. One binary for all of them.

mod auth;
mod browser;
mod browser_dashboard;
mod browser_docs;
mod cli;
mod contacts;
mod contacts_import;
mod contacts_stream;
mod dashboard;
mod dispatch;
mod errors;
mod events;
mod faults;
mod helpers;
mod linked_sessions;
mod messaging;
mod metrics;
mod pace;
mod paging;
mod rate_limits;
mod secrets;
mod service;
mod users;
mod webhook_endpoints;
mod webhooks;
mod whatsapp_rust_fake;
