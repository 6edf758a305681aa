//! `POST /api/public/contacts/import` (issue 12, goals 4 and 5): CSV and
//! NDJSON read as they arrive, each row checked as a create is, bad rows
//! reported by row and field, duplicates as `onDuplicate` says, one
//! transaction, and the export read back unchanged.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, json_of, spawn_app, spawn_app_with};

async fn import(
    app: &TestApp,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    import_as(app, &app.key, query, content_type, body).await
}

async fn import_as(
    app: &TestApp,
    key: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.request_as(
        key,
        Method::POST,
        &format!("/api/public/contacts/import{query}"),
    )
    .header("Content-Type", content_type)
    .body(body)
    .send()
    .await
    .expect("request")
}

async fn count(app: &TestApp, sql: String) -> i64 {
    let url = app.db_url.clone();
    tokio::task::spawn_blocking(move || maveraa_storage::testing::count_at(&url, &sql))
        .await
        .expect("count")
}

fn names(list: &Value) -> Vec<String> {
    list["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_csv_imports_its_rows_in_order_and_reports_each_bad_row_by_line_and_field() {
    let app = spawn_app().await;
    // A spreadsheet's file: a byte order mark, CRLF, quoted cells, the
    // columns in another order, a column we do not keep, a blank line.
    let csv = "\u{feff}Phone,Name,Labels,Email\r\n\
6281234567890,\"Smith, Jane\",\"Lead, Website\",jane@example.com\r\n\
12,Too Short,,x\r\n\
6281234567891,,VIP,\r\n\
\r\n\
6281234567892,\"Say \"\"hi\"\"\",,\r\n\
6281234567893,Four,cells,too,many\r\n\
+62 812-3456-7894,Spaced Number,VIP\r\n";
    let report = json_of(import(&app, "", "text/csv", csv).await, 200).await;
    assert_eq!(
        report,
        json!({
            "created": 3, "updated": 0, "skipped": 0, "failed": 3,
            "errors": [
                {"row": 3, "field": "phone", "code": "validation_failed",
                 "message": report["errors"][0]["message"]},
                {"row": 4, "field": "name", "code": "validation_failed", "message": "is required"},
                {"row": 7, "field": "body", "code": "malformed_row",
                 "message": "the row has 5 fields, the header 4"},
            ],
            "errorsTruncated": false,
            "ignoredColumns": ["Email"],
        })
    );
    let list = app.list("").await;
    assert_eq!(list["total"], 3);
    assert_eq!(
        names(&list),
        ["Smith, Jane", "Say \"hi\"", "Spaced Number"],
        "the file's order"
    );
    assert_eq!(list["contacts"][0]["labels"], json!(["Lead", "Website"]));
    assert_eq!(list["contacts"][2]["phone"], "6281234567894");

    // NDJSON: a create's body per line; labels as text or as an array.
    let ndjson = "{\"name\": \"Ann\", \"phone\": \"6281111111111\", \"labels\": [\"VIP\"]}\n\
{\"name\": \"Bob\", \"phone\": \"6281111111112\", \"labels\": \"Lead, Website\"}\n\
{\"name\": \"Broken\"\n\
\n\
[\"not\", \"an object\"]\n\
{\"name\": \"Cy\", \"phone\": \"6281111111113\", \"labels\": [\"ok\", \"\\u0007bell\"]}\n\
{\"name\": \"Dee\", \"phone\": \"6281111111114\"}";
    let report = json_of(import(&app, "", "application/x-ndjson", ndjson).await, 200).await;
    assert_eq!(
        (report["created"].as_u64(), report["failed"].as_u64()),
        (Some(3), Some(3))
    );
    let errors: Vec<(u64, &str, &str)> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().expect("row"),
                e["field"].as_str().expect("field"),
                e["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (3, "body", "malformed_row"),
            (5, "body", "malformed_row"),
            (6, "labels[1]", "validation_failed"),
        ]
    );
    assert_eq!(app.list("").await["total"], 6);
}

