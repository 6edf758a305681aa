//! Conversations: their list, marking one read, and the messages of one.
//! Both lists are newest first. A page read after a position (a cursor) is
//! a keyset page: the rows strictly after that row in the list's order,
//! bounded on the list's index. A page read from the newest or `before` a
//! time never ends inside a group of rows with one time (see
//! [`complete_tie`]), as `before` callers need.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{Conversation, ConversationQuery, WaId};
use maveraa_domain::{
    ConversationKey, ConversationPosition, MessageId, PageStart, SessionId, WorkspaceId,
};
use uuid::Uuid;

use crate::columns::WaIdColumn;
use crate::error::StorageError;
use crate::keyset::row_gt;
use crate::messages::rows::{MESSAGE_COLUMNS, MessageRow};
use crate::schema::conversations;
use crate::session_names::SessionNames;
use crate::sql::Sql;

/// A conversation's row, as lists read it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(Pg))]
struct ConversationRow {
    session_id: Uuid,
    #[diesel(deserialize_as = WaIdColumn)]
    remote: WaId,
    push_name: Option<String>,
    last_message: String,
    last_message_at: DateTime<Utc>,
    unread_count: i32,
}

/// The conversations of `workspace` (and `session`) last active exactly at
/// `at` that come after (`session_id`, `remote`) in the list's order: the
/// rest of a group of equal timestamps a page would otherwise end inside
/// (see [`complete_tie`]). Rare, so a boxed query.
fn tied_conversations(
    conn: &mut PgConnection,
    workspace: Uuid,
    session: Option<Uuid>,
    at: DateTime<Utc>,
    session_id: Uuid,
    remote: &str,
) -> QueryResult<Vec<ConversationRow>> {
    let mut q = conversations::table
        .filter(conversations::workspace_id.eq(workspace))
        .filter(conversations::last_message_at.eq(at))
        .filter(
            conversations::session_id
                .gt(session_id)
                .or(conversations::session_id
                    .eq(session_id)
                    .and(conversations::remote.gt(remote))),
        )
        .into_boxed();
    if let Some(session) = session {
        q = q.filter(conversations::session_id.eq(session));
    }
    q.order((conversations::session_id.asc(), conversations::remote.asc()))
        .select(ConversationRow::as_select())
        .load(conn)
}

/// The messages of one conversation (`$1` workspace, `$2` session, `$3`
/// remote), then `rest`: a statement's own filter and order.
fn in_conversation(rest: &str) -> Sql {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.workspace_id = $1 AND m.session_id = $2 AND m.remote = $3 {rest}"
    ))
}

/// A conversation's messages, newest first; `$4` page size.
static CONVERSATION_MESSAGES_SQL: LazyLock<Sql> =
    LazyLock::new(|| in_conversation("ORDER BY m.created_at DESC, m.id DESC LIMIT $4"));

/// As [`CONVERSATION_MESSAGES_SQL`], only messages older than `$5`.
static BEFORE_IN_CONVERSATION_SQL: LazyLock<Sql> = LazyLock::new(|| {
    in_conversation("AND m.created_at < $5 ORDER BY m.created_at DESC, m.id DESC LIMIT $4")
});

/// As [`CONVERSATION_MESSAGES_SQL`], only messages after message (`$5`
/// created_at, `$6` id) in the history's order: a keyset page, bounded on
/// `messages_conversation_idx` (`session_id, remote, created_at DESC, id
/// DESC`).
static AFTER_IN_CONVERSATION_SQL: LazyLock<Sql> = LazyLock::new(|| {
    in_conversation(
        "AND (m.created_at, m.id) < ($5, $6) ORDER BY m.created_at DESC, m.id DESC LIMIT $4",
    )
});

/// The rest of a group of messages stored at the same instant (`$4`) after
/// message `$5` in the history's order: see [`complete_tie`].
static TIED_IN_CONVERSATION_SQL: LazyLock<Sql> =
    LazyLock::new(|| in_conversation("AND m.created_at = $4 AND m.id < $5 ORDER BY m.id DESC"));

/// Whether a page read with one row more than `limit` ends inside a group
/// of rows with the same time (`at`): then the rows after the page's last
/// one in that group must be added, or a next page asked for with
/// `before` = that time would skip them. Otherwise the extra row is
/// dropped. Returns the time of the group to complete, if any.
fn complete_tie<R>(
    rows: &mut Vec<R>,
    limit: usize,
    at: impl Fn(&R) -> DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if rows.len() <= limit {
        return None;
    }
    let next = at(&rows[limit]);
    let tied = limit
        .checked_sub(1)
        .map(|last| at(&rows[last]))
        .filter(|boundary| *boundary == next);
    rows.truncate(limit);
    tied
}

