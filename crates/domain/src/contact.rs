//! Contacts: the people a workspace talks to on WhatsApp.

use chrono::{DateTime, Utc};

use futures_util::stream::BoxStream;

use crate::error::RepositoryError;
use crate::ids::{ContactId, WorkspaceId};
use crate::paging::ContactPosition;
use crate::values::{ContactName, Labels, PhoneNumber};

/// A contact of a workspace. Its phone number is unique within the
/// workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Its identifier (the API's `_id`).
    pub id: ContactId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: ContactName,
    /// Its phone number, unique within the workspace.
    pub phone: PhoneNumber,
    /// Its labels.
    pub labels: Labels,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// A validated request to create a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// The name.
    pub name: ContactName,
    /// The phone number.
    pub phone: PhoneNumber,
    /// The labels (may be empty).
    pub labels: Labels,
}

/// A validated partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactPatch {
    /// A new name.
    pub name: Option<ContactName>,
    /// A new phone number.
    pub phone: Option<PhoneNumber>,
    /// New labels, replacing the old ones (empty clears them).
    pub labels: Option<Labels>,
}

impl ContactPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.phone.is_none() && self.labels.is_none()
    }
}

/// Which contacts to list. Results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Page size; `None` returns every matching contact.
    pub limit: Option<u32>,
    /// How many matching contacts to skip.
    pub offset: u64,
    /// Start just after this contact (keyset paging): the page is read
    /// through the `(created_at, id)` index, whatever its depth. Needs a
    /// `limit`, and excludes `offset`.
    pub after: Option<ContactPosition>,
    /// Case-insensitive substring of the name, or digits of the phone.
    pub search: Option<String>,
    /// Only contacts that have this label (compared case-insensitively).
    pub label: Option<String>,
}

impl ContactQuery {
    /// Largest page size accepted.
    pub const MAX_LIMIT: u32 = 1000;

    /// Whether no filter narrows the workspace's contacts.
    pub fn is_unfiltered(&self) -> bool {
        self.search.is_none() && self.label.is_none()
    }
}

/// Every contact a query matches, as storage reads them: how many there
/// are, known before the first contact, then the contacts in batches, newest
/// first. Dropping it stops the reading (storage frees what it held).
pub struct ContactStream {
    /// How many contacts match in all, counted in the same snapshot as
    /// the contacts the batches carry.
    pub total: u64,
    /// The contacts, a batch at a time. It ends after the last one; an
    /// error (storage failed midway) is its last item. A stream that ends
    /// without an error has carried every matching contact.
    pub batches: BoxStream<'static, Result<Vec<Contact>, RepositoryError>>,
}

impl std::fmt::Debug for ContactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactStream")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// One page of contacts and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPage {
    /// Every contact that matches the filter, not only this page.
    pub total: u64,
    /// The contacts of this page, newest first.
    pub contacts: Vec<Contact>,
    /// Where the next page starts (the last contact of this one) when
    /// more contacts match; `None` on the last page and for a list
    /// without `limit`.
    pub next: Option<ContactPosition>,
}
