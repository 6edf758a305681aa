use std::sync::Arc;

use crate::clock::Clock;
use futures_util::StreamExt;

use crate::contact::{
    Contact, ContactPage, ContactPatch, ContactQuery, ContactStream, ImportRows, ImportTally,
    ImportedContact, NewContact, OnDuplicate,
};
use crate::error::{ContactError, RepositoryError};
use crate::ids::{ContactId, WorkspaceId};
use crate::ports::{ConditionalUpdate, ContactRepository};
use crate::values::ValidationError;

/// Rounds of read, change and conditional write before an update gives up
/// (each lost only to another request's write to the same contact).
const UPDATE_ATTEMPTS: usize = 5;

/// Creates, reads, changes and deletes a workspace's contacts.
#[derive(Clone)]
pub struct ContactService {
    repo: Arc<dyn ContactRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ContactService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactService").finish_non_exhaustive()
    }
}

/// Maps a storage-level duplicate to the contact that owns the phone.
fn duplicate_or(err: RepositoryError) -> ContactError {
    match err {
        RepositoryError::Duplicate {
            existing: Some(existing),
        } => ContactError::Duplicate {
            existing: ContactId::from_uuid(existing),
        },
        // The owner vanished between the conflict and the lookup: still a
        // conflict for this request, and a retry will succeed.
        RepositoryError::Duplicate { existing: None } => ContactError::Repository(
            RepositoryError::Unavailable("conflicting contact changed concurrently".into()),
        ),
        other => ContactError::Repository(other),
    }
}

impl ContactService {
    /// A service over `repo`, stamping times from `clock`.
    pub fn new(repo: Arc<dyn ContactRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Creates a contact in `workspace`.
    ///
    /// # Errors
    /// [`ContactError::Duplicate`] when the workspace has a contact with
    /// this phone; [`ContactError::Repository`] when storage fails.
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        new: NewContact,
    ) -> Result<Contact, ContactError> {
        let now = self.clock.now();
        let contact = Contact {
            id: ContactId::new(),
            workspace_id: workspace,
            name: new.name,
            phone: new.phone,
            labels: new.labels,
            created_at: now,
            updated_at: now,
        };
        self.repo.insert(&contact).await.map_err(duplicate_or)?;
        Ok(contact)
    }

    /// The contact `id` of `workspace`.
    ///
    /// # Errors
    /// [`ContactError::NotFound`] when there is none (another workspace's
    /// contact included); [`ContactError::Repository`] when storage fails.
    pub async fn get(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Contact, ContactError> {
        self.repo
            .get(workspace, id)
            .await?
            .ok_or(ContactError::NotFound)
    }

    /// The contacts of `workspace` matching `query`, newest first.
    ///
    /// # Errors
    /// [`ContactError::Validation`] on a `limit` outside 1 to
    /// [`ContactQuery::MAX_LIMIT`], a `search` or `label` with control
    /// characters, or an `after` without a `limit` or with an `offset`;
    /// [`ContactError::Repository`] when storage fails.
    pub async fn list(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactPage, ContactError> {
        if let Some(limit) = query.limit
            && (limit == 0 || limit > ContactQuery::MAX_LIMIT)
        {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", ContactQuery::MAX_LIMIT),
            )
            .into());
        }
        if query.after.is_some() {
            // A position already says where the page starts; an offset on
            // top would be ambiguous (from the start, or from there?).
            if query.offset > 0 {
                return Err(ValidationError::new("after", "cannot be combined with offset").into());
            }
            if query.limit.is_none() {
                return Err(ValidationError::new("after", "needs a limit").into());
            }
        }
        check_filters(query)?;
        Ok(self.repo.list(workspace, query).await?)
    }

