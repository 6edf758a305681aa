//! Sending at the provider's pace, and unknown outcomes reconciled: two
//! servers against a slow provider stand-in that counts the requests it
//! handles at once, and a provider whose answer comes after the timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::dispatch::serve;
use crate::helpers::{free_port, json_of, spawn_app_with, wait_ready};
use crate::webhooks::{SECRET, sign};

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    next_id: AtomicU64,
    /// (recipient, text) in the order the requests came.
    requests: Mutex<Vec<(String, String)>>,
}

impl Seen {
    fn requests(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A Cloud API stand-in that answers each request after `delay`, with a
/// listen backlog of 5 (as a small proxy or an overloaded gateway has), and
/// counts the requests it is handling at once. wiremock cannot: its
/// responders do not see each other.
async fn slow_provider(delay: Duration) -> (String, Arc<Seen>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(5).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, state.clone(), delay));
        }
    });
    (format!("http://{addr}"), seen)
}

/// HTTP/1.1 with keep-alive: one request after another on the connection.
async fn serve_connection(stream: TcpStream, seen: Arc<Seen>, delay: Duration) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        seen.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                body["to"].as_str().unwrap_or_default().to_owned(),
                body["text"]["body"].as_str().unwrap_or_default().to_owned(),
            ));
        tokio::time::sleep(delay).await;
        let n = seen.next_id.fetch_add(1, Ordering::SeqCst);
        let answer =
            json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.{n}")}]})
                .to_string();
        // Done before the answer is written: the count never runs behind
        // the client's.
        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let out = stream.get_mut();
        if out.write_all(head.as_bytes()).await.is_err()
            || out.write_all(answer.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// 2,000 messages, 20 to each of 100 recipients, queued at once and sent
/// by two servers (two dispatch loops of 100 each) through one session to
/// a provider that takes 0.5 s per request and accepts few connections at
/// a time (so the run takes at least 2,000 / 8 × 0.5 s = 125 s). The
/// provider receives each message exactly once, never more than the
/// session's cap (8) at once, and each recipient's messages in the order
/// they were queued.
#[tokio::test]
async fn a_slow_provider_sees_no_more_than_the_cap_and_each_message_once_in_order() {
    const RECIPIENTS: usize = 100;
    const EACH: usize = 20;
    let (uri, seen) = slow_provider(Duration::from_millis(500)).await;
    // The test's own app only queues.
    let app = spawn_app_with(|s| {
        s.whatsapp.cloud_api_base_url = uri.clone();
        s.dispatcher.workers = 0;
    })
    .await;
    app.cloud_session("real", "s", "v").await;
    for k in 0..EACH {
        for r in 0..RECIPIENTS {
            let res = app
                .send(
                    json!({"sessionId": "real", "targetNumber": format!("62812345{r:05}"),
                             "message": format!("{r}-{k}")}),
                )
                .await;
            assert_eq!(res.status(), 202);
        }
    }
    let (p1, p2) = (free_port(), free_port());
    let mut a = serve(&app.db_url, &uri, p1, &[]);
    let mut b = serve(&app.db_url, &uri, p2, &[]);
    wait_ready(p1);
    wait_ready(p2);
    let deadline = Instant::now() + Duration::from_secs(400);
    while seen.requests().len() < RECIPIENTS * EACH {
        assert!(
            Instant::now() < deadline,
            "only {} of {} sent",
            seen.requests().len(),
            RECIPIENTS * EACH
        );
        assert!(a.try_wait().expect("a").is_none(), "server a ended early");
        assert!(b.try_wait().expect("b").is_none(), "server b ended early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once both have stopped nothing more can arrive: a duplicate in
    // flight is counted, however late.
    a.stop_gracefully();
    b.stop_gracefully();
    let requests = seen.requests();
    assert_eq!(requests.len(), RECIPIENTS * EACH, "each exactly once");
    let mut by_recipient: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (to, text) in &requests {
        let k = text
            .split_once('-')
            .and_then(|(_, k)| k.parse().ok())
            .expect("text");
        by_recipient.entry(to.clone()).or_default().push(k);
    }
    assert_eq!(by_recipient.len(), RECIPIENTS);
    for (to, ks) in &by_recipient {
        assert_eq!(
            ks,
            &(0..EACH).collect::<Vec<_>>(),
            "{to}: in queue order, once each"
        );
    }
    let most = seen.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= 8, "{most} requests at once, over the cap of 8");
    assert!(most > 1, "sent one at a time: the cap is not used");
}

async fn count(url: &str, sql: &'static str) -> i64 {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || maveraa_storage::testing::count_at(&url, sql))
        .await
        .expect("count")
}

/// A provider that takes the request and answers after our timeout; Meta's
/// status webhook then names our message (`biz_opaque_callback_data`): the
/// message is `sent` with the provider's id from the webhook, and the
/// provider got it once. The grace (60 s, the default) is far longer than
/// the test: a resend could only come from a path that ignores it.
#[tokio::test]
async fn an_unknown_outcome_is_settled_by_the_status_webhook_not_resent() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(json!({"messages": [{"id": "wamid.late"}]})),
        )
        .mount(&provider)
        .await;
    let uri = provider.uri();
    let mut app = spawn_app_with(|s| {
        s.whatsapp.cloud_api_base_url = uri;
        s.whatsapp.request_timeout_ms = 300;
        s.dispatcher.lease_secs = 5;
    })
    .await;
    let session = app.cloud_session("real", SECRET, "v").await;
    let queued = json_of(
        app.send(json!({"sessionId": "real", "targetNumber": "6281234567890", "message": "once"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id").to_owned();
    // The attempt timed out: the entry waits out its grace.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = app.wait_for_message(&id, |_| true).await;
        let waiting = count(
            &app.db_url,
            "SELECT count(*) AS n FROM outbox WHERE outcome_unknown_since IS NOT NULL",
        )
        .await;
        if waiting == 1 {
            assert_eq!(m["status"], "queued");
            break;
        }
        assert!(Instant::now() < deadline, "never unknown: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = provider.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1);
    let sent_body: Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(sent_body["biz_opaque_callback_data"], id.as_str());

    let status = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "1234567890"},
        "statuses": [{"id": "wamid.late", "status": "sent", "timestamp": "1764000000",
                      "recipient_id": "6281234567890", "biz_opaque_callback_data": id}]
    }}]}]});
    let body = serde_json::to_vec(&status).expect("json");
    let res = app
        .client
        .post(app.url(&format!("/webhooks/whatsapp/{session}")))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(&body))
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(res.status(), 200);
    let sent = app.wait_for_message(&id, |m| m["status"] == "sent").await;
    assert_eq!(sent["providerMessageId"], "wamid.late");
    // Its outbox entry is gone: nothing can send it again.
    assert_eq!(
        count(&app.db_url, "SELECT count(*) AS n FROM outbox").await,
        0
    );
    app.stop().await;
    assert_eq!(
        provider.received_requests().await.unwrap_or_default().len(),
        1,
        "sent once"
    );
}
