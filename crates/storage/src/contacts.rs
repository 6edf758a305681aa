use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::AsExprOf;
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::ports::{ConditionalUpdate, ContactRepository};
use maveraa_domain::{
    Contact, ContactId, ContactPage, ContactPosition, ContactQuery, ContactStream, ImportTally,
    ImportedContacts, OnDuplicate, RepositoryError, WorkspaceId,
};
use uuid::Uuid;

use crate::columns::{LabelsColumn, NameColumn, PhoneColumn};
use crate::error::StorageError;
use crate::keyset::{Lt, RowCmp, row_lt};
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

/// Escapes LIKE's wildcards so user text matches literally.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The digits of `search` when it reads as (part of) a phone number:
/// digits and only the separators numbers are written with. "+62 812-345"
/// searches phones too; "Room 1" only names (its digit alone would match
/// nearly every phone).
fn phone_digits(search: &str) -> Option<String> {
    let phone_like = search
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '.' | '(' | ')'));
    let digits: String = search.chars().filter(char::is_ascii_digit).collect();
    (phone_like && !digits.is_empty()).then_some(digits)
}

/// The digit groups a phone part is looked up by in
/// `contacts_phone_grams_idx` (migration `contact_phone_grams`): its
/// distinct groups of 4 digits; none below 4 digits.
fn phone_grams(digits: &str) -> Vec<String> {
    match digits.len() {
        0..=3 => Vec::new(),
        n => {
            let mut grams: Vec<String> = (0..=n - 4).map(|i| digits[i..i + 4].to_owned()).collect();
            grams.sort_unstable();
            grams.dedup();
            grams
        }
    }
}

/// The contacts of `workspace` that match the query's filters.
pub(crate) fn filtered(workspace: Uuid, query: &ContactQuery) -> contacts::BoxedQuery<'static, Pg> {
    let mut q = contacts::table
        .filter(contacts::workspace_id.eq(workspace))
        .into_boxed();
    if let Some(search) = query.search.as_deref() {
        let name_pattern = format!("%{}%", like_escape(search));
        match phone_digits(search) {
            None => q = q.filter(contacts::name.ilike(name_pattern)),
            Some(digits) => {
                let phone_part = contacts::phone.like(format!("%{digits}%"));
                let grams = phone_grams(&digits);
                q = if grams.is_empty() {
                    q.filter(contacts::name.ilike(name_pattern).or(phone_part))
                } else {
                    // Written as the expression of `contacts_phone_grams_idx`.
                    q.filter(
                        contacts::name.ilike(name_pattern).or(sql::<Bool>(
                            "contact_phone_grams(contacts.phone) @> ",
                        )
                        .bind::<diesel::sql_types::Array<Text>, _>(grams)
                        .sql("::text[]")
                        .and(phone_part)),
                    )
                };
            }
        }
    }
    if let Some(label) = query.label.clone() {
        // Written as the expression of `contacts_labels_lower_idx` (GIN), so
        // the filter reads the index instead of every contact's labels.
        q = q.filter(
            sql::<Bool>("contact_labels_lower(contacts.labels) @> ARRAY[lower(")
                .bind::<Text, _>(label)
                .sql(")]"),
        );
    }
    q
}

