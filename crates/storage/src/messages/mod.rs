//! Messages, their status history and conversations, in SQL.
//!
//! The multi-table writes are single statements with data-modifying CTEs:
//! one round trip, atomic without an explicit transaction, and kept
//! prepared (see [`crate::sql`]).
//!
//! Nothing here knows `PgStore`: `send_batch` (which the store owns) uses
//! [`enqueue`], and `message_repository` puts these together into the
//! domain's `MessageRepository` port, so the modules' imports form no
//! circle.

pub(crate) mod conversations;
pub(crate) mod enqueue;
pub(crate) mod inbound;
pub(crate) mod reports;
pub(crate) mod retry;
pub(crate) mod rows;
pub(crate) mod sent;
pub(crate) mod status;
