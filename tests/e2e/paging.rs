//! Cursor paging against the real server: `next` and `after` walk a list
//! whole while it changes, and a cursor that does not fit is a `400` on
//! `after` in the one error shape.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, json_of, spawn_app};

async fn get(app: &TestApp, path: &str) -> Value {
    json_of(
        app.request(Method::GET, path)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await
}

fn field_of(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i[field].as_str().expect("field").to_owned())
        .collect()
}

#[tokio::test]
async fn a_cursor_walk_reads_every_contact_once_while_others_come_and_go() {
    let app = spawn_app().await;
    for i in 0..25 {
        json_of(
            app.create_contact(
                json!({"name": format!("Contact {i}"), "phone": format!("62812{i:08}")}),
            )
            .await,
            201,
        )
        .await;
    }
    let all = field_of(&app.list("").await, "contacts", "_id");
    assert_eq!(all.len(), 25);

    // Offset paging still works, and is what a cursor replaces.
    let by_offset = app.list("?limit=10&offset=10").await;
    assert_eq!(field_of(&by_offset, "contacts", "_id"), all[10..20]);

    let mut seen = Vec::new();
    let mut path = "/api/public/contacts?limit=10".to_owned();
    let deleted = all[15].clone();
    for page in 0.. {
        assert!(page < 10, "paging makes progress");
        let body = get(&app, &path).await;
        assert_eq!(body["total"].as_u64().map(|t| t >= 24), Some(true));
        seen.extend(field_of(&body, "contacts", "_id"));
        if page == 0 {
            // Newer contacts would shift an offset page back onto rows
            // already read; a deleted one would shift it past one.
            for i in 100..103 {
                json_of(
                    app.create_contact(
                        json!({"name": format!("New {i}"), "phone": format!("62813{i:08}")}),
                    )
                    .await,
                    201,
                )
                .await;
            }
            let res = app
                .request(Method::DELETE, &format!("/api/public/contacts/{deleted}"))
                .send()
                .await
                .expect("delete");
            assert_eq!(res.status(), 204);
        }
        match body["next"].as_str() {
            Some(next) => path = format!("/api/public/contacts?limit=10&after={next}"),
            None => {
                assert_eq!(body["next"], Value::Null);
                break;
            }
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing repeated");
    let expected: Vec<String> = all.iter().filter(|id| **id != deleted).cloned().collect();
    assert_eq!(seen, expected, "every contact that stayed, once, in order");
}

#[tokio::test]
async fn cursors_walk_conversations_and_refuse_to_fit_elsewhere() {
    let app = spawn_app().await;
    app.simulator_session("s1").await;
    for i in 0..5 {
        json_of(
            app.request(Method::POST, "/api/public/sessions/s1/simulate/inbound")
                .json(&json!({"from": format!("62814{i:08}"), "message": "hi"}))
                .send()
                .await
                .expect("inbound"),
            202,
        )
        .await;
    }
    let all = field_of(
        &get(&app, "/api/public/inbox/conversations").await,
        "conversations",
        "remoteJid",
    );
    assert_eq!(all.len(), 5);
    let first = get(&app, "/api/public/inbox/conversations?limit=2").await;
    let mut seen = field_of(&first, "conversations", "remoteJid");
    let mut next = first["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let page = get(
            &app,
            &format!("/api/public/inbox/conversations?limit=2&after={cursor}"),
        )
        .await;
        seen.extend(field_of(&page, "conversations", "remoteJid"));
        next = page["next"].as_str().map(str::to_owned);
        assert!(seen.len() <= 5, "paging makes progress");
    }
    assert_eq!(seen, all);

    let cursor = first["next"].as_str().expect("a next page").to_owned();
    for path in [
        format!("/api/public/inbox/conversations?limit=2&sessionId=s1&after={cursor}"),
        format!("/api/public/contacts?limit=2&after={cursor}"),
        "/api/public/inbox/conversations?after=%%%".to_owned(),
        "/api/public/contacts?limit=2&after=bm90IGEgY3Vyc29y".to_owned(),
        format!("/api/public/contacts?limit=2&offset=2&after={cursor}"),
    ] {
        let res = app.request(Method::GET, &path).send().await.expect("r");
        let (code, field) = error_of(res, 400).await;
        assert_eq!(
            (code.as_str(), field.as_deref()),
            ("validation_failed", Some("after")),
            "{path}"
        );
    }
}