#[tokio::test]
async fn duplicates_are_skipped_updated_or_refused_as_asked() {
    let app = spawn_app().await;
    let jane = json_of(
        app.create_contact(json!({"name": "Jane", "phone": "6281234567890", "labels": "Lead"}))
            .await,
        201,
    )
    .await;
    let csv = "name,phone,labels\nJane Smith,6281234567890,Customer\nAnn,6281111111111,\nAnn again,6281111111111,\n";

    let skip = json_of(import(&app, "", "text/csv", csv).await, 200).await;
    assert_eq!(
        (
            &skip["created"],
            &skip["updated"],
            &skip["skipped"],
            &skip["failed"]
        ),
        (&json!(1), &json!(0), &json!(2), &json!(0))
    );

    let update = json_of(
        import(&app, "?onDuplicate=update", "text/csv", csv).await,
        200,
    )
    .await;
    assert_eq!(
        (&update["created"], &update["updated"], &update["skipped"]),
        (&json!(0), &json!(2), &json!(1)),
        "Jane and the second Ann change; the first Ann is as stored: {update}"
    );
    let stored = json_of(
        app.request(
            Method::GET,
            &format!("/api/public/contacts/{}", jane["_id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("get"),
        200,
    )
    .await;
    assert_eq!(
        (&stored["name"], &stored["labels"]),
        (&json!("Jane Smith"), &json!(["Customer"]))
    );
    assert_eq!(
        stored["createdAt"], jane["createdAt"],
        "an update keeps the contact"
    );

    let error = json_of(
        import(&app, "?onDuplicate=error", "text/csv", csv).await,
        200,
    )
    .await;
    assert_eq!(
        (&error["created"], &error["failed"]),
        (&json!(0), &json!(3))
    );
    assert_eq!(
        error["errors"],
        json!([
            {"row": 2, "field": "phone", "code": "duplicate_contact", "message": "a contact with this phone number already exists"},
            {"row": 3, "field": "phone", "code": "duplicate_contact", "message": "a contact with this phone number already exists"},
            {"row": 4, "field": "phone", "code": "duplicate_contact", "message": "a contact with this phone number already exists"},
        ])
    );

    let (code, field) = error_of(
        import(&app, "?onDuplicate=replace", "text/csv", csv).await,
        400,
    )
    .await;
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("validation_failed", Some("onDuplicate"))
    );
    assert_eq!(app.list("").await["total"], 2);
}

#[tokio::test]
async fn a_body_that_cannot_be_read_on_imports_nothing() {
    let app = spawn_app().await;
    let good = "name,phone\nAnn,6281111111111\n";
    for (content_type, body, status, code, field) in [
        // The error comes after a valid row: that row is not kept either.
        (
            "text/csv",
            format!("{good}Bob,\"6281111111112\n"),
            400,
            "validation_failed",
            Some("body"),
        ),
        (
            "text/csv",
            "name,labels\nAnn,VIP\n".to_owned(),
            400,
            "validation_failed",
            Some("body"),
        ),
        (
            "text/csv",
            String::new(),
            400,
            "validation_failed",
            Some("body"),
        ),
        (
            "text/csv",
            "name,phone,name\n".to_owned(),
            400,
            "validation_failed",
            Some("body"),
        ),
        (
            "application/json",
            good.to_owned(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "text/csv; charset=latin1",
            good.to_owned(),
            415,
            "unsupported_media_type",
            None,
        ),
    ] {
        let (got, got_field) =
            error_of(import(&app, "", content_type, body.clone()).await, status).await;
        assert_eq!(
            (got.as_str(), got_field.as_deref()),
            (code, field),
            "{content_type}: {body:?}"
        );
    }
    let res = app
        .client
        .post(app.url("/api/public/contacts/import"))
        .header("Content-Type", "text/csv")
        .body(good)
        .send()
        .await
        .expect("request");
    assert_eq!(error_of(res, 401).await.0, "missing_api_key");
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn an_export_imported_into_another_workspace_exports_the_same_bytes() {
    let app = spawn_app().await;
    for (name, phone, labels) in [
        ("Smith, Jane", "6281234567890", json!("Lead, Website")),
        ("Say \"hi\"", "6281234567891", json!([])),
        ("Émile Zola 🙂", "6281234567892", json!(["VIP"])),
        ("=SUM(A1)", "6281234567893", json!("Formula, Lead")),
        ("Plain", "6281234567894", json!(null)),
    ] {
        json_of(
            app.create_contact(json!({"name": name, "phone": phone, "labels": labels}))
                .await,
            201,
        )
        .await;
    }
    let export = |key: String| {
        let app = &app;
        async move {
            let res = app
                .request_as(&key, Method::GET, "/api/public/contacts/export")
                .send()
                .await
                .expect("export");
            assert_eq!(res.status(), 200);
            res.text().await.expect("csv")
        }
    };
    let first = export(app.key.clone()).await;
    let (_, other_key) = app.new_workspace("Other").await;
    let report = json_of(
        import_as(&app, &other_key, "", "text/csv", first.clone()).await,
        200,
    )
    .await;
    assert_eq!(
        (&report["created"], &report["failed"]),
        (&json!(5), &json!(0)),
        "{report}"
    );
    let second = export(other_key).await;
    assert_eq!(second, first);
}

/// `rows` CSV rows with their header, in chunks of a thousand rows (about
/// 45 KB), made as they are sent.
fn csv_chunks(
    rows: u64,
    first_phone: u64,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    futures_util::stream::iter((0..rows.div_ceil(1000)).map(move |chunk| {
        let mut out = String::new();
        if chunk == 0 {
            out.push_str("name,phone,labels\n");
        }
        for i in chunk * 1000..((chunk + 1) * 1000).min(rows) {
            out.push_str(&format!(
                "Imported contact {i},{},\"Bulk, Lead\"\n",
                first_phone + i
            ));
        }
        Ok(out)
    }))
}

#[tokio::test]
async fn an_import_larger_than_any_body_the_server_buffers_streams_through() {
    // A buffered body would be refused past 64 KiB here; this one is
    // about 2.7 MB, chunked, with no Content-Length.
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 64 * 1024).await;
    let rows = 60_000;
    let body = reqwest::Body::wrap_stream(csv_chunks(rows, 6281200000000));
    let report = json_of(import(&app, "", "text/csv", body).await, 200).await;
    assert_eq!(
        (&report["created"], &report["failed"]),
        (&json!(rows), &json!(0)),
        "{report}"
    );
    let list = app.list("?limit=1").await;
    assert_eq!(list["total"], rows);
    assert_eq!(names(&list), ["Imported contact 0"]);
    let labelled = app.list("?label=bulk&limit=1").await;
    assert_eq!(labelled["total"], rows);
}

/// Transactions rolled back in the test's database so far (PostgreSQL
/// reports them within a second or so).
const ROLLBACKS: &str =
    "SELECT xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()";

#[tokio::test]
async fn a_client_that_leaves_mid_import_leaves_nothing_written() {
    let app = spawn_app().await;
    // 20,000 rows, then the body fails: the client's connection is cut
    // without the chunked body's end.
    let broken = futures_util::StreamExt::chain(
        csv_chunks(20_000, 6281200000000),
        futures_util::stream::once(async { Err(std::io::Error::other("the client went away")) }),
    );
    let rollbacks = count(&app, ROLLBACKS.to_owned()).await;
    let res = app
        .request(Method::POST, "/api/public/contacts/import")
        .header("Content-Type", "text/csv")
        .body(reqwest::Body::wrap_stream(broken))
        .send()
        .await;
    assert!(res.is_err(), "the request cannot complete: {res:?}");
    // Bounded wait for the import's transaction to be rolled back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&app, ROLLBACKS.to_owned()).await == rollbacks {
        assert!(
            Instant::now() < deadline,
            "no transaction was rolled back within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) AS n FROM contacts WHERE workspace_id = '{}'",
                app.workspace
            )
        )
        .await,
        0
    );
    assert_eq!(app.list("").await["total"], 0);
}
