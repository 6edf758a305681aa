use crate::helpers::{Spawned, error_of, free_port, json_of, spawn_app, wait_ready};

#[tokio::test]
async fn health_needs_no_database_and_ready_does() {
    let mut app = spawn_app().await;
    assert_eq!(
        json_of(
            app.client.get(app.url("/health")).send().await.expect("r"),
            200
        )
        .await["status"],
        "ok"
    );
    assert_eq!(
        json_of(
            app.client.get(app.url("/ready")).send().await.expect("r"),
            200
        )
        .await["status"],
        "ready"
    );

    // Take the database away: /ready says 503 in the error shape, /health stays up.
    drop(app.db.take());
    let res = app.client.get(app.url("/ready")).send().await.expect("r");
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (code, _) = error_of(res, 503).await;
    assert_eq!(code, "service_unavailable");
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("r")
            .status(),
        200
    );
    // An API call without its database is a 503 too, never a 500 with internals.
    let res = app
        .client
        .get(app.url("/api/public/contacts"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .expect("r");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(status, 503, "{text}");
    assert!(
        !text.contains("database \\\"") && !text.contains("postgres"),
        "{text}"
    );
}

#[tokio::test]
async fn head_answers_like_get_without_a_body_and_other_methods_are_405() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let res = app.client.head(app.url(path)).send().await.expect("r");
        assert_eq!(res.status(), 200, "HEAD {path}");
        assert!(res.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
    let res = app
        .client
        .head(app.url("/api/public/contacts"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .head(app.url("/api/public/contacts"))
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 401, "HEAD needs a key like GET");
    for path in ["/health", "/ready"] {
        let res = app.client.post(app.url(path)).send().await.expect("r");
        let (code, _) = error_of(res, 405).await;
        assert_eq!(code, "method_not_allowed", "POST {path}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/health")).send().await.expect("r");
    let id = res.headers().get("x-request-id").expect("generated id");
    assert!(!id.is_empty());
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .expect("r");
    assert_eq!(
        res.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"trace-abc-123"[..])
    );
}

/// A request in flight when the server is told to stop (Ctrl-C or
/// SIGTERM) is finished and answered; then the process exits cleanly.
#[tokio::test]
async fn sigint_and_sigterm_finish_requests_in_flight() {
    use std::io::{Read, Write};
    let app = spawn_app().await;
    for signal in ["INT", "TERM"] {
        let port = free_port();
        let mut server = Spawned(
            crate::helpers::server_command(&app.db_url, port)
                .arg("serve")
                .env("MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE", "false")
                .spawn()
                .expect("spawn maveraa serve"),
        );
        wait_ready(port);
        let key = app.key.clone();
        let pid = server.id().to_string();
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            let body = format!(
                r#"{{"name": "Signal {signal}", "phone": "62812345678{}"}}"#,
                signal.len()
            );
            let (head, tail) = body.split_at(10);
            write!(
                stream,
                "POST /api/public/contacts HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
                body.len()
            )
            .expect("write");
            // The request is in flight once the server (one worker) has
            // answered a request that came after it: its head was read
            // first. Then stop the server.
            let mut probe = std::net::TcpStream::connect(("127.0.0.1", port)).expect("probe");
            probe
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            write!(
                probe,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .expect("probe write");
            let mut health = String::new();
            let _ = probe.read_to_string(&mut health);
            assert!(health.starts_with("HTTP/1.1 200"), "{health}");
            let status = std::process::Command::new("kill")
                .args(["-s", signal, &pid])
                .status()
                .expect("kill");
            assert!(status.success());
            // The stop has begun once new connections are refused (10 s at
            // most); the request in flight is still to be finished.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                assert!(std::time::Instant::now() < deadline, "still accepting");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            stream
                .write_all(tail.as_bytes())
                .expect("the rest of the body");
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&answer).contains("createdAt") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&answer).into_owned()
        })
        .await
        .expect("client");
        assert!(answer.starts_with("HTTP/1.1 201"), "SIG{signal}: {answer}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let exit = loop {
            if let Some(exit) = server.try_wait().expect("wait") {
                break exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "SIG{signal}: still running"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(exit.success(), "SIG{signal}: {exit:?}");
    }
}

/// A stopped application lets go of its store (and so closes its pools):
/// nothing it built holds another part of it in a cycle. Checked with each
/// WhatsApp Web engine, whose connections hold the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_app_lets_go_of_its_store() {
    for engine in ["off", "simulator", "whatsapp-rust-fake"] {
        let mut app = crate::helpers::spawn_app_with(|s| {
            s.whatsapp_web.engine = engine.into();
            s.whatsapp_web.poll_ms = 50;
            s.whatsapp_web.hold_secs = 3;
        })
        .await;
        if engine != "off" {
            let created = app
                .request(reqwest::Method::POST, "/api/public/sessions")
                .json(&serde_json::json!({"sessionId": "phone", "provider": "whatsapp-web"}))
                .send()
                .await
                .expect("request");
            assert_eq!(created.status(), 201);
        }
        app.simulator_session("sim").await;
        let sent = app
            .send(serde_json::json!({"sessionId": "sim", "targetNumber": "6289876543210", "message": "Hi"}))
            .await;
        let id = json_of(sent, 202).await["messageId"]
            .as_str()
            .expect("id")
            .to_owned();
        // The simulator's reports reached the inbox.
        app.wait_for_message(&id, |m| m["status"] == "read").await;
        let store = std::sync::Arc::downgrade(&app.services.store);
        app.stop().await;
        drop(app);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "engine {engine}: the store outlives its stopped application"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
