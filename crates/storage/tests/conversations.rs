//! Conversation lists and a conversation's messages against a real
//! PostgreSQL, one database per test: order, paging, session names and
//! tenants.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::RunQueryDsl;
use maveraa_domain::messaging::{Conversation, ConversationQuery, Session};
use maveraa_domain::{MessageId, PageStart, SessionId, WorkspaceId};
use maveraa_storage::testing::{
    Fixture, fixture, now, outbound, outbound_at, session, wa, workspace,
};

use common::{all_conversations, enqueue, inbound};

/// From the newest, or before a time.
fn from_before<K>(before: Option<DateTime<Utc>>) -> PageStart<K> {
    before.map_or(PageStart::Newest, PageStart::Before)
}

async fn conversations_page(
    f: &Fixture,
    ws: WorkspaceId,
    session: Option<SessionId>,
    before: Option<DateTime<Utc>>,
    limit: u32,
) -> Vec<Conversation> {
    f.messages()
        .list_conversations(
            ws,
            &ConversationQuery {
                session,
                start: from_before(before),
                limit,
            },
        )
        .await
        .expect("list")
        .items
}

#[tokio::test]
async fn conversations_list_newest_first_by_page_and_session() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s1 = session(&f, ws, "s1").await;
    let s2 = session(&f, ws, "s2").await;
    let t0 = now() - TimeDelta::hours(1);
    let at = |minutes| t0 + TimeDelta::minutes(minutes);
    enqueue(&f, &outbound_at(&s1, "6281000000001", "one", at(1))).await;
    enqueue(&f, &outbound_at(&s2, "6281000000002", "two", at(2))).await;
    enqueue(&f, &outbound_at(&s1, "6281000000003", "three", at(3))).await;
    enqueue(&f, &outbound_at(&s1, "6281000000001", "four", at(4))).await;
    // An older message does not move its conversation back.
    enqueue(&f, &outbound_at(&s2, "6281000000002", "zero", at(0))).await;

    let list = |session: Option<SessionId>, before, limit| {
        let f = &f;
        async move {
            conversations_page(f, ws, session, before, limit)
                .await
                .into_iter()
                .map(|c| (c.remote.as_str().to_owned(), c.last_message, c.session_name))
                .collect::<Vec<_>>()
        }
    };
    let row = |remote: &str, last: &str, s: &Session| {
        (remote.to_owned(), last.to_owned(), s.name.clone())
    };
    assert_eq!(
        list(None, None, 50).await,
        vec![
            row("6281000000001", "four", &s1),
            row("6281000000003", "three", &s1),
            row("6281000000002", "two", &s2),
        ]
    );
    assert_eq!(
        list(None, Some(at(3)), 50).await,
        vec![row("6281000000002", "two", &s2)],
        "strictly older than before"
    );
    assert_eq!(
        list(None, None, 1).await,
        vec![row("6281000000001", "four", &s1)]
    );
    assert_eq!(
        list(Some(s2.id), None, 50).await,
        vec![row("6281000000002", "two", &s2)]
    );

    // Messages of a conversation: newest first, paged by `before`.
    let texts = |before, limit| {
        let f = &f;
        let s1 = s1.clone();
        async move {
            f.messages()
                .list_for_conversation(ws, s1.id, &wa("6281000000001"), from_before(before), limit)
                .await
                .expect("list")
                .items
                .into_iter()
                .filter_map(|m| m.content.text().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(texts(None, 10).await, vec!["four", "one"]);
    assert_eq!(texts(None, 1).await, vec!["four"]);
    assert_eq!(texts(Some(at(4)), 10).await, vec!["one"]);
}

/// Conversations and messages stamped with the same instant: paging with
/// `before` = the last item's time misses none and repeats none, because a
/// page never ends inside such a group.
#[tokio::test]
async fn pages_never_end_inside_a_group_of_equal_times() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s1 = session(&f, ws, "s1").await;
    let s2 = session(&f, ws, "s2").await;
    let t0 = now() - TimeDelta::hours(1);
    let tie = t0 + TimeDelta::minutes(5);
    // Newest first: 01 alone, then 02..=06 at one instant over two
    // sessions, then 07.
    enqueue(
        &f,
        &outbound_at(&s1, "6281000000001", "m1", t0 + TimeDelta::minutes(9)),
    )
    .await;
    for (i, s) in [(2, &s1), (3, &s2), (4, &s1), (5, &s2), (6, &s1)] {
        enqueue(
            &f,
            &outbound_at(s, &format!("628100000000{i}"), "tied", tie),
        )
        .await;
    }
    enqueue(&f, &outbound_at(&s2, "6281000000007", "m7", t0)).await;

    let page = |session, before, limit| conversations_page(&f, ws, session, before, limit);
    for (session, expected) in [(None, 7), (Some(s1.id), 4)] {
        for limit in [1, 2, 3] {
            let mut seen = Vec::new();
            let mut before = None;
            let mut pages = 0;
            loop {
                let list = page(session, before, limit).await;
                let Some(last) = list.last() else { break };
                before = Some(last.last_message_at);
                seen.extend(list.iter().map(|c| c.remote.as_str().to_owned()));
                pages += 1;
                assert!(pages <= 7, "paging makes progress");
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "none twice: {seen:?}");
            assert_eq!(
                seen.len(),
                expected,
                "limit {limit}, session {session:?}: {seen:?}"
            );
        }
    }
    // The page that reaches the group holds all of it.
    let first_two = page(None, None, 2).await;
    assert_eq!(
        first_two.len(),
        6,
        "the 5 tied come together with the first"
    );
    assert_eq!(
        page(None, None, 1).await.len(),
        1,
        "a page before the group is not widened"
    );

    // Messages of one conversation at one instant.
    let c = "6281000000009";
    for text in ["a", "b", "c", "d"] {
        enqueue(&f, &outbound_at(&s1, c, text, tie)).await;
    }
    enqueue(&f, &outbound_at(&s1, c, "older", t0)).await;
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let list = f
            .messages()
            .list_for_conversation(ws, s1.id, &wa(c), from_before(before), 1)
            .await
            .expect("list")
            .items;
        let Some(last) = list.last() else { break };
        before = Some(last.created_at);
        seen.extend(
            list.iter()
                .filter_map(|m| m.content.text().map(str::to_owned)),
        );
        assert!(seen.len() <= 5, "paging makes progress");
    }
    seen[..4].sort();
    assert_eq!(seen, vec!["a", "b", "c", "d", "older"]);
}

