//! Contacts: the people a workspace talks to on WhatsApp.

use chrono::{DateTime, Utc};

use futures_util::stream::BoxStream;

use crate::error::RepositoryError;
use crate::ids::{ContactId, WorkspaceId};
use crate::paging::ContactPosition;
use crate::values::{ContactName, Labels, PhoneNumber, ValidationError};

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

/// What an import does with a row whose phone the workspace has already
/// (in storage, or in an earlier row of the same import).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Leave the stored contact as it is; the row counts as skipped.
    #[default]
    Skip,
    /// Give the stored contact the row's name and labels (a row identical
    /// to the stored contact changes nothing and counts as skipped).
    Update,
    /// Report the row as an error; the stored contact stays as it is.
    Error,
}

impl OnDuplicate {
    /// `skip`, `update` or `error`, as the API spells them.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` for any other text.
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        match text.trim() {
            "skip" => Ok(Self::Skip),
            "update" => Ok(Self::Update),
            "error" => Ok(Self::Error),
            _ => Err(ValidationError::new(
                field,
                "must be one of skip, update, error",
            )),
        }
    }
}

/// A valid row of an import, as the use case hands it to storage: where
/// it was in the source (for the report) and the contact it makes (new
/// id and times; an update keeps the stored contact's id and creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedContact {
    /// Its row number in the source, as the caller counts them.
    pub row: u64,
    /// The contact it creates, or whose name and labels it gives to the
    /// stored contact with the same phone. A created contact's
    /// `updated_at` is stored as its `created_at` (it was never changed);
    /// an updated one gets `updated_at`.
    pub contact: Contact,
}

/// A valid row of an import as the caller reads it: its row number and
/// the contact it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Its row number in the source (the report names rows by it).
    pub row: u64,
    /// The contact.
    pub contact: NewContact,
}

/// Why an import's source broke off (the client went away, its body was
/// malformed beyond a row): everything the import wrote is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportAborted;

/// The rows of an import, in batches as they are read. An `Err` ends the
/// import with nothing written.
pub type ImportRows = BoxStream<'static, Result<Vec<ImportRow>, ImportAborted>>;

/// The rows of an import with their contacts made, as storage takes them.
pub type ImportedContacts = BoxStream<'static, Result<Vec<ImportedContact>, ImportAborted>>;

/// What an import wrote, counted over all its valid rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportTally {
    /// Rows that created a contact.
    pub created: u64,
    /// Rows that changed a stored contact ([`OnDuplicate::Update`]).
    pub updated: u64,
    /// Rows whose phone the workspace had, left as they were.
    pub skipped: u64,
    /// Rows refused as duplicates ([`OnDuplicate::Error`]).
    pub duplicates: u64,
    /// The row numbers of the first [`ImportTally::ROWS_KEPT`] duplicates,
    /// in order.
    pub duplicate_rows: Vec<u64>,
}

impl ImportTally {
    /// How many duplicate rows are named by number; the rest are counted.
    pub const ROWS_KEPT: usize = 100;
}