/// Up to `fetch` messages of one conversation after the message at
/// (`at`, `id`) in the history's order.
fn messages_after(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    session: SessionId,
    remote: &str,
    (at, id): (DateTime<Utc>, Uuid),
    fetch: i64,
) -> QueryResult<Vec<MessageRow>> {
    AFTER_IN_CONVERSATION_SQL
        .query()
        .bind::<SqlUuid, _>(workspace.as_uuid())
        .bind::<SqlUuid, _>(session.as_uuid())
        .bind::<Text, _>(remote)
        .bind::<BigInt, _>(fetch)
        .bind::<Timestamptz, _>(at)
        .bind::<SqlUuid, _>(id)
        .load(conn)
}

/// A page of the messages of one conversation, newest first, from
/// `start`, and whether more messages follow it. After a position:
/// `limit` of them at most. Otherwise: `limit`, more when the page would
/// end inside a group stored at one instant.
pub(crate) fn messages(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    session: SessionId,
    remote: &str,
    start: PageStart<MessageId>,
    limit: u32,
) -> Result<(Vec<MessageRow>, bool), StorageError> {
    let fetch = i64::from(limit) + 1;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let before = match start {
        PageStart::After(position) => {
            let mut rows = messages_after(
                conn,
                workspace,
                session,
                remote,
                (position.at, position.key.as_uuid()),
                fetch,
            )?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            return Ok((rows, more));
        }
        PageStart::Before(before) => Some(before),
        PageStart::Newest => None,
    };
    // Two statements rather than `($4 IS NULL OR ...)`: each
    // keeps a plan that bounds the index scan.
    let sql = if before.is_some() {
        &BEFORE_IN_CONVERSATION_SQL
    } else {
        &CONVERSATION_MESSAGES_SQL
    };
    let query = sql
        .query()
        .bind::<SqlUuid, _>(workspace.as_uuid())
        .bind::<SqlUuid, _>(session.as_uuid())
        .bind::<Text, _>(remote)
        .bind::<BigInt, _>(fetch);
    let query = match before {
        Some(before) => query.bind::<Timestamptz, _>(before),
        None => query,
    };
    let mut rows: Vec<MessageRow> = query.load(conn)?;
    let mut more = rows.len() > limit;
    if let Some(at) = complete_tie(&mut rows, limit, |r| r.created_at)
        && let Some(last) = rows.last().map(|r| r.id)
    {
        let tied: Vec<MessageRow> = TIED_IN_CONVERSATION_SQL
            .query()
            .bind::<SqlUuid, _>(workspace.as_uuid())
            .bind::<SqlUuid, _>(session.as_uuid())
            .bind::<Text, _>(remote)
            .bind::<Timestamptz, _>(at)
            .bind::<SqlUuid, _>(last)
            .load(conn)?;
        rows.extend(tied);
        // The group may have been the rest of the history: look once more.
        if let Some(last) = rows.last() {
            more = !messages_after(
                conn,
                workspace,
                session,
                remote,
                (last.created_at, last.id),
                1,
            )?
            .is_empty();
        }
    }
    Ok((rows, more))
}

/// `$q` in the conversation list's order, `$fetch` rows: `last_message_at`
/// descending, then `session_id` and `remote` ascending, the order of the
/// indexes `conversations_workspace_idx` and `conversations_session_idx`.
macro_rules! ordered {
    ($q:expr, $fetch:expr) => {
        $q.order((
            conversations::last_message_at.desc(),
            conversations::session_id.asc(),
            conversations::remote.asc(),
        ))
        .limit($fetch)
        .select(ConversationRow::as_select())
    };
}

/// `$q`'s conversations after the position `$p`: those older than its
/// time, and those of its time whose (session, remote) comes after its
/// own. The order mixes directions, so this is not one row comparison;
/// `last_message_at <=` bounds the index scan at the position, and only
/// the position's own group of equal times is filtered out, so the cost is
/// the same at any depth.
macro_rules! after {
    ($q:expr, $p:expr) => {{
        let p: &ConversationPosition = $p;
        $q.filter(conversations::last_message_at.le(p.at)).filter(
            conversations::last_message_at.lt(p.at).or(row_gt(
                (conversations::session_id, conversations::remote),
                (
                    p.key.session.as_uuid().into_sql::<SqlUuid>(),
                    p.key.remote.as_str().to_owned().into_sql::<Text>(),
                ),
            )),
        )
    }};
}

