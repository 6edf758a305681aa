//! Keyset paging: where a page of a newest-first list starts.
//!
//! A list ordered by a time and a key (newest first) is paged by the last
//! row's [`Position`]: the next page holds the rows strictly after it in
//! that order. Unlike an offset, a position stays right when rows are
//! inserted or deleted between two pages, and storage reaches it through
//! its index at the same cost at any depth. How a position is written for
//! clients (an opaque cursor) is the API adapter's business.

use chrono::{DateTime, Utc};

use crate::ids::{ContactId, MessageId, SessionId};
use crate::messaging::WaId;

/// A row's place in a newest-first list: its sort time and the key that
/// orders rows of equal time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position<K> {
    /// The row's sort time (microseconds, storage's precision).
    pub at: DateTime<Utc>,
    /// The row's tie-breaking key.
    pub key: K,
}

/// A contact's place in the contact list: `(created_at, id)`.
pub type ContactPosition = Position<ContactId>;

/// A message's place in a conversation's history: `(created_at, id)`.
pub type MessagePosition = Position<MessageId>;

/// A conversation's place in the conversation list: `(last_message_at,
/// session, remote)`.
pub type ConversationPosition = Position<ConversationKey>;

/// What orders conversations with the same `last_message_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationKey {
    /// The conversation's session.
    pub session: SessionId,
    /// The conversation's contact.
    pub remote: WaId,
}

/// Where a page of a time-ordered list starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PageStart<K> {
    /// At the newest row.
    #[default]
    Newest,
    /// At the newest row strictly older than this time. Such a page never
    /// ends inside a group of rows with one time (it holds the whole
    /// group, so it may be longer than its limit): the next page, asked
    /// for with the last row's time, misses none of them.
    Before(DateTime<Utc>),
    /// Just after this position: exactly the limit's rows, never more.
    After(Position<K>),
}

/// A page of a list and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, K> {
    /// The rows of this page, newest first.
    pub items: Vec<T>,
    /// The position of this page's last row when more rows follow it;
    /// `None` on the last page.
    pub next: Option<Position<K>>,
}
