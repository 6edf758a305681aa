//! Keyset paging (`after` a position) of the contact list, the
//! conversation list and a conversation's messages, against a real
//! PostgreSQL: every row once and in order, rows of equal times included,
//! and nothing skipped or repeated when rows are inserted and deleted
//! between two pages.

mod common;

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use chrono::{DateTime, TimeDelta, Utc};
use maveraa_domain::messaging::ConversationQuery;
use maveraa_domain::ports::ContactRepository;
use maveraa_domain::{
    Contact, ContactId, ContactName, ContactQuery, Labels, PageStart, PhoneNumber, SessionId,
    WorkspaceId,
};
use maveraa_storage::testing::{Fixture, fixture, now, outbound_at, session, wa, workspace};

use common::enqueue;

/// Stores a contact created at `at`.
async fn contact_at(
    f: &Fixture,
    ws: WorkspaceId,
    n: u32,
    label: &str,
    at: DateTime<Utc>,
) -> Contact {
    let c = Contact {
        id: ContactId::new(),
        workspace_id: ws,
        name: ContactName::parse("name", &format!("Contact {n}")).expect("name"),
        phone: PhoneNumber::parse("phone", &format!("62812{:08}", n)).expect("phone"),
        labels: Labels::parse_csv("labels", label).expect("labels"),
        created_at: at,
        updated_at: at,
    };
    ContactRepository::insert(f.store.as_ref(), &c)
        .await
        .expect("insert");
    c
}

/// Every item of `all` (the whole list, in order) exactly once in `seen`,
/// in the same order.
fn assert_once_in_order<T: Eq + Hash + Debug + Clone>(seen: &[T], all: &[T]) {
    let unique: HashSet<&T> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row repeated: {seen:?}");
    assert_eq!(seen, all, "every row, in the list's order");
}

async fn contact_page(
    f: &Fixture,
    ws: WorkspaceId,
    base: &ContactQuery,
    after: Option<maveraa_domain::ContactPosition>,
) -> maveraa_domain::ContactPage {
    ContactRepository::list(
        f.store.as_ref(),
        ws,
        &ContactQuery {
            after,
            ..base.clone()
        },
    )
    .await
    .expect("list")
}

/// Walks the contact list from its start; the ids of every page.
async fn walk_contacts(f: &Fixture, ws: WorkspaceId, base: &ContactQuery) -> Vec<ContactId> {
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = contact_page(f, ws, base, after).await;
        assert!(page.contacts.len() <= 4, "never more than the limit");
        seen.extend(page.contacts.iter().map(|c| c.id));
        match page.next {
            Some(next) => {
                assert_eq!(page.contacts.len(), 4, "only a last page is short");
                after = Some(next);
            }
            None => return seen,
        }
    }
    panic!("paging makes no progress")
}

#[tokio::test]
async fn contact_pages_after_a_position_hold_every_contact_once_in_order() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let t0 = now() - TimeDelta::hours(1);
    // 22 contacts, in groups of three created at one instant: page
    // boundaries fall inside groups.
    for n in 0..22 {
        let label = if n % 2 == 0 { "Even" } else { "Odd" };
        contact_at(&f, ws, n, label, t0 + TimeDelta::seconds(i64::from(n / 3))).await;
    }
    for base in [
        ContactQuery {
            limit: Some(4),
            ..ContactQuery::default()
        },
        ContactQuery {
            limit: Some(4),
            label: Some("even".into()),
            ..ContactQuery::default()
        },
        ContactQuery {
            limit: Some(4),
            search: Some("Contact 1".into()),
            ..ContactQuery::default()
        },
    ] {
        let all: Vec<ContactId> = contact_page(
            &f,
            ws,
            &ContactQuery {
                limit: None,
                ..base.clone()
            },
            None,
        )
        .await
        .contacts
        .iter()
        .map(|c| c.id)
        .collect();
        assert!(all.len() > 4, "more than one page: {base:?}");
        let seen = walk_contacts(&f, ws, &base).await;
        assert_once_in_order(&seen, &all);
        // `total` counts the whole filter on every page, keyset or not.
        let last = contact_page(&f, ws, &base, None).await;
        assert_eq!(last.total, u64::try_from(all.len()).expect("small"));
    }
}

#[tokio::test]
async fn contact_pages_after_a_position_survive_inserts_and_deletes() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let t0 = now() - TimeDelta::hours(1);
    let mut contacts = Vec::new();
    for n in 0..16 {
        contacts.push(contact_at(&f, ws, n, "", t0 + TimeDelta::seconds(i64::from(n / 2))).await);
    }
    // Newest first, as the list orders them.
    contacts.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
    let base = ContactQuery {
        limit: Some(4),
        ..ContactQuery::default()
    };
    let first = contact_page(&f, ws, &base, None).await;
    let mut seen: Vec<ContactId> = first.contacts.iter().map(|c| c.id).collect();
    // Between the pages: newer contacts arrive (an offset would repeat the
    // first page's last rows), one of the first page and one of a later
    // page are deleted (an offset would skip rows), and one is created at
    // the very instant of the page's last contact.
    for n in 100..105 {
        contact_at(&f, ws, n, "", now()).await;
    }
    let boundary = &contacts[3];
    contact_at(&f, ws, 200, "", boundary.created_at).await;
    let deleted = [contacts[0].id, contacts[9].id];
    for id in deleted {
        assert!(
            ContactRepository::delete(f.store.as_ref(), ws, id)
                .await
                .expect("delete")
        );
    }
    let mut after = first.next;
    while let Some(position) = after {
        let page = contact_page(&f, ws, &base, Some(position)).await;
        seen.extend(page.contacts.iter().map(|c| c.id));
        after = page.next;
        assert!(seen.len() < 40, "paging makes progress");
    }
    let throughout: Vec<ContactId> = contacts
        .iter()
        .map(|c| c.id)
        .filter(|id| !deleted.contains(id))
        .collect();
    let seen_throughout: Vec<ContactId> = seen
        .iter()
        .copied()
        .filter(|id| throughout.contains(id))
        .collect();
    assert_once_in_order(&seen_throughout, &throughout);
    assert!(seen.contains(&contacts[0].id), "read before it was deleted");
    assert!(!seen.contains(&contacts[9].id), "deleted before its page");
}