/// A label's count, kept by triggers (migration `contact_label_counts`).
#[derive(QueryableByName)]
struct LabelTotal {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many contacts of `workspace` match the query's filters: for a label
/// alone, its kept count (a lookup, whatever the number of matches);
/// otherwise counted.
pub(crate) fn count_matching(
    conn: &mut PgConnection,
    workspace: Uuid,
    query: &ContactQuery,
) -> QueryResult<i64> {
    match (&query.search, &query.label) {
        (None, Some(label)) => diesel::sql_query(
            "SELECT coalesce(sum(n), 0)::bigint AS n FROM contact_label_counts \
             WHERE workspace_id = $1 AND label = lower($2)",
        )
        .bind::<SqlUuid, _>(workspace)
        .bind::<Text, _>(label)
        .get_result::<LabelTotal>(conn)
        .map(|t| t.n),
        _ => filtered(workspace, query).count().get_result(conn),
    }
}

/// `(created_at, id) < (position)`: the contacts after `position` in the
/// list's order, newest first. A bound on `contacts_workspace_created_idx`
/// (`workspace_id, created_at DESC, id DESC`), so a page after any
/// position costs what the first page costs.
type AfterContact = RowCmp<
    (contacts::created_at, contacts::id),
    (
        AsExprOf<DateTime<Utc>, Timestamptz>,
        AsExprOf<Uuid, SqlUuid>,
    ),
    Lt,
>;

fn after_contact(position: &ContactPosition) -> AfterContact {
    row_lt(
        (contacts::created_at, contacts::id),
        (
            position.at.into_sql::<Timestamptz>(),
            position.key.as_uuid().into_sql::<SqlUuid>(),
        ),
    )
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

/// The workspace's contact count, as one scalar subquery: the count its
/// row keeps plus the changes recorded beside it while another transaction
/// (a bulk import) held the row (migration `contact_count_deltas`); NULL
/// when there is no such workspace. Written by hand so that the statements
/// that read it stay prepared (a `sql` literal would make them
/// uncacheable).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredCount(pub(crate) Uuid);

impl Expression for StoredCount {
    type SqlType = diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

impl<QS> AppearsOnTable<QS> for StoredCount {}

impl<QS> SelectableExpression<QS> for StoredCount {}

impl diesel::expression::ValidGrouping<()> for StoredCount {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl diesel::query_builder::QueryId for StoredCount {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<Pg> for StoredCount {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()> {
        out.push_sql(
            "(SELECT w.contact_count + coalesce((SELECT sum(d.delta) FROM contact_count_deltas d \
             WHERE d.workspace_id = w.id), 0) FROM workspaces w WHERE w.id = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.0)?;
        out.push_sql(")");
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::{like_escape, phone_digits, phone_grams};

    #[test]
    fn only_a_search_written_like_a_number_searches_phones() {
        assert_eq!(
            phone_digits("+62 (812) 345-67.8").as_deref(),
            Some("62812345678")
        );
        assert_eq!(phone_digits("0812").as_deref(), Some("0812"));
        assert_eq!(phone_digits("Room 1"), None);
        assert_eq!(phone_digits("100%"), None);
        assert_eq!(phone_digits("+ -"), None);
    }

    #[test]
    fn a_phone_part_is_looked_up_by_its_digit_groups() {
        assert!(phone_grams("812").is_empty());
        assert_eq!(phone_grams("8120"), ["8120"]);
        assert_eq!(
            phone_grams("81200012"),
            ["0001", "0012", "1200", "2000", "8120"]
        );
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
    }

    /// A page after a position reads the `(workspace_id, created_at DESC,
    /// id DESC)` index from the position on: the row comparison is the
    /// index scan's bound (`Index Cond`), not a filter over the rows
    /// before it, so a deep page costs what the first does.
    #[tokio::test]
    async fn a_page_after_a_position_is_bounded_on_the_index() {
        use diesel::prelude::*;
        use maveraa_domain::{ContactId, ContactPosition};

        use super::{after_contact, read_columns};
        use crate::keyset::explain::generic_plan;
        use crate::schema::contacts;
        use crate::testing::{fixture, now, workspace};

        let f = fixture();
        let ws = workspace(&f, "Acme").await.as_uuid();
        f.sql(&format!(
            "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
             SELECT gen_random_uuid(), '{ws}', 'Name ' || i, (6281000000000 + i)::text, '{{}}', \
                    now() - i * interval '1 second', now() \
             FROM generate_series(1, 5000) AS i"
        ));
        f.sql("ANALYZE contacts");
        let position = ContactPosition {
            at: now(),
            key: ContactId::new(),
        };
        let args = format!(
            "'{ws}', '{}', '{}', 51",
            position.at.to_rfc3339(),
            position.key
        );
        let plan = f
            .store
            .database()
            .run_blocking(move |conn| {
                let page = contacts::table
                    .filter(contacts::workspace_id.eq(ws))
                    .filter(after_contact(&position))
                    .order((contacts::created_at.desc(), contacts::id.desc()))
                    .select(read_columns())
                    .limit(51);
                Ok(generic_plan(conn, &page, &args)?)
            })
            .expect("explain");
        assert!(plan.contains("contacts_workspace_created_idx"), "{plan}");
        let bound = plan
            .lines()
            .find(|l| l.contains("Index Cond"))
            .unwrap_or_default();
        assert!(bound.contains("ROW(created_at, id) <"), "{plan}");
    }

    /// The plans of the search and label filter as `list` makes them
    /// (custom plans, sequential scans off as on every pooled connection),
    /// on a seeded table: each uses its index instead of reading the
    /// whole workspace.
    #[tokio::test]
    async fn searches_and_the_label_filter_use_their_indexes() {
        use diesel::connection::SimpleConnection;
        use diesel::pg::Pg;
        use diesel::prelude::*;
        use diesel::sql_types::Text;
        use maveraa_domain::ContactQuery;

        use super::{filtered, read_columns};
        use crate::schema::contacts;
        use crate::testing::{fixture, workspace};

        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }

        let f = fixture();
        let ws = workspace(&f, "Acme").await.as_uuid();
        f.sql(&format!(
            "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
             SELECT gen_random_uuid(), '{ws}', 'Name ' || md5(i::text), (6281000000000 + i)::text, \
                    CASE WHEN i % 500 = 0 THEN '{{Vip}}'::text[] ELSE '{{Lead}}' END, now(), now() \
             FROM generate_series(1, 20000) AS i; "
        ));
        // VACUUM moves the rows from the GIN indexes' pending lists into
        // the indexes proper, as autovacuum would.
        f.sql("VACUUM ANALYZE contacts");
        let cases = [
            // (query, EXECUTE's arguments after the workspace, the indexes)
            (
                ContactQuery {
                    search: Some("c4ca4".into()),
                    ..ContactQuery::default()
                },
                "'%c4ca4%'",
                &["contacts_name_trgm_idx"][..],
            ),
            (
                ContactQuery {
                    search: Some("+62 810 0001 2345".into()),
                    ..ContactQuery::default()
                },
                "'%+62 810 0001 2345%', \
                 '{0000,0001,0012,0123,1000,1234,2345,2810,6281,8100}', '%6281000012345%'",
                &["contacts_name_trgm_idx", "contacts_phone_grams_idx"][..],
            ),
            (
                ContactQuery {
                    label: Some("VIP".into()),
                    ..ContactQuery::default()
                },
                "'VIP'",
                &["contacts_labels_lower_idx"][..],
            ),
        ];
        for (query, args, indexes) in cases {
            let count = filtered(ws, &query).count();
            let page = filtered(ws, &query)
                .order((contacts::created_at.desc(), contacts::id.desc()))
                .select(read_columns())
                .limit(50)
                .offset(0);
            for (sql, tail) in [
                (diesel::debug_query::<Pg, _>(&count).to_string(), ""),
                (diesel::debug_query::<Pg, _>(&page).to_string(), ", 50, 0"),
            ] {
                let sql = sql
                    .split(" -- binds: ")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let execute = format!("EXECUTE q('{ws}', {args}{tail})");
                let plan = f
                    .store
                    .database()
                    .run_blocking(move |conn| {
                        conn.batch_execute(
                            "SET plan_cache_mode = force_custom_plan; SET enable_seqscan = off",
                        )?;
                        conn.batch_execute(&format!("PREPARE q AS {sql}"))?;
                        let plan =
                            diesel::sql_query(format!("EXPLAIN {execute}")).load::<Line>(conn)?;
                        conn.batch_execute(
                            "DEALLOCATE q; RESET plan_cache_mode; RESET enable_seqscan",
                        )?;
                        Ok(plan
                            .into_iter()
                            .map(|l| l.line)
                            .collect::<Vec<_>>()
                            .join("\n"))
                    })
                    .expect("explain");
                for index in indexes {
                    assert!(plan.contains(index), "{index} unused:\n{plan}");
                }
            }
        }
    }
}
