//! Embedding `maveraa-domain` with your own adapters: the contact use cases
//! over an in-memory repository.
//!
//! Run it with `cargo run -p maveraa-domain --example in_memory`; the test
//! suite runs it too.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use maveraa_domain::ports::{ConditionalUpdate, ContactRepository};
use maveraa_domain::usecases::ContactService;
use maveraa_domain::{
    Contact, ContactError, ContactId, ContactName, ContactPage, ContactPatch, ContactPosition,
    ContactQuery, ContactStream, ImportRow, ImportTally, ImportedContact, ImportedContacts, Labels,
    NewContact, OnDuplicate, PhoneNumber, RepositoryError, SystemClock, WorkspaceId,
};

/// Contacts in a vector behind a mutex: enough for tests and demos.
#[derive(Debug, Default)]
struct InMemoryContacts {
    rows: Mutex<Vec<Contact>>,
}

impl InMemoryContacts {
    fn rows(&self) -> Result<std::sync::MutexGuard<'_, Vec<Contact>>, RepositoryError> {
        self.rows
            .lock()
            .map_err(|_| RepositoryError::Internal("poisoned".into()))
    }
}

impl InMemoryContacts {
    /// Replaces the stored contact, only while its `updated_at` is still
    /// `expected` when one is given; check and write under one lock.
    fn write(
        &self,
        contact: &Contact,
        expected: Option<DateTime<Utc>>,
    ) -> Result<ConditionalUpdate, RepositoryError> {
        let mut rows = self.rows()?;
        if let Some(other) = rows.iter().find(|c| {
            c.workspace_id == contact.workspace_id && c.phone == contact.phone && c.id != contact.id
        }) {
            return Err(RepositoryError::Duplicate {
                existing: Some(other.id.as_uuid()),
            });
        }
        let Some(row) = rows
            .iter_mut()
            .find(|c| c.workspace_id == contact.workspace_id && c.id == contact.id)
        else {
            return Ok(ConditionalUpdate::NotFound);
        };
        if expected.is_some_and(|at| row.updated_at != at) {
            return Ok(ConditionalUpdate::Changed);
        }
        *row = contact.clone();
        Ok(ConditionalUpdate::Updated)
    }
}

#[async_trait]
impl ContactRepository for InMemoryContacts {
    async fn insert(&self, contact: &Contact) -> Result<(), RepositoryError> {
        let mut rows = self.rows()?;
        if let Some(existing) = rows
            .iter()
            .find(|c| c.workspace_id == contact.workspace_id && c.phone == contact.phone)
        {
            return Err(RepositoryError::Duplicate {
                existing: Some(existing.id.as_uuid()),
            });
        }
        rows.push(contact.clone());
        Ok(())
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, RepositoryError> {
        Ok(self
            .rows()?
            .iter()
            .find(|c| c.workspace_id == workspace && c.id == id)
            .cloned())
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactPage, RepositoryError> {
        let search = query.search.as_deref().map(str::to_lowercase);
        let mut matching: Vec<Contact> = self
            .rows()?
            .iter()
            .filter(|c| c.workspace_id == workspace)
            .filter(|c| {
                search.as_deref().is_none_or(|s| {
                    c.name.as_str().to_lowercase().contains(s) || c.phone.as_str().contains(s)
                })
            })
            .filter(|c| {
                query
                    .label
                    .as_deref()
                    .is_none_or(|l| c.labels.iter().any(|have| have.eq_ignore_ascii_case(l)))
            })
            .cloned()
            .collect();
        matching.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        let total = matching.len() as u64;
        // Keyset: the rows strictly after the position, newest first.
        let after = query.after.as_ref().map(|p| (p.at, p.key));
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let mut page: Vec<Contact> = matching
            .into_iter()
            .filter(|c| after.is_none_or(|a| (c.created_at, c.id) < a))
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(limit.saturating_add(1))
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|c| ContactPosition {
                at: c.created_at,
                key: c.id,
            })
        } else {
            None
        };
        Ok(ContactPage {
            total,
            contacts: page,
            next,
        })
    }

