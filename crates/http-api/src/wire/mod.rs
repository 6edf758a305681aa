//! Wire types: the JSON the API reads and writes, one module per resource,
//! and the conversions between them and the domain's types, which map each
//! field to the domain's `parse` for it (the rules live there). Handlers
//! use these, so that no handler module needs another.
//!
//! Field names are the reference API's (`_id`, `createdAt`...). Contact and
//! conversation lists, the largest bodies, are written by hand
//! (`json_writer`); the rest by serde.

pub mod contact_import;
pub mod contacts;
pub mod csv_reader;
pub mod events;
pub mod health;
pub mod inbox;
pub mod messages;
pub mod sessions;
pub mod webhooks;

use chrono::{DateTime, Utc};

use crate::timefmt::Rfc3339;

/// A timestamp on the wire: RFC 3339 in UTC with microseconds, as stored
/// (`2023-10-01T12:05:00.123456Z`), so that passing an item's `timestamp` as
/// `before` pages on exactly where the page ended.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    Rfc3339::micros(t).as_str().to_owned()
}