#[tokio::test]
async fn conversation_and_message_pages_after_a_position_hold_every_row_once() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s1 = session(&f, ws, "s1").await;
    let s2 = session(&f, ws, "s2").await;
    let t0 = now() - TimeDelta::hours(1);
    // 14 conversations over two sessions, pairs sharing a last time.
    for n in 0..14u32 {
        let s = if n % 3 == 0 { &s2 } else { &s1 };
        let at = t0 + TimeDelta::seconds(i64::from(n / 2));
        enqueue(&f, &outbound_at(s, &format!("62810000000{n:02}"), "hi", at)).await;
    }
    let query = |session: Option<SessionId>, start| ConversationQuery {
        session,
        start,
        limit: 3,
    };
    for session in [None, Some(s1.id)] {
        let all: Vec<(SessionId, String)> = f
            .messages()
            .list_conversations(
                ws,
                &ConversationQuery {
                    limit: 500,
                    ..query(session, PageStart::Newest)
                },
            )
            .await
            .expect("all")
            .items
            .iter()
            .map(|c| (c.session_id, c.remote.as_str().to_owned()))
            .collect();
        assert!(all.len() > 3);
        let mut seen = Vec::new();
        let mut start = PageStart::Newest;
        // The oldest conversation, deleted after the first page.
        let gone = all.last().cloned().expect("conversations");
        let mut first = true;
        loop {
            // A first page keeps a group of equal times whole (for
            // `before` callers); a page after a position never exceeds the
            // limit.
            let keyset = matches!(start, PageStart::After(_));
            let page = f
                .messages()
                .list_conversations(ws, &query(session, start))
                .await
                .expect("page");
            assert!(!keyset || page.items.len() <= 3, "{}", page.items.len());
            seen.extend(
                page.items
                    .iter()
                    .map(|c| (c.session_id, c.remote.as_str().to_owned())),
            );
            if first {
                // Between the pages: a new conversation and a deleted one
                // not read yet.
                first = false;
                let n = if session.is_some() { 60 } else { 50 };
                enqueue(
                    &f,
                    &outbound_at(&s1, &format!("628100000{n:04}"), "new", now()),
                )
                .await;
                f.sql(&format!(
                    "DELETE FROM conversations WHERE session_id = '{}' AND remote = '{}'",
                    gone.0, gone.1
                ));
            }
            match page.next {
                Some(next) => start = PageStart::After(next),
                None => break,
            }
            assert!(seen.len() < 40, "paging makes progress");
        }
        let throughout: Vec<_> = all.iter().filter(|c| **c != gone).cloned().collect();
        assert_once_in_order(&seen, &throughout);
    }

    // A conversation's messages: 11, in groups of three stored at one
    // instant; between pages a newer message arrives and an older one
    // not yet read is deleted.
    let remote = "6281000000099";
    let mut ids = Vec::new();
    for n in 0..11u32 {
        let m = outbound_at(
            &s1,
            remote,
            &format!("m{n}"),
            t0 + TimeDelta::seconds(i64::from(n / 3)),
        );
        enqueue(&f, &m).await;
        ids.push((m.created_at, m.id));
    }
    ids.sort_by_key(|k| std::cmp::Reverse(*k));
    let history: Vec<_> = ids.iter().map(|(_, id)| *id).collect();
    let page = |start| {
        let f = &f;
        async move {
            f.messages()
                .list_for_conversation(ws, s1.id, &wa(remote), start, 3)
                .await
                .expect("messages")
        }
    };
    let first = page(PageStart::Newest).await;
    let mut seen: Vec<_> = first.items.iter().map(|m| m.id).collect();
    enqueue(&f, &outbound_at(&s1, remote, "newer", now())).await;
    let gone = history[7];
    f.sql(&format!("DELETE FROM messages WHERE id = '{gone}'"));
    let mut next = first.next;
    while let Some(position) = next {
        let p = page(PageStart::After(position)).await;
        assert!(
            p.items.len() <= 3,
            "never more than the limit after a position"
        );
        seen.extend(p.items.iter().map(|m| m.id));
        next = p.next;
        assert!(seen.len() < 40, "paging makes progress");
    }
    let throughout: Vec<_> = history.iter().copied().filter(|id| *id != gone).collect();
    assert_once_in_order(&seen, &throughout);
}
