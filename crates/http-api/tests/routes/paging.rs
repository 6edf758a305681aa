//! Cursor paging through the routes: `next` and `after` on the contact
//! list, the conversation list and a conversation's messages, and the
//! `400`s of a cursor that does not fit.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::common::{KEY_A, World, call, get, post, world};

/// Creates a contact; its `_id`.
async fn create_contact(w: &World, n: u32, labels: &str) -> String {
    let a = call(
        w,
        post("/api/public/contacts").set_json(json!({
            "name": format!("Person {n}"),
            "phone": format!("62812000{n:05}"),
            "labels": labels,
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    a.json["_id"].as_str().unwrap_or_default().to_owned()
}

/// The `_id`s (or `field`s) of a list answer's `key` array.
fn ids(json: &Value, key: &str, field: &str) -> Vec<String> {
    json[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i[field].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every page of `uri` (which has a `?`) through `after`, calling
/// `between` after the first page; the items' `field` of `key`, in order.
async fn walk(
    w: &World,
    uri: &str,
    key: &str,
    field: &str,
    mut between: impl AsyncFnMut(),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for page in 0..50 {
        let url = match &next {
            Some(cursor) => format!("{uri}&after={cursor}"),
            None => uri.to_owned(),
        };
        let a = call(w, get(&url)).await;
        assert_eq!(a.status, StatusCode::OK, "{url}: {}", a.json);
        assert!(
            a.json.get("next").is_some(),
            "every page says next: {}",
            a.json
        );
        seen.extend(ids(&a.json, key, field));
        if page == 0 {
            between().await;
        }
        match a.json["next"].as_str() {
            Some(cursor) => {
                assert!(
                    cursor
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "a cursor goes into a URL as it is: {cursor}"
                );
                next = Some(cursor.to_owned());
            }
            None => {
                assert_eq!(a.json["next"], Value::Null, "the last page: {}", a.json);
                return seen;
            }
        }
    }
    panic!("paging makes no progress")
}

fn assert_once_in_order(seen: &[String], all: &[String]) {
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row repeated: {seen:?}");
    assert_eq!(seen, all);
}

#[actix_web::test]
async fn contact_pages_by_cursor_hold_every_contact_once_through_inserts_and_deletes() {
    let w = world().await;
    let mut created = Vec::new();
    for n in 0..8 {
        created.push(create_contact(&w, n, if n % 2 == 0 { "Even" } else { "Odd" }).await);
    }
    let whole = call(&w, get("/api/public/contacts")).await;
    assert!(
        whole.json.get("next").is_none(),
        "the whole list keeps the reference's fields: {}",
        whole.json
    );
    let all = ids(&whole.json, "contacts", "_id");
    assert_eq!(all.len(), 8);

    let seen = walk(
        &w,
        "/api/public/contacts?limit=3",
        "contacts",
        "_id",
        async || {},
    )
    .await;
    assert_once_in_order(&seen, &all);
    // A filtered list pages under its filter.
    let even = ids(
        &call(&w, get("/api/public/contacts?label=even")).await.json,
        "contacts",
        "_id",
    );
    let seen = walk(
        &w,
        "/api/public/contacts?label=even&limit=3",
        "contacts",
        "_id",
        async || {},
    )
    .await;
    assert_once_in_order(&seen, &even);
    // `offset` still pages as before.
    let second = call(&w, get("/api/public/contacts?limit=3&offset=3")).await;
    assert_eq!(ids(&second.json, "contacts", "_id"), all[3..6]);
    assert_eq!(second.json["total"], 8);

    // Between the first page and the next: a newer contact, and two
    // deleted (one read, one not yet).
    let unread = all[6].clone();
    let read = all[0].clone();
    let seen = walk(
        &w,
        "/api/public/contacts?limit=3",
        "contacts",
        "_id",
        async || {
            create_contact(&w, 99, "").await;
            for id in [&unread, &read] {
                let a = call(
                    &w,
                    TestRequest::delete()
                        .uri(&format!("/api/public/contacts/{id}"))
                        .insert_header(("X-API-Key", KEY_A)),
                )
                .await;
                assert_eq!(a.status, StatusCode::NO_CONTENT);
            }
        },
    )
    .await;
    let throughout: Vec<String> = all
        .iter()
        .filter(|id| **id != unread && **id != read)
        .cloned()
        .collect();
    let seen_throughout: Vec<String> = seen
        .iter()
        .filter(|id| throughout.contains(id))
        .cloned()
        .collect();
    assert_once_in_order(&seen_throughout, &throughout);
    assert!(!seen.contains(&unread), "deleted before its page was read");
}

#[actix_web::test]
async fn cursors_that_do_not_fit_are_a_400_on_after() {
    let w = world().await;
    for n in 0..3 {
        create_contact(&w, n, "VIP").await;
    }
    let first = call(&w, get("/api/public/contacts?limit=1&label=VIP")).await;
    let cursor = first.json["next"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty(), "{}", first.json);
    // The same filters take it.
    let ok = call(
        &w,
        get(&format!(
            "/api/public/contacts?limit=1&label=VIP&after={cursor}"
        )),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    for uri in [
        format!("/api/public/contacts?limit=1&after={cursor}"),
        format!("/api/public/contacts?limit=1&label=Lead&after={cursor}"),
        format!("/api/public/contacts?limit=1&label=VIP&search=x&after={cursor}"),
        "/api/public/contacts?limit=1&after=not-a-cursor".to_owned(),
        "/api/public/contacts?limit=1&after=%F0%9F%99%82".to_owned(),
        format!("/api/public/contacts?limit=1&label=VIP&offset=0&after={cursor}"),
        format!("/api/public/contacts?limit=1&label=VIP&offset=2&after={cursor}"),
        format!("/api/public/contacts?label=VIP&after={cursor}"),
        // Another list's cursor.
        format!("/api/public/inbox/conversations?after={cursor}"),
        format!(
            "/api/public/inbox/conversations/6281234567890/messages?sessionId=sim-1&after={cursor}"
        ),
        format!("/api/public/inbox/conversations?before=2023-10-01T12%3A05%3A00Z&after={cursor}"),
    ] {
        let a = call(&w, get(&uri)).await;
        assert_eq!(
            a.error(),
            (400, "validation_failed", Some("after")),
            "{uri}: {}",
            a.json
        );
    }
}

#[actix_web::test]
async fn conversation_and_message_pages_by_cursor_hold_every_row_once() {
    let w = world().await;
    let inbound = |from: String, text: String| {
        let w = &w;
        async move {
            let a = call(
                w,
                post("/api/public/sessions/sim-1/simulate/inbound")
                    .set_json(json!({"from": from, "message": text})),
            )
            .await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
        }
    };
    for n in 0..7 {
        inbound(format!("62813000{n:05}"), format!("hello {n}")).await;
    }
    let remote = "6281300000099";
    for n in 0..7 {
        inbound(remote.to_owned(), format!("m{n}")).await;
    }

    let whole = call(&w, get("/api/public/inbox/conversations?limit=500")).await;
    assert_eq!(whole.json["next"], Value::Null, "one page holds them all");
    let all = ids(&whole.json, "conversations", "remoteJid");
    assert_eq!(all.len(), 8);
    let seen = walk(
        &w,
        "/api/public/inbox/conversations?sessionId=sim-1&limit=3",
        "conversations",
        "remoteJid",
        async || {},
    )
    .await;
    assert_once_in_order(&seen, &all);

    let messages = format!("/api/public/inbox/conversations/{remote}/messages?sessionId=sim-1");
    let texts = ids(&call(&w, get(&messages)).await.json, "messages", "text");
    assert_eq!(texts, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
    // A newer message between the pages is not in them (it is newer than
    // where they started), and nothing is repeated or skipped.
    let seen = walk(
        &w,
        &format!("{messages}&limit=2"),
        "messages",
        "text",
        async || {
            inbound(remote.to_owned(), "newer".to_owned()).await;
        },
    )
    .await;
    assert_once_in_order(&seen, &texts);

    // `before` still pages, and says where the next page starts (the
    // history is now "newer", m6, m5, ...).
    let older = call(&w, get(&format!("{messages}&limit=2&before={}", {
        let t = call(&w, get(&format!("{messages}&limit=3"))).await.json["messages"][2]["createdAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        t.replace(':', "%3A")
    })))
    .await;
    assert_eq!(older.status, StatusCode::OK, "{}", older.json);
    assert_eq!(ids(&older.json, "messages", "text"), ["m4", "m3"]);
    let next = older.json["next"].as_str().unwrap_or_default().to_owned();
    let rest = call(&w, get(&format!("{messages}&limit=10&after={next}"))).await;
    assert_eq!(ids(&rest.json, "messages", "text"), ["m2", "m1", "m0"]);
    assert_eq!(rest.json["next"], Value::Null);
}