    async fn stream(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactStream, RepositoryError> {
        // Held in memory anyway: the whole list, as one batch.
        let all = ContactQuery {
            limit: None,
            ..query.clone()
        };
        let page = self.list(workspace, &all).await?;
        Ok(ContactStream {
            total: page.total,
            batches: Box::pin(futures_util::stream::iter([Ok(page.contacts)])),
        })
    }

    async fn update(&self, contact: &Contact) -> Result<bool, RepositoryError> {
        Ok(self.write(contact, None)? == ConditionalUpdate::Updated)
    }

    async fn update_if_unchanged(
        &self,
        contact: &Contact,
        read_updated_at: DateTime<Utc>,
    ) -> Result<ConditionalUpdate, RepositoryError> {
        self.write(contact, Some(read_updated_at))
    }

    async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<bool, RepositoryError> {
        let mut rows = self.rows()?;
        let before = rows.len();
        rows.retain(|c| !(c.workspace_id == workspace && c.id == id));
        Ok(rows.len() != before)
    }

    async fn import(
        &self,
        workspace: WorkspaceId,
        on_duplicate: OnDuplicate,
        mut rows: ImportedContacts,
    ) -> Result<Option<ImportTally>, RepositoryError> {
        // Applied to a copy, kept only when the source ends well: one
        // transaction.
        let mut copy = self.rows()?.clone();
        let mut tally = ImportTally::default();
        while let Some(batch) = rows.next().await {
            let Ok(batch) = batch else { return Ok(None) };
            for ImportedContact { row, contact } in batch {
                let stored = copy
                    .iter_mut()
                    .find(|c| c.workspace_id == workspace && c.phone == contact.phone);
                match (stored, on_duplicate) {
                    (None, _) => {
                        copy.push(contact);
                        tally.created += 1;
                    }
                    (Some(c), OnDuplicate::Update)
                        if (&c.name, &c.labels) != (&contact.name, &contact.labels) =>
                    {
                        (c.name, c.labels, c.updated_at) =
                            (contact.name, contact.labels, contact.updated_at);
                        tally.updated += 1;
                    }
                    (Some(_), OnDuplicate::Error) => {
                        tally.duplicates += 1;
                        if tally.duplicate_rows.len() < ImportTally::ROWS_KEPT {
                            tally.duplicate_rows.push(row);
                        }
                    }
                    (Some(_), _) => tally.skipped += 1,
                }
            }
        }
        *self.rows()? = copy;
        Ok(Some(tally))
    }
}

fn new_contact(name: &str, phone: &str, labels: &str) -> Result<NewContact, ContactError> {
    Ok(NewContact {
        name: ContactName::parse("name", name)?,
        phone: PhoneNumber::parse("phone", phone)?,
        labels: Labels::parse_csv("labels", labels)?,
    })
}

async fn run() -> Result<(), ContactError> {
    let service = ContactService::new(Arc::new(InMemoryContacts::default()), Arc::new(SystemClock));
    let acme = WorkspaceId::new();
    let other = WorkspaceId::new();

    let jane = service
        .create(
            acme,
            new_contact("Jane Smith", "6289876543210", "Lead, Website")?,
        )
        .await?;
    println!(
        "created {} {} {:?}",
        jane.id,
        jane.phone,
        jane.labels.to_vec()
    );

    // The same number in another notation is the same contact.
    match service
        .create(acme, new_contact("Jane again", "+62 898-7654-3210", "")?)
        .await
    {
        Err(ContactError::Duplicate { existing }) => {
            assert_eq!(existing, jane.id);
            println!("duplicate refused, existing contact {existing}");
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // Another workspace may hold the same number, and sees nothing of acme's.
    service
        .create(other, new_contact("Jane elsewhere", "6289876543210", "")?)
        .await?;
    assert_eq!(
        service.get(other, jane.id).await,
        Err(ContactError::NotFound)
    );

    let john = service
        .create(
            acme,
            new_contact("John Doe", "6281234567890", "VIP, Customer")?,
        )
        .await?;
    let page = service.list(acme, &ContactQuery::default()).await?;
    assert_eq!(page.total, 2);

    assert_eq!(page.contacts[0].id, john.id, "newest first");

    let vip = service
        .list(
            acme,
            &ContactQuery {
                label: Some("vip".into()),
                ..ContactQuery::default()
            },
        )
        .await?;
    assert_eq!(vip.total, 1);

    // Paging by position: the first page of one names where the second
    // starts, and the second is the last.
    let first = service
        .list(
            acme,
            &ContactQuery {
                limit: Some(1),
                ..ContactQuery::default()
            },
        )
        .await?;
    let second = service
        .list(
            acme,
            &ContactQuery {
                limit: Some(1),
                after: first.next.clone(),
                ..ContactQuery::default()
            },
        )
        .await?;
    assert_eq!(first.contacts[0].id, john.id);
    assert_ne!(second.contacts[0].id, john.id);
    assert_eq!(second.next, None, "the last page");
    // A position says where the page starts: an offset on top is refused.
    let both = service
        .list(
            acme,
            &ContactQuery {
                limit: Some(1),
                offset: 1,
                after: first.next.clone(),
                ..ContactQuery::default()
            },
        )
        .await;
    assert!(
        matches!(both, Err(ContactError::Validation(ref e)) if e.field == "after"),
        "{both:?}"
    );

    let renamed = service
        .update(
            acme,
            jane.id,
            ContactPatch {
                name: Some(ContactName::parse("name", "Jane S.")?),
                ..ContactPatch::default()
            },
        )
        .await?;
    assert_eq!(renamed.name.as_str(), "Jane S.");

    service.delete(acme, jane.id).await?;
    assert_eq!(
        service.get(acme, jane.id).await,
        Err(ContactError::NotFound)
    );
    println!(
        "ok: {} contact(s) left",
        service.list(acme, &ContactQuery::default()).await?.total
    );

    // An import: John's row renames him, the other creates a contact.
    let rows = vec![
        ImportRow {
            row: 2,
            contact: new_contact("Johnny Doe", "6281234567890", "VIP")?,
        },
        ImportRow {
            row: 3,
            contact: new_contact("Ann Lee", "6281111111111", "")?,
        },
    ];
    let tally = service
        .import(
            acme,
            OnDuplicate::Update,
            futures_util::stream::iter([Ok(rows)]).boxed(),
        )
        .await?
        .expect("the rows ended well");
    assert_eq!((tally.created, tally.updated), (1, 1));
    println!(
        "imported: {} created, {} updated",
        tally.created, tally.updated
    );
    // Jane was deleted: John and Ann are left.
    let page = service.list(acme, &ContactQuery::default()).await?;
    assert_eq!(page.total, 2);
    assert_eq!(
        page.contacts[0].name.as_str(),
        "Ann Lee",
        "imported after John was created"
    );
    assert_eq!(
        service.get(acme, john.id).await?.name.as_str(),
        "Johnny Doe"
    );
    Ok(())
}

fn main() -> Result<(), ContactError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(run())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().expect("the example runs to the end");
    }
}