    /// Every contact of `workspace` matching `query`'s filters (its
    /// `offset` honoured, its `limit` ignored), newest first, streamed in
    /// batches as storage reads them: for lists of any size, held a few
    /// batches at a time. Dropping the stream stops the reading.
    ///
    /// # Errors
    /// [`ContactError::Validation`] on a `search` or `label` with control
    /// characters; [`ContactError::Repository`] when storage fails before
    /// the first batch (later failures are the stream's last item).
    pub async fn stream(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactStream, ContactError> {
        check_filters(query)?;
        Ok(self.repo.stream(workspace, query).await?)
    }

    /// Applies `patch` to the contact `id` of `workspace`.
    ///
    /// # Errors
    /// [`ContactError::NotFound`] when there is no such contact;
    /// [`ContactError::Duplicate`] when the new phone belongs to another
    /// contact; [`ContactError::Repository`] when storage fails.
    pub async fn update(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        patch: ContactPatch,
    ) -> Result<Contact, ContactError> {
        // Read, change, write while unchanged; again when another request
        // wrote it meanwhile, so that neither undoes the other.
        for _ in 0..UPDATE_ATTEMPTS {
            let mut contact = self.get(workspace, id).await?;
            if patch.is_empty() {
                return Ok(contact);
            }
            let read_updated_at = contact.updated_at;
            if let Some(name) = &patch.name {
                contact.name = name.clone();
            }
            if let Some(phone) = &patch.phone {
                contact.phone = phone.clone();
            }
            if let Some(labels) = &patch.labels {
                contact.labels = labels.clone();
            }
            // Later than what was read, even if the clock is not.
            contact.updated_at = self
                .clock
                .now()
                .max(read_updated_at + chrono::TimeDelta::microseconds(1));
            match self
                .repo
                .update_if_unchanged(&contact, read_updated_at)
                .await
            {
                Ok(ConditionalUpdate::Updated) => return Ok(contact),
                Ok(ConditionalUpdate::NotFound) => return Err(ContactError::NotFound),
                Ok(ConditionalUpdate::Changed) => {}
                Err(err) => return Err(duplicate_or(err)),
            }
        }
        Err(ContactError::Repository(RepositoryError::Unavailable(
            "the contact kept changing under concurrent updates; try again".into(),
        )))
    }

    /// Imports `rows` into `workspace`: each valid row creates a contact,
    /// or meets a stored one with its phone as `on_duplicate` says. One
    /// transaction: `Ok(None)` when `rows` broke off, with nothing
    /// written. The rows are created in the instant before the import, a
    /// microsecond apart and the first row newest, so that the list and
    /// the export (newest first) show them in the source's order: an
    /// export imported elsewhere exports the same.
    ///
    /// # Errors
    /// [`ContactError::Repository`] when storage fails; nothing is written.
    pub async fn import(
        &self,
        workspace: WorkspaceId,
        on_duplicate: OnDuplicate,
        rows: ImportRows,
    ) -> Result<Option<ImportTally>, ContactError> {
        let now = self.clock.now();
        let mut seen: i64 = 0;
        let contacts = rows
            .map(move |batch| {
                batch.map(|rows| {
                    rows.into_iter()
                        .map(|r| {
                            seen += 1;
                            let created_at = now - chrono::TimeDelta::microseconds(seen);
                            ImportedContact {
                                row: r.row,
                                contact: Contact {
                                    id: ContactId::new(),
                                    workspace_id: workspace,
                                    name: r.contact.name,
                                    phone: r.contact.phone,
                                    labels: r.contact.labels,
                                    created_at,
                                    // An update stamps the stored contact with
                                    // the import's time.
                                    updated_at: now,
                                },
                            }
                        })
                        .collect()
                })
            })
            .boxed();
        Ok(self.repo.import(workspace, on_duplicate, contacts).await?)
    }

    /// Deletes the contact `id` of `workspace`.
    ///
    /// # Errors
    /// [`ContactError::NotFound`] when there is no such contact;
    /// [`ContactError::Repository`] when storage fails.
    pub async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<(), ContactError> {
        if self.repo.delete(workspace, id).await? {
            Ok(())
        } else {
            Err(ContactError::NotFound)
        }
    }
}

/// Names and labels hold no control characters, so a filter with one
/// matches nothing; refused, it cannot reach storage (PostgreSQL's text
/// cannot even hold a NUL).
fn check_filters(query: &ContactQuery) -> Result<(), ContactError> {
    for (field, value) in [("search", &query.search), ("label", &query.label)] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(ValidationError::new(field, "must not contain control characters").into());
        }
    }
    Ok(())
}