/// Up to `fetch` conversations of `workspace` (and `session`) from `start`
/// in the list's order (see [`ordered!`]).
fn conversation_rows(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    session: Option<SessionId>,
    start: &PageStart<ConversationKey>,
    fetch: i64,
) -> QueryResult<Vec<ConversationRow>> {
    // No join with `sessions`: names come from `SessionNames`.
    let all = conversations::table.filter(conversations::workspace_id.eq(workspace.as_uuid()));
    // One fixed statement per combination of filters, not one
    // boxed query: diesel finds a fixed statement in its cache
    // by type, a boxed one by its SQL, rebuilt at every run.
    // Rows go straight into a vector of the page's size: one
    // allocation, not a chain of reallocations (each large one
    // makes glibc's malloc sweep its free lists).
    let capacity = usize::try_from(fetch).unwrap_or(0);
    macro_rules! page {
        ($q:expr) => {{
            let mut rows = Vec::with_capacity(capacity);
            for row in ordered!($q, fetch)
                .load_iter::<ConversationRow, diesel::connection::DefaultLoadingMode>(conn)?
            {
                rows.push(row?);
            }
            rows
        }};
    }
    Ok(match (session, start) {
        (None, PageStart::Newest) => page!(all),
        (Some(session), PageStart::Newest) => {
            page!(all.filter(conversations::session_id.eq(session.as_uuid())))
        }
        (None, PageStart::Before(before)) => {
            page!(all.filter(conversations::last_message_at.lt(*before)))
        }
        (Some(session), PageStart::Before(before)) => page!(
            all.filter(conversations::session_id.eq(session.as_uuid()))
                .filter(conversations::last_message_at.lt(*before))
        ),
        (None, PageStart::After(p)) => page!(after!(all, p)),
        (Some(session), PageStart::After(p)) => page!(after!(
            all.filter(conversations::session_id.eq(session.as_uuid())),
            p
        )),
    })
}

/// A page of the conversations of `workspace` (see [`ConversationQuery`]),
/// each named after its session, and where the next page starts (`None` on
/// the last page).
pub(crate) fn list(
    conn: &mut PgConnection,
    names: &SessionNames,
    workspace: WorkspaceId,
    query: &ConversationQuery,
) -> Result<(Vec<Conversation>, Option<ConversationPosition>), StorageError> {
    // One row more than the page: it tells whether another page follows
    // and, from the newest or `before`, whether the page ends inside a
    // group of conversations with one timestamp.
    let limit = usize::try_from(query.limit).unwrap_or(0);
    let mut rows = conversation_rows(
        conn,
        workspace,
        query.session,
        &query.start,
        i64::from(query.limit) + 1,
    )?;
    let mut more = rows.len() > limit;
    if matches!(query.start, PageStart::After(_)) {
        rows.truncate(limit);
    } else if let Some(at) = complete_tie(&mut rows, limit, |r| r.last_message_at)
        && let Some(last) = rows.last()
    {
        let tied = tied_conversations(
            conn,
            workspace.as_uuid(),
            query.session.map(|s| s.as_uuid()),
            at,
            last.session_id,
            last.remote.as_str(),
        )?;
        rows.extend(tied);
        // The group may have been the rest of the list: look once more.
        if let Some(last) = rows.last() {
            let position = PageStart::After(position_of(last));
            more = !conversation_rows(conn, workspace, query.session, &position, 1)?.is_empty();
        }
    }
    // The position of the last row read, even when its session is gone
    // (below): the next page starts after it all the same.
    let next = if more {
        rows.last().map(position_of)
    } else {
        None
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.session_id).collect();
    let session_names = names.resolve(conn, &ids)?;
    // A session deleted since the page was read has no name:
    // its conversations are gone too, so they are left out.
    let mut page = Vec::with_capacity(rows.len());
    for (r, session_name) in rows.into_iter().zip(session_names) {
        let Some(session_name) = session_name else {
            continue;
        };
        page.push(Conversation {
            session_id: SessionId::from_uuid(r.session_id),
            session_name,
            remote: r.remote,
            push_name: r.push_name,
            last_message: r.last_message,
            last_message_at: r.last_message_at,
            unread_count: u32::try_from(r.unread_count).unwrap_or(0),
        });
    }
    Ok((page, next))
}

