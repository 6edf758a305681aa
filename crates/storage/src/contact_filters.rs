//! How the contact lists find their rows: the search and label filters
//! written as the expressions of their indexes, the position a keyset page
//! starts after, and the counts (the workspace's kept count, a label's
//! kept count, or a count of the matches).

use chrono::{DateTime, Utc};
use diesel::dsl::AsExprOf;
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::{ContactPosition, ContactQuery};
use uuid::Uuid;

use crate::keyset::{Lt, RowCmp, row_lt};
use crate::schema::contacts;

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

pub(crate) fn after_contact(position: &ContactPosition) -> AfterContact {
    row_lt(
        (contacts::created_at, contacts::id),
        (
            position.at.into_sql::<Timestamptz>(),
            position.key.as_uuid().into_sql::<SqlUuid>(),
        ),
    )
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

        use super::after_contact;
        use crate::contacts::read_columns;
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

        use super::filtered;
        use crate::contacts::read_columns;
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