/// Conversation lists take session names from a cache by session id, which
/// is right only because a name never changes: check both.
#[tokio::test]
async fn conversation_lists_name_sessions_through_deletes_and_names_never_change() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let alpha = session(&f, ws, "alpha").await;
    let beta = session(&f, ws, "beta").await;
    enqueue(&f, &outbound(&alpha, "6281000000001", "to alpha's contact")).await;
    enqueue(&f, &outbound(&beta, "6281000000002", "to beta's contact")).await;
    let names = || async {
        f.messages()
            .list_conversations(ws, &all_conversations())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|c| {
                (
                    c.session_id,
                    c.session_name.as_str().to_owned(),
                    c.last_message,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names().await,
        vec![
            (beta.id, "beta".to_owned(), "to beta's contact".to_owned()),
            (
                alpha.id,
                "alpha".to_owned(),
                "to alpha's contact".to_owned()
            ),
        ]
    );

    let rename = format!(
        "UPDATE sessions SET name = 'renamed' WHERE id = '{}'",
        beta.id
    );
    let refused = f
        .store
        .database()
        .run_blocking(move |conn| Ok(diesel::sql_query(rename).execute(conn)?))
        .expect_err("a session's name cannot change");
    assert!(refused.to_string().contains("cannot change"), "{refused}");
    // Other columns still can.
    f.sql(&format!(
        "UPDATE sessions SET status = 'failed' WHERE id = '{}'",
        beta.id
    ));

    // "alpha" deleted and created again is another session, named right.
    assert!(f.sessions().delete(ws, &alpha.name).await.expect("delete"));
    let alpha_again = session(&f, ws, "alpha").await;
    enqueue(
        &f,
        &outbound(&alpha_again, "6281000000003", "to the new alpha"),
    )
    .await;
    assert_eq!(
        names().await,
        vec![
            (
                alpha_again.id,
                "alpha".to_owned(),
                "to the new alpha".to_owned()
            ),
            (beta.id, "beta".to_owned(), "to beta's contact".to_owned()),
        ]
    );
}

#[tokio::test]
async fn another_workspace_sees_no_messages_or_conversations() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "secret plans");
    enqueue(&f, &m).await;
    f.messages()
        .record_inbound(
            &s,
            MessageId::new(),
            &inbound("in-1", "6281234567890", "hi", None),
            now(),
        )
        .await
        .expect("inbound");

    assert_eq!(f.messages().get(other, m.id).await.expect("get"), None);
    assert!(
        f.messages()
            .list_for_conversation(other, s.id, &m.remote, PageStart::Newest, 10)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        f.messages()
            .list_conversations(other, &all_conversations())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        f.messages()
            .list_conversations(
                other,
                &ConversationQuery {
                    session: Some(s.id),
                    ..all_conversations()
                }
            )
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(
        f.messages()
            .mark_conversation_read(other, s.id, &m.remote)
            .await
            .expect("read"),
        None
    );
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")
        .items[0];
    assert_eq!(c.unread_count, 1, "untouched");
}
