//! The unpaged contact list and the CSV export, streamed (issue 12, goals 3
//! and 5): the same bytes as the paged writer, chunked, any size, stopped
//! by a client that leaves, and a failure midway that a client notices.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_of, spawn_app};

/// Runs a `count(*) AS n` query (or any statement shaped so) on the app's
/// database, off the executor.
async fn count(app: &TestApp, sql: String) -> i64 {
    let url = app.db_url.clone();
    tokio::task::spawn_blocking(move || maveraa_storage::testing::count_at(&url, &sql))
        .await
        .expect("count")
}

/// Waits (at most 10 s) until `sql`'s count satisfies `done`.
async fn wait_for_count(app: &TestApp, sql: &str, done: impl Fn(i64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = count(app, sql.to_owned()).await;
        if done(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {n} after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Seeds `n` contacts into the app's workspace in one statement, named
/// `Contact <i> <pad>`, newest first by `i`, labelled `Bulk`.
async fn seed(app: &TestApp, n: u32, pad: usize) {
    let inserted = count(
        app,
        format!(
            "WITH ins AS (INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
             SELECT gen_random_uuid(), '{ws}', 'Contact ' || i || ' {pad}', '62812' || lpad(i::text, 8, '0'), \
             ARRAY['Bulk'], now() - i * interval '1 millisecond', now() - i * interval '1 millisecond' \
             FROM generate_series(1, {n}) AS i RETURNING 1) SELECT count(*) AS n FROM ins",
            ws = app.workspace,
            pad = "x".repeat(pad),
        ),
    )
    .await;
    assert_eq!(inserted, i64::from(n));
}

/// The streamed list as a page holding all of it writes it: the same bytes
/// with `"next":null` (a page's cursor; the unpaged list has none).
fn as_last_page(streamed: &str) -> String {
    let body = streamed.strip_suffix('}').expect("an object");
    format!("{body},\"next\":null}}")
}

async fn get_raw(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, String) {
    let res = app
        .request(Method::GET, path)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "{path}");
    let headers = res.headers().clone();
    (headers, res.text().await.expect("body"))
}

fn is_chunked(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
        && headers.get("content-length").is_none()
}

#[tokio::test]
async fn the_streamed_list_has_the_paged_lists_bytes() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (name, phone, labels) in [
        ("Jane Smith", "6289876543210", json!("Lead, Website")),
        ("Smith, \"Bob\" \\ Ünal 王", "6281234567890", json!(["VIP"])),
        ("Ana", "6281234567801", json!(null)),
    ] {
        let mut body = json!({"name": name, "phone": phone});
        if !labels.is_null() {
            body["labels"] = labels;
        }
        let created = json_of(app.create_contact(body).await, 201).await;
        ids.push(created["_id"].as_str().expect("_id").to_owned());
    }

    // The whole list is today's JSON: exactly the bytes the paged (buffered)
    // writer gives for the same contacts, and each contact as its item
    // route writes it.
    let (headers, streamed) = get_raw(&app, "/api/public/contacts").await;
    assert!(is_chunked(&headers), "streamed: {headers:?}");
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let (_, paged) = get_raw(&app, "/api/public/contacts?limit=1000").await;
    assert_eq!(as_last_page(&streamed), paged);
    let mut items = Vec::new();
    for id in ids.iter().rev() {
        items.push(get_raw(&app, &format!("/api/public/contacts/{id}")).await.1);
    }
    assert_eq!(
        streamed,
        format!("{{\"total\":3,\"contacts\":[{}]}}", items.join(","))
    );

    // Filters and offset keep their meaning, with the same bytes too.
    for query in [
        "search=smith",
        "label=vip",
        "search=628123",
        "search=nobody",
        "offset=1",
        "offset=5",
    ] {
        let (headers, streamed) = get_raw(&app, &format!("/api/public/contacts?{query}")).await;
        assert!(is_chunked(&headers), "{query}");
        let (_, paged) = get_raw(&app, &format!("/api/public/contacts?{query}&limit=1000")).await;
        assert_eq!(as_last_page(&streamed), paged, "{query}");
    }
    let smith: Value =
        serde_json::from_str(&get_raw(&app, "/api/public/contacts?search=smith").await.1)
            .expect("json");
    assert_eq!(smith["total"], 2);
    let empty = get_raw(&app, "/api/public/contacts?search=nobody").await.1;
    assert_eq!(empty, r#"{"total":0,"contacts":[]}"#);
}

#[tokio::test]
async fn a_big_workspace_streams_whole_and_a_client_that_leaves_stops_the_query() {
    let app = spawn_app().await;
    // Some 300 bytes of JSON a contact: 15 MB, more than the sockets'
    // buffers and the channel can hold, so a reader that stops reading
    // holds the server mid-stream.
    seed(&app, 50_000, 180).await;

    let res = app
        .request(Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert!(is_chunked(res.headers()), "{:?}", res.headers());
    let body: Value = res.json().await.expect("the whole body is JSON");
    assert_eq!(body["total"], 50_000);
    let contacts = body["contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 50_000);
    // Newest first (Contact 1 is the newest), every one once.
    assert!(
        contacts[0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Contact 1 "))
    );
    assert!(
        contacts[49_999]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Contact 50000 "))
    );
    let mut ids: Vec<&str> = contacts.iter().filter_map(|c| c["_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50_000);
    drop(body);

    // A filtered list streams too, with its own total.
    let res = app
        .request(Method::GET, "/api/public/contacts?search=Contact%2012")
        .send()
        .await
        .expect("request");
    let body: Value = res.json().await.expect("json");
    // Contacts 12, 120-129, 1200-1299 and 12000-12999.
    assert_eq!(body["total"], 1_111);
    assert_eq!(body["contacts"].as_array().map(Vec::len), Some(1_111));

    // A client that reads the first bytes and leaves.
    let fetching = "SELECT count(*) AS n FROM pg_stat_activity \
                    WHERE datname = current_database() AND query LIKE 'FETCH % FROM contacts_stream' \
                    AND state <> 'idle'";
    let mut res = app
        .request(Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("request");
    let first = res.chunk().await.expect("a chunk").expect("not the end");
    assert!(first.starts_with(b"{\"total\":50000,\"contacts\":["));
    // The server is held mid-stream: its transaction open on the cursor.
    wait_for_count(
        &app,
        fetching,
        |n| n == 1,
        "the stream's transaction is open",
    )
    .await;
    drop(res);
    // Gone: the database thread stops fetching and ends the transaction.
    wait_for_count(&app, fetching, |n| n == 0, "the stream's transaction ends").await;
    // Its last FETCH over, the transaction ends a moment later (the
    // thread's rollback): waited for, not raced.
    wait_for_count(
        &app,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%'",
        |n| n == 0,
        "no transaction left open",
    )
    .await;

    // A database failure midway: the client gets a broken body, not a short
    // well-formed one.
    let mut res = app
        .request(Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("request");
    res.chunk().await.expect("a chunk").expect("not the end");
    wait_for_count(
        &app,
        fetching,
        |n| n == 1,
        "the second stream's transaction is open",
    )
    .await;
    let killed = count(
        &app,
        "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'FETCH % FROM contacts_stream' \
         AND state <> 'idle') AS t"
            .into(),
    )
    .await;
    assert_eq!(killed, 1);
    let mut read = 0usize;
    let outcome = loop {
        match res.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break Ok(read),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the body ended cleanly after {read} bytes"
    );

    // And the server serves on.
    let res = app
        .request(Method::GET, "/api/public/contacts?limit=1")
        .send()
        .await
        .expect("request");
    assert_eq!(json_of(res, 200).await["total"], 50_000);
}

/// An RFC 4180 reader, enough for the test: quoted fields with doubled
/// quotes and line breaks, CRLF records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(
                    field.is_empty(),
                    "a quote inside an unquoted field: {field:?}"
                );
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            '\n' => panic!("a bare LF ends a record"),
            c => field.push(c),
        }
        if c == '\r' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(!quoted, "an unterminated quote");
    assert!(
        row.is_empty() && field.is_empty(),
        "the last record has no CRLF"
    );
    rows
}

#[tokio::test]
async fn the_export_reads_back_to_the_stored_contacts() {
    let app = spawn_app().await;
    for (name, phone, labels) in [
        ("Jane Smith", "6289876543210", "Lead, Website"),
        ("Smith, Jane", "6281234567890", "VIP"),
        ("Dwayne \"The Rock\" Johnson", "6281234567801", ""),
        ("\"", "6281234567802", "a\"b, c"),
        ("Gülşen Yılmaz 王小明 🙂", "6281234567803", "Müşteri, 客户"),
        ("=HYPERLINK(\"x\")", "6281234567804", "+1, -2, @3"),
    ] {
        let res = app
            .create_contact(json!({"name": name, "phone": phone, "labels": labels}))
            .await;
        json_of(res, 201).await;
    }
    // Names the API refuses (control characters) can still be stored by
    // hand; the export quotes their line breaks too.
    count(
        &app,
        format!(
            "WITH ins AS (INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{}', E'two\\nlines\\r\\nhere', '6285555555555', '{{}}', now(), now()) \
             RETURNING 1) SELECT count(*) AS n FROM ins",
            app.workspace
        ),
    )
    .await;

    let res = app
        .request(Method::GET, "/api/public/contacts/export")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/csv; charset=utf-8"[..])
    );
    assert!(is_chunked(res.headers()));
    let text = res.text().await.expect("utf-8");
    assert!(text.starts_with("name,phone,labels\r\n"), "{text}");
    let mut rows = parse_csv(&text);
    assert_eq!(rows.remove(0), ["name", "phone", "labels"]);

    let list: Value =
        serde_json::from_str(&get_raw(&app, "/api/public/contacts").await.1).expect("json");
    let stored: Vec<Vec<String>> = list["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| {
            let labels: Vec<&str> = c["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            vec![
                c["name"].as_str().expect("name").to_owned(),
                c["phone"].as_str().expect("phone").to_owned(),
                labels.join(", "),
            ]
        })
        .collect();
    assert_eq!(stored.len(), 7);
    assert_eq!(
        rows, stored,
        "the export, newest first, is the stored contacts"
    );
    assert!(stored.iter().any(|r| r[0] == "two\nlines\r\nhere"));

    // Each row's labels cell reads back as the same labels.
    for (row, contact) in rows
        .iter()
        .zip(list["contacts"].as_array().expect("contacts"))
    {
        let parsed: Vec<&str> = row[2]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(json!(parsed), contact["labels"]);
    }

    // A filter narrows the export as it narrows the list.
    let vip = app
        .request(Method::GET, "/api/public/contacts/export?label=vip")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert_eq!(
        vip,
        "name,phone,labels\r\n\"Smith, Jane\",6281234567890,VIP\r\n"
    );
}