/// A conversation row's place in the list.
fn position_of(row: &ConversationRow) -> ConversationPosition {
    ConversationPosition {
        at: row.last_message_at,
        key: ConversationKey {
            session: SessionId::from_uuid(row.session_id),
            remote: row.remote.clone(),
        },
    }
}

/// Sets a conversation's unread count to 0; `None` when there is no such
/// conversation, else the provider id of its latest inbound message, if
/// any (see `MessageRepository::mark_conversation_read`).
pub(crate) fn mark_read(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    session: SessionId,
    remote: &str,
) -> Result<Option<Option<String>>, StorageError> {
    Ok(diesel::update(
        conversations::table
            .filter(conversations::workspace_id.eq(workspace.as_uuid()))
            .filter(conversations::session_id.eq(session.as_uuid()))
            .filter(conversations::remote.eq(remote)),
    )
    .set(conversations::unread_count.eq(0))
    .returning(conversations::last_inbound_provider_id)
    .get_result::<Option<String>>(conn)
    .optional()?)
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
    use maveraa_domain::{ConversationKey, ConversationPosition, SessionId};

    use super::{AFTER_IN_CONVERSATION_SQL, ConversationRow, row_gt};
    use crate::keyset::explain::generic_plan;
    use crate::schema::conversations;
    use crate::testing::{fixture, now, session, wa, workspace};

    /// The first line of `plan` with an index scan's bound.
    fn bound(plan: &str) -> &str {
        plan.lines()
            .find(|l| l.contains("Index Cond"))
            .unwrap_or_default()
    }

    /// Pages after a position read the list's index from the position on
    /// (its bound is the scan's `Index Cond`), as the read pool plans them.
    #[tokio::test]
    async fn pages_after_a_position_are_bounded_on_their_indexes() {
        let f = fixture();
        let ws = workspace(&f, "Acme").await;
        let s = session(&f, ws, "s1").await;
        let (w, sid) = (ws.as_uuid(), s.id.as_uuid());
        f.sql(&format!(
            "INSERT INTO conversations (session_id, remote, workspace_id, last_message, last_message_at) \
             SELECT '{sid}', (6281000000000 + i)::text, '{w}', 'hi', now() - i * interval '1 second' \
             FROM generate_series(1, 3000) AS i"
        ));
        f.sql(&format!(
            "INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, status, created_at, updated_at) \
             SELECT gen_random_uuid(), '{w}', '{sid}', '6281000000001', 'inbound', 'text', 'hi', 'received', \
                    now() - i * interval '1 second', now() \
             FROM generate_series(1, 3000) AS i"
        ));
        f.sql("ANALYZE conversations");
        f.sql("ANALYZE messages");
        let position = ConversationPosition {
            at: now(),
            key: ConversationKey {
                session: SessionId::from_uuid(sid),
                remote: wa("6281000000500"),
            },
        };
        let at = now().to_rfc3339();
        let conversation_args = format!("'{w}', '{at}', '{at}', '{sid}', '6281000000500', 51");
        // diesel numbers parameters in the order they appear in the text.
        let message_args = format!(
            "'{w}', '{sid}', '6281000000001', '{at}', '{}', 51",
            uuid::Uuid::new_v4()
        );
        let (conversations_plan, messages_plan) = f
            .store
            .database()
            .run_blocking(move |conn| {
                let all = conversations::table.filter(conversations::workspace_id.eq(w));
                let page = ordered!(after!(all, &position), 51_i64);
                let conversations_plan = generic_plan(conn, &page, &conversation_args)?;
                let page = AFTER_IN_CONVERSATION_SQL
                    .query()
                    .bind::<SqlUuid, _>(w)
                    .bind::<SqlUuid, _>(sid)
                    .bind::<Text, _>("6281000000001")
                    .bind::<BigInt, _>(51_i64)
                    .bind::<Timestamptz, _>(now())
                    .bind::<SqlUuid, _>(uuid::Uuid::new_v4());
                let messages_plan = generic_plan(conn, &page, &message_args)?;
                Ok((conversations_plan, messages_plan))
            })
            .expect("explain");
        assert!(
            conversations_plan.contains("conversations_workspace_idx"),
            "{conversations_plan}"
        );
        assert!(
            bound(&conversations_plan).contains("last_message_at <="),
            "{conversations_plan}"
        );
        assert!(
            messages_plan.contains("messages_conversation_idx"),
            "{messages_plan}"
        );
        assert!(
            bound(&messages_plan).contains("ROW(created_at, id) <"),
            "{messages_plan}"
        );
    }
}
