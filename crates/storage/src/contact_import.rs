//! Bulk import: one database thread writes an import's batches as the
//! request's body yields them, all in one transaction, a statement per
//! batch (`INSERT .. SELECT FROM unnest(..) ON CONFLICT`: the same seven
//! parameters whatever the batch's size). The contact count's trigger runs once per
//! statement and, while this transaction holds the workspace's row, other
//! writers record their changes beside it instead of waiting (migration
//! `contact_count_deltas`).

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Text, Timestamptz, Uuid as SqlUuid};
use futures_util::StreamExt;
use maveraa_domain::{
    ImportTally, ImportedContact, ImportedContacts, OnDuplicate, RepositoryError, WorkspaceId,
};
use tokio::runtime::Handle;
use uuid::Uuid;

use crate::error::StorageError;
use crate::store::PgStore;

/// How long the import waits for its next batch before it gives up and
/// rolls back. The handler bounds its own waits for the client well below
/// this; this bounds a transaction held open by a source that hangs.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(90);

/// Labels travel as one text per row, joined by a character no label can
/// hold (labels refuse control characters).
const LABEL_SEPARATOR: char = '\u{1f}';

/// Why the import's transaction ended early.
#[derive(Debug)]
enum Stop {
    /// The source broke off or hung: roll back, report nothing written.
    Aborted,
    /// Storage failed.
    Storage(StorageError),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// A row the insert wrote, and whether it created it (`xmax = 0`: no
/// earlier version) or updated a stored one.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = Text)]
    phone: String,
    #[diesel(sql_type = Bool)]
    created: bool,
}

/// The insert of one batch. `xmax = 0` tells a row this statement created
/// from one it updated.
fn insert_sql(on_duplicate: OnDuplicate) -> String {
    let conflict = match on_duplicate {
        OnDuplicate::Update => {
            // Only a row that changes something is written (and counted
            // as updated); an identical one is left as it is.
            "DO UPDATE SET name = excluded.name, labels = excluded.labels, \
             updated_at = $7 \
             WHERE (contacts.name, contacts.labels) IS DISTINCT FROM (excluded.name, excluded.labels)"
        }
        OnDuplicate::Skip | OnDuplicate::Error => "DO NOTHING",
    };
    format!(
        "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
         SELECT u.id, $1, u.name, u.phone, string_to_array(u.labels, chr(31)), u.created_at, \
         u.created_at \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) \
         AS u(id, name, phone, labels, created_at) \
         ON CONFLICT (workspace_id, phone) {conflict} \
         RETURNING phone, (xmax = 0) AS created"
    )
}

/// Writes `rows` (no phone twice among them) and counts them into `tally`.
fn write_chunk(
    conn: &mut PgConnection,
    ws: Uuid,
    on_duplicate: OnDuplicate,
    rows: &[ImportedContact],
    tally: &mut ImportTally,
) -> Result<(), Stop> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut ids = Vec::with_capacity(rows.len());
    let mut created = Vec::with_capacity(rows.len());
    let mut names = Vec::with_capacity(rows.len());
    let mut phones = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for r in rows {
        ids.push(r.contact.id.as_uuid());
        created.push(r.contact.created_at);
        names.push(r.contact.name.as_str());
        phones.push(r.contact.phone.as_str());
        let mut joined = String::new();
        for (i, label) in r.contact.labels.iter().enumerate() {
            if i > 0 {
                joined.push(LABEL_SEPARATOR);
            }
            joined.push_str(label);
        }
        labels.push(joined);
    }
    let written: Vec<Written> = diesel::sql_query(insert_sql(on_duplicate))
        .bind::<SqlUuid, _>(ws)
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Text>, _>(&names)
        .bind::<Array<Text>, _>(&phones)
        .bind::<Array<Text>, _>(&labels)
        .bind::<Array<Timestamptz>, _>(&created)
        .bind::<Timestamptz, _>(first.contact.updated_at)
        .load(conn)?;
    let created = written.iter().filter(|w| w.created).count() as u64;
    let updated = written.len() as u64 - created;
    let untouched = (rows.len() - written.len()) as u64;
    tally.created += created;
    tally.updated += updated;
    if on_duplicate == OnDuplicate::Error && untouched > 0 {
        let written: HashSet<&str> = written.iter().map(|w| w.phone.as_str()).collect();
        for r in rows {
            if !written.contains(r.contact.phone.as_str()) {
                tally.duplicates += 1;
                if tally.duplicate_rows.len() < ImportTally::ROWS_KEPT {
                    tally.duplicate_rows.push(r.row);
                }
            }
        }
    } else {
        tally.skipped += untouched;
    }
    Ok(())
}

