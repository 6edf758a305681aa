use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use maveraa_domain::ports::{ConditionalUpdate, ContactRepository};
use maveraa_domain::{
    Contact, ContactId, ContactPage, ContactPosition, ContactQuery, ContactStream, ImportTally,
    ImportedContacts, OnDuplicate, RepositoryError, WorkspaceId,
};
use uuid::Uuid;

use crate::columns::{LabelsColumn, NameColumn, PhoneColumn};
use crate::contact_filters::{StoredCount, after_contact, count_matching, filtered};
use crate::error::StorageError;
use crate::schema::contacts;
use crate::store::PgStore;

/// A contact as it is written.
#[derive(Debug, Insertable, AsChangeset)]
#[diesel(table_name = contacts, check_for_backend(Pg))]
struct ContactRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    phone: String,
    labels: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Contact> for ContactRow {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id.as_uuid(),
            workspace_id: c.workspace_id.as_uuid(),
            name: c.name.as_str().to_owned(),
            phone: c.phone.as_str().to_owned(),
            labels: c.labels.to_vec(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A contact as it is read, by lists and by id. The workspace is the
/// query's own filter, so it is not read back, and `updated_at` comes only
/// when it differs from `created_at` (NULL otherwise). Why: PostgreSQL
/// encodes each non-NULL column of a row in its own 1 KiB buffer, and past
/// seven of them (an array counts one more per element) every row costs it
/// a fresh memory block (docs/storage-tuning.md).
pub(crate) type ReadColumns = (
    contacts::id,
    contacts::name,
    contacts::phone,
    contacts::labels,
    contacts::created_at,
    nullif<contacts::updated_at, contacts::created_at>,
);

// A function, not a `sql()` literal: diesel re-prepares a statement with a
// literal at every run.
diesel::define_sql_function! {
    /// `NULLIF(a, b)`: NULL when `a = b`, else `a`.
    fn nullif(a: diesel::sql_types::Timestamptz, b: diesel::sql_types::Timestamptz) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>;
}

pub(crate) fn read_columns() -> ReadColumns {
    (
        contacts::id,
        contacts::name,
        contacts::phone,
        contacts::labels,
        contacts::created_at,
        nullif(contacts::updated_at, contacts::created_at),
    )
}

#[derive(Debug, Queryable)]
pub(crate) struct ReadRow {
    id: Uuid,
    name: NameColumn,
    phone: PhoneColumn,
    labels: LabelsColumn,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
}

impl ReadRow {
    pub(crate) fn into_contact(self, workspace: Uuid) -> Contact {
        Contact {
            id: ContactId::from_uuid(self.id),
            workspace_id: WorkspaceId::from_uuid(workspace),
            name: self.name.0,
            phone: self.phone.0,
            labels: self.labels.0,
            created_at: self.created_at,
            updated_at: self.updated_at.unwrap_or(self.created_at),
        }
    }
}

/// Keeps `limit` of `rows` read with one more, and the position of the last
/// kept one when that extra row was there (more follow the page).
fn split_next(rows: &mut Vec<Contact>, limit: Option<u32>) -> Option<ContactPosition> {
    let limit = usize::try_from(limit?).ok()?;
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(|c| ContactPosition {
        at: c.created_at,
        key: c.id,
    })
}

/// The id of the contact of `workspace` that has `phone`.
fn owner_of_phone(
    conn: &mut PgConnection,
    workspace: Uuid,
    phone: &str,
) -> Result<Option<Uuid>, StorageError> {
    Ok(contacts::table
        .filter(contacts::workspace_id.eq(workspace))
        .filter(contacts::phone.eq(phone))
        .select(contacts::id)
        .first(conn)
        .optional()?)
}

impl PgStore {
    /// Writes the contact's name, phone, labels and `updated_at`; with
    /// `read_updated_at`, only while the stored row still has it.
    async fn write(
        &self,
        contact: &Contact,
        read_updated_at: Option<DateTime<Utc>>,
    ) -> Result<ConditionalUpdate, RepositoryError> {
        let row = ContactRow::from(contact);
        self.db
            .run(move |conn| {
                let this = contacts::table
                    .filter(contacts::workspace_id.eq(row.workspace_id))
                    .filter(contacts::id.eq(row.id));
                let mut update = diesel::update(this)
                    .set((
                        contacts::name.eq(&row.name),
                        contacts::phone.eq(&row.phone),
                        contacts::labels.eq(&row.labels),
                        contacts::updated_at.eq(row.updated_at),
                    ))
                    .into_boxed();
                if let Some(at) = read_updated_at {
                    update = update.filter(contacts::updated_at.eq(at));
                }
                match update.execute(conn).map_err(StorageError::from) {
                    Ok(1) => Ok(Ok(ConditionalUpdate::Updated)),
                    Ok(_) if read_updated_at.is_none() => Ok(Ok(ConditionalUpdate::NotFound)),
                    // Gone, or written by someone else since it was read.
                    Ok(_) => {
                        let exists: bool =
                            diesel::select(diesel::dsl::exists(this)).get_result(conn)?;
                        Ok(Ok(if exists {
                            ConditionalUpdate::Changed
                        } else {
                            ConditionalUpdate::NotFound
                        }))
                    }
                    Err(e) if e.is_unique_violation() => {
                        let existing = owner_of_phone(conn, row.workspace_id, &row.phone)?;
                        Ok(Err(RepositoryError::Duplicate { existing }))
                    }
                    Err(e) => Err(e),
                }
            })
            .await?
    }
}

#[async_trait]
impl ContactRepository for PgStore {
    async fn insert(&self, contact: &Contact) -> Result<(), RepositoryError> {
        let row = ContactRow::from(contact);
        self.db
            .run(move |conn| {
                // ON CONFLICT waits for a concurrent insert of the same phone
                // to commit, so exactly one of many racing inserts wins.
                let inserted = diesel::insert_into(contacts::table)
                    .values(&row)
                    .on_conflict((contacts::workspace_id, contacts::phone))
                    .do_nothing()
                    .execute(conn)?;
                if inserted == 1 {
                    return Ok(Ok(()));
                }
                let existing = owner_of_phone(conn, row.workspace_id, &row.phone)?;
                Ok(Err(RepositoryError::Duplicate { existing }))
            })
            .await?
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, RepositoryError> {
        let row = self
            .reads
            .run(move |conn| {
                Ok(contacts::table
                    .filter(contacts::workspace_id.eq(workspace.as_uuid()))
                    .filter(contacts::id.eq(id.as_uuid()))
                    .select(read_columns())
                    .first::<ReadRow>(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(|r| r.into_contact(workspace.as_uuid())))
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactPage, RepositoryError> {
        let query = query.clone();
        let limit = query.limit;
        let ws = workspace.as_uuid();
        let (total, mut rows) = self
            .reads
            .run(move |conn| {
                let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
                // One row more than the page: it tells whether another
                // page follows (`next`).
                let limit = query.limit.map_or(i64::MAX, |l| i64::from(l) + 1);
                if query.is_unfiltered() {
                    // The workspace keeps its contact count (a trigger): read
                    // it in the same statement as the page, so an unfiltered
                    // list is one round trip and no count(*). Rows are
                    // collected one by one into a vector sized from that
                    // count, not into one that doubles as it grows.
                    macro_rules! counted_page {
                        ($q:expr) => {
                            $q.order((contacts::created_at.desc(), contacts::id.desc()))
                                .select((
                                    read_columns(),
                                    StoredCount(ws),
                                ))
                                .limit(limit)
                                .offset(offset)
                        };
                    }
                    let all = contacts::table.filter(contacts::workspace_id.eq(ws));
                    // A bounded page comes in one result (row-by-row mode
                    // costs libpq a result per row); the unbounded list row
                    // by row, so the whole workspace is never held twice.
                    let (total, rows) = if let Some(after) = &query.after {
                        collect_counted(
                            counted_page!(all.filter(after_contact(after)))
                                .load_iter::<(ReadRow, Option<i64>), diesel::connection::DefaultLoadingMode>(conn)?,
                            ws,
                            offset,
                            limit,
                        )?
                    } else if query.limit.is_some() {
                        collect_counted(
                            counted_page!(all).load_iter::<(ReadRow, Option<i64>), diesel::connection::DefaultLoadingMode>(conn)?,
                            ws,
                            offset,
                            limit,
                        )?
                    } else {
                        collect_counted(
                            counted_page!(all).load_iter::<(ReadRow, Option<i64>), diesel::pg::PgRowByRowLoadingMode>(conn)?,
                            ws,
                            offset,
                            limit,
                        )?
                    };
                    let total = match total {
                        Some(t) => t,
                        // An empty page (past the end, or no contacts).
                        None => diesel::select(StoredCount(ws))
                            .get_result::<Option<i64>>(conn)?
                            .unwrap_or(0),
                    };
                    return Ok((total, rows));
                }
                // Planned for this search's own text: a generic plan (the read
                // pool's) cannot tell a rare name part from a common one, and
                // below some 50,000 contacts prefers reading the whole
                // workspace to the trigram and label indexes.
                conn.build_transaction().read_only().run(|conn| {
                    diesel::sql_query("SET LOCAL plan_cache_mode = force_custom_plan")
                        .execute(conn)?;
                    let total = count_matching(conn, ws, &query)?;
                    let rows = if total == 0 {
                        Vec::new()
                    } else {
                        let mut page = filtered(ws, &query);
                        if let Some(after) = &query.after {
                            page = page.filter(after_contact(after));
                        }
                        page.order((contacts::created_at.desc(), contacts::id.desc()))
                            .select(read_columns())
                            .limit(limit)
                            .offset(offset)
                            .load_iter::<ReadRow, diesel::connection::DefaultLoadingMode>(conn)?
                            .map(|row| row.map(|r| r.into_contact(ws)))
                            .collect::<QueryResult<_>>()?
                    };
                    Ok((total, rows))
                })
            })
            .await?;
        let next = split_next(&mut rows, limit);
        Ok(ContactPage {
            total: u64::try_from(total).unwrap_or(0),
            contacts: rows,
            next,
        })
    }

    async fn stream(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactStream, RepositoryError> {
        self.stream_contacts(workspace, query).await
    }

    async fn update(&self, contact: &Contact) -> Result<bool, RepositoryError> {
        Ok(match self.write(contact, None).await? {
            ConditionalUpdate::Updated => true,
            ConditionalUpdate::NotFound | ConditionalUpdate::Changed => false,
        })
    }

    async fn update_if_unchanged(
        &self,
        contact: &Contact,
        read_updated_at: DateTime<Utc>,
    ) -> Result<ConditionalUpdate, RepositoryError> {
        self.write(contact, Some(read_updated_at)).await
    }

    async fn import(
        &self,
        workspace: WorkspaceId,
        on_duplicate: OnDuplicate,
        rows: ImportedContacts,
    ) -> Result<Option<ImportTally>, RepositoryError> {
        self.import_contacts(workspace, on_duplicate, rows).await
    }

    async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<bool, RepositoryError> {
        let deleted = self
            .db
            .run(move |conn| {
                Ok(diesel::delete(
                    contacts::table
                        .filter(contacts::workspace_id.eq(workspace.as_uuid()))
                        .filter(contacts::id.eq(id.as_uuid())),
                )
                .execute(conn)?)
            })
            .await?;
        Ok(deleted == 1)
    }
}

/// Collects the contacts of `workspace` from rows that each carry the
/// workspace's contact count, into a vector sized from that count; returns
/// the count (`None` when there were no rows) with the contacts.
fn collect_counted(
    rows: impl Iterator<Item = QueryResult<(ReadRow, Option<i64>)>>,
    workspace: Uuid,
    offset: i64,
    limit: i64,
) -> QueryResult<(Option<i64>, Vec<Contact>)> {
    let mut total = None;
    let mut out = Vec::new();
    for row in rows {
        let (row, count) = row?;
        if total.is_none() {
            let count = count.unwrap_or(0);
            let expected = (count - offset.min(count)).min(limit).max(0);
            out.reserve_exact(usize::try_from(expected).unwrap_or(0));
            total = Some(count);
        }
        out.push(row.into_contact(workspace));
    }
    Ok((total, out))
}
