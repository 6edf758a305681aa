//! Bad input: one JSON error shape, the right status, the field at fault,
//! and nothing written.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    let long_name = "x".repeat(201);
    let too_many: Vec<String> = (0..51).map(|i| format!("l{i}")).collect();
    let long_label = "y".repeat(51);
    let cases = [
        (json!({"phone": "6289876543210"}), "name"),
        (json!({"name": "Jane"}), "phone"),
        (json!({"name": "   ", "phone": "6289876543210"}), "name"),
        (json!({"name": long_name, "phone": "6289876543210"}), "name"),
        (json!({"name": "Jane", "phone": "62812abc4567"}), "phone"),
        (json!({"name": "Jane", "phone": "6281"}), "phone"),
        (json!({"name": "Jane", "phone": "99912345678"}), "phone"),
        (json!({"name": "Jane", "phone": ""}), "phone"),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": too_many}),
            "labels",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": long_label}),
            "labels",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": ["a", "b", "c", "y".repeat(51)]}),
            "labels[3]",
        ),
        // Wrong types.
        (json!({"name": 42, "phone": "6289876543210"}), "name"),
        (json!({"name": "Jane", "phone": 6289876543210u64}), "phone"),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": 7}),
            "labels",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": [1, 2]}),
            "labels[0]",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": {"a": 1}}),
            "labels",
        ),
    ];
    for (body, field) in cases {
        let res = app.create_contact(body.clone()).await;
        let (code, f) = error_of(res, 400).await;
        assert_eq!(code, "validation_failed", "{body}");
        assert_eq!(f.as_deref(), Some(field), "{body}");
    }
    assert_eq!(app.list("").await["total"], 0, "nothing was written");
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = spawn_app().await;
    let contact = app
        .create_contact(json!({"name": "Jane", "phone": "6289876543210"}))
        .await;
    let id = contact.json::<serde_json::Value>().await.expect("json")["_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let contact_path = format!("/api/public/contacts/{id}");
    for (raw, want) in [
        ("{\"name\": \"Jane\",", "malformed_json"),
        ("{nope", "malformed_json"),
        ("", "malformed_json"),
        ("   ", "malformed_json"),
        ("{} {}", "malformed_json"),
        ("not json", "validation_failed"),
        ("[1,2]", "validation_failed"),
        ("\"text\"", "validation_failed"),
        ("null", "validation_failed"),
    ] {
        for (method, path) in [
            (Method::POST, "/api/public/contacts"),
            (Method::PATCH, contact_path.as_str()),
            (Method::POST, "/api/public/inbox/send"),
        ] {
            let res = app
                .request(method.clone(), path)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .expect("request");
            let (code, _) = error_of(res, 400).await;
            assert_eq!(code, want, "{raw:?} on {method} {path}");
        }
    }
    let list = app.list("").await;
    assert_eq!(list["total"], 1, "nothing was written");
    assert_eq!(list["contacts"][0]["name"], "Jane", "nor changed");
}

#[tokio::test]
async fn a_json_array_is_not_read_as_an_object() {
    let app = spawn_app().await;
    // serde reads a struct from an array by position: this would create
    // "Array Person" (or send "hello") if it were let through.
    for (path, raw) in [
        (
            "/api/public/contacts",
            r#"["Array Person", "6281234567101", "x,y"]"#,
        ),
        (
            "/api/public/inbox/send",
            r#"["sim-1", "6281234567102", "hello", null]"#,
        ),
    ] {
        let res = app
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("request");
        let (code, field) = error_of(res, 400).await;
        assert_eq!(
            (code.as_str(), field),
            ("validation_failed", None),
            "{path}"
        );
    }
    assert_eq!(app.list("").await["total"], 0, "nothing was written");
}

#[tokio::test]
async fn type_errors_do_not_name_our_rust_types() {
    let app = spawn_app().await;
    let res = app
        .request(Method::POST, "/api/public/inbox/send")
        .json(&json!({"sessionId": "s", "targetNumber": "6281234567890", "message": "hi", "media": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["field"], "media");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("expected a JSON object") && !message.contains("struct"),
        "{message}"
    );
}

#[tokio::test]
async fn compressed_or_non_utf8_bodies_are_415() {
    let app = spawn_app().await;
    let body = r#"{"name":"Jane","phone":"6289876543210"}"#;
    for (header, value) in [
        ("content-encoding", "gzip"),
        ("content-encoding", "br"),
        ("content-type", "application/json; charset=iso-8859-1"),
        ("content-type", "application/json; charset=utf-16"),
    ] {
        let mut req = app.request(Method::POST, "/api/public/contacts").body(body);
        if header == "content-encoding" {
            req = req.header("content-type", "application/json");
        }
        let res = req.header(header, value).send().await.expect("request");
        let (code, _) = error_of(res, 415).await;
        assert_eq!(code, "unsupported_media_type", "{header}: {value}");
    }
    assert_eq!(app.list("").await["total"], 0, "nothing was written");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408() {
    use std::io::{Read, Write};
    let app = spawn_app_with(|s| s.server.body_timeout_secs = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let key = app.key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        // Headers promise 100 bytes; 12 come, then nothing.
        write!(
            stream,
            "POST /api/public/contacts HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": \"J"
        )
        .expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the head and the JSON body have come, or the server closes.
        while !String::from_utf8_lossy(&answer).contains("}}") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .expect("client");
    let (answer, after) = answer;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(
        after < std::time::Duration::from_secs(5),
        "answered after {after:?}"
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        for (method, path) in [
            (Method::POST, "/api/public/contacts"),
            (
                Method::PATCH,
                "/api/public/contacts/01a2157f-367d-73f9-8b34-e17a5a7ad183",
            ),
            (Method::POST, "/api/public/inbox/send"),
            (Method::POST, "/api/public/sessions/s/simulate/inbound"),
        ] {
            let mut req = app
                .request(method.clone(), path)
                .body(r#"{"name":"Jane","phone":"6289876543210"}"#);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let (code, _) = error_of(req.send().await.expect("request"), 415).await;
            assert_eq!(code, "unsupported_media_type", "{ct:?} on {method} {path}");
        }
    }
    // Parameters and +json types are JSON too.
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name":"Jane","phone":"6289876543210"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"name":"Jane","phone":"6289876543210","labels":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("request");
    let (code, _) = error_of(res, 413).await;
    assert_eq!(code, "payload_too_large");
    let res = app
        .request(Method::POST, "/api/public/inbox/send")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"sessionId":"s","targetNumber":"6281234567890","message":"{}"}}"#,
            "a".repeat(70 * 1024)
        ))
        .send()
        .await
        .expect("request");
    let (code, _) = error_of(res, 413).await;
    assert_eq!(code, "payload_too_large", "sends have the same limit");
    // Also when the length is not declared up front (chunked).
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    let (code, _) = error_of(res, 413).await;
    assert_eq!(code, "payload_too_large");
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let (code, _) = error_of(
        app.client.get(app.url("/nope")).send().await.expect("r"),
        404,
    )
    .await;
    assert_eq!(code, "not_found");
    let (code, _) = error_of(
        app.request(Method::GET, "/api/public/nope")
            .send()
            .await
            .expect("r"),
        404,
    )
    .await;
    assert_eq!(code, "not_found");
    let (code, _) = error_of(
        app.request(Method::PUT, "/api/public/contacts")
            .send()
            .await
            .expect("r"),
        405,
    )
    .await;
    assert_eq!(code, "method_not_allowed");
}