/// Writes a batch, split where a phone comes again: one statement cannot
/// meet the same row twice (`ON CONFLICT DO UPDATE` refuses it), and the
/// later row must meet the earlier one as a stored contact.
fn write_batch(
    conn: &mut PgConnection,
    ws: Uuid,
    on_duplicate: OnDuplicate,
    batch: &[ImportedContact],
    tally: &mut ImportTally,
) -> Result<(), Stop> {
    let mut start = 0;
    let mut phones: HashSet<&str> = HashSet::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        if !phones.insert(r.contact.phone.as_str()) {
            write_chunk(conn, ws, on_duplicate, &batch[start..i], tally)?;
            start = i;
            phones.clear();
            phones.insert(r.contact.phone.as_str());
        }
    }
    write_chunk(conn, ws, on_duplicate, &batch[start..], tally)
}

/// The import's one event, `contacts.imported`, with what it did.
fn imported_event(conn: &mut PgConnection, ws: Uuid, tally: &ImportTally) -> Result<(), Stop> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    diesel::sql_query(
        "INSERT INTO events (workspace_id, type, data) VALUES ($1, 'contacts.imported', \
         jsonb_build_object('created', $2, 'updated', $3, 'skipped', $4, 'duplicates', $5))",
    )
    .bind::<SqlUuid, _>(ws)
    .bind::<diesel::sql_types::BigInt, _>(count(tally.created))
    .bind::<diesel::sql_types::BigInt, _>(count(tally.updated))
    .bind::<diesel::sql_types::BigInt, _>(count(tally.skipped))
    .bind::<diesel::sql_types::BigInt, _>(count(tally.duplicates))
    .execute(conn)?;
    Ok(())
}

impl PgStore {
    /// [`maveraa_domain::ports::ContactRepository::import`].
    pub(crate) async fn import_contacts(
        &self,
        workspace: WorkspaceId,
        on_duplicate: OnDuplicate,
        mut rows: ImportedContacts,
    ) -> Result<Option<ImportTally>, RepositoryError> {
        // One import at a time per process: each holds a database thread
        // and a connection for its whole length.
        let _turn = self
            .imports
            .acquire()
            .await
            .map_err(|_| RepositoryError::Unavailable("imports are closed".into()))?;
        let runtime = Handle::current();
        let ws = workspace.as_uuid();
        let result = self
            .db
            .run(move |conn| {
                let outcome = conn.transaction::<_, Stop, _>(|conn| {
                    // The transaction waits for the client between batches:
                    // longer than the pool's default idle limit allows.
                    diesel::sql_query("SET LOCAL idle_in_transaction_session_timeout = '120s'")
                        .execute(conn)?;
                    // One event for the whole import, written at its end,
                    // instead of one per row (migration `events`).
                    diesel::sql_query("SET LOCAL maveraa.bulk_import = 'on'").execute(conn)?;
                    let mut tally = ImportTally::default();
                    loop {
                        // On this database thread, never on an executor's.
                        let next = runtime.block_on(async {
                            tokio::time::timeout(SOURCE_TIMEOUT, rows.next()).await
                        });
                        match next {
                            Ok(None) => {
                                imported_event(conn, ws, &tally)?;
                                return Ok(tally);
                            }
                            Ok(Some(Ok(batch))) => {
                                write_batch(conn, ws, on_duplicate, &batch, &mut tally)?
                            }
                            Ok(Some(Err(_))) | Err(_) => return Err(Stop::Aborted),
                        }
                    }
                });
                match outcome {
                    Ok(tally) => Ok(Some(tally)),
                    Err(Stop::Aborted) => Ok(None),
                    Err(Stop::Storage(e)) => Err(e),
                }
            })
            .await?;
        Ok(result)
    }
}
