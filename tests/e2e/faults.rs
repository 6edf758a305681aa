//! Fault drills: PostgreSQL stopped and started again under load, a server
//! started before its database, and SIGTERM with sends in flight. Each
//! counts what a stand-in Cloud API received once every server has
//! stopped, when nothing more can arrive.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use maveraa_storage::LocalPostgres;
use maveraa_storage::testing::TestDatabase;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::dispatch::{Accept, received_texts, serve};
use crate::helpers::{Spawned, free_port, server_command, wait_ready};

/// A PostgreSQL cluster of the test's own, which it may stop and start;
/// stopped and removed when dropped.
struct OwnPostgres {
    local: LocalPostgres,
}

impl OwnPostgres {
    fn start(name: &str) -> (Self, String) {
        let dir = std::env::temp_dir().join(format!("maveraa-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster folder");
        let local = LocalPostgres {
            dir,
            port: free_port(),
            database: "maveraa".into(),
            ephemeral: true,
        };
        let url = local
            .ensure_running()
            .expect("the test's PostgreSQL starts");
        (Self { local }, url)
    }

    /// `pg_ctl stop -m fast`: connections are ended at once.
    async fn stop(&self) {
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || local.stop())
            .await
            .expect("task")
            .expect("PostgreSQL stops");
    }

    async fn start_again(&self) {
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || local.ensure_running())
            .await
            .expect("task")
            .expect("PostgreSQL starts again");
    }

    fn dir(&self) -> PathBuf {
        self.local.dir.clone()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.local.stop();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// Runs an admin command on `db_url`; its one JSON line.
fn admin(db_url: &str, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = crate::helpers::maveraa(db_url, args);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// A workspace, a key and a Cloud API session "real" (number 1234567890)
/// on `db_url`; the key.
fn workspace_with_cloud_session(db_url: &str) -> String {
    let ws = admin(db_url, &["workspace", "create", "--name", "Acme"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let key = admin(db_url, &["api-key", "create", "--workspace", &ws])["key"]
        .as_str()
        .expect("key")
        .to_owned();
    admin(
        db_url,
        &[
            "session",
            "create",
            "--workspace",
            &ws,
            "--id",
            "real",
            "--provider",
            "cloud-api",
            "--phone-number-id",
            "1234567890",
            "--access-token",
            "EAAtoken",
            "--app-secret",
            "s",
            "--verify-token",
            "v",
        ],
    );
    key
}

/// A stand-in Cloud API that accepts every send after `delay`.
async fn provider(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/1234567890/messages"))
        .respond_with(DelayedAccept(Accept(Arc::new(AtomicU64::new(0))), delay))
        .mount(&server)
        .await;
    server
}

struct DelayedAccept(Accept, Duration);

impl Respond for DelayedAccept {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(self.1)
    }
}

/// One attempt to send `text` through `port`, with `text` as its
/// idempotency key, so retrying an attempt whose answer was lost queues
/// nothing twice.
async fn send_once(
    client: &reqwest::Client,
    port: u16,
    key: &str,
    text: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    // Spread over 100 recipients: one recipient's messages leave one at a
    // time, in order, and the drills are about the database, not that.
    let recipient = format!(
        "62812345{:05}",
        text.bytes().map(u32::from).sum::<u32>() % 100
    );
    client
        .post(format!("http://127.0.0.1:{port}/api/public/inbox/send"))
        .header("X-API-Key", key)
        .header("Idempotency-Key", text)
        .json(&json!({"sessionId": "real", "targetNumber": recipient, "message": text}))
        .send()
        .await
}

/// Sends `text` until it is accepted (`202`), for at most `within`.
async fn send_until_accepted(
    client: &reqwest::Client,
    port: u16,
    key: &str,
    text: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let answer = send_once(client, port, key, text).await;
        if matches!(&answer, Ok(res) if res.status() == 202) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{text} not accepted within {within:?}: {:?}",
            answer.map(|r| r.status())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most `within`) until the provider has received `expected`
/// different texts.
async fn wait_for_texts(provider: &MockServer, expected: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = received_texts(provider).await.len();
        if got >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {expected} texts arrived within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Texts received more than once, and texts of `expected` never received.
async fn duplicates_and_lost(
    provider: &MockServer,
    expected: &BTreeSet<String>,
) -> (Vec<(String, usize)>, Vec<String>) {
    let texts = received_texts(provider).await;
    let dupes = texts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let lost = expected
        .iter()
        .filter(|t| !texts.contains_key(*t))
        .cloned()
        .collect();
    (dupes, lost)
}

/// PostgreSQL stopped (fast shutdown) for 10 s and started again while
/// `backlog` queued messages are being sent to a provider that answers
/// after `delay`, by two dispatching servers with the default dispatcher
/// (2 loops, batches of 100, a 60 s lease), as in the measurement;
/// a third server only takes sends. Sends go on during the outage and
/// after it. Asserts the 503s, the recovery, and that the provider got
/// every accepted message exactly once once all servers have stopped.
async fn postgres_restart_drill(name: &str, delay: Duration, backlog: usize) {
    let (pg, url) = OwnPostgres::start(name);
    let key = workspace_with_cloud_session(&url);
    let provider = provider(delay).await;
    let uri = provider.uri();
    let front = free_port();
    // Takes sends only. Its sends after the restart are what showed a
    // dead connection kept by the group commit (`send_batch.rs`).
    let mut servers = vec![serve(
        &url,
        &uri,
        front,
        &[("MAVERAA__DISPATCHER__WORKERS", "0")],
    )];
    wait_ready(front);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let after = 50;
    let texts: Vec<String> = (0..backlog + after).map(|i| format!("pg-{i}")).collect();
    let expected: BTreeSet<String> = texts.iter().cloned().collect();
    for text in &texts[..backlog] {
        send_until_accepted(&client, front, &key, text, Duration::from_secs(10)).await;
    }
    let dispatching = [free_port(), free_port()];
    for port in dispatching {
        servers.push(serve(&url, &uri, port, &[]));
    }
    for port in dispatching {
        wait_ready(port);
    }
    wait_for_texts(&provider, backlog / 10, Duration::from_secs(30)).await;

    pg.stop().await;
    let down = Instant::now();
    let before_stop = received_texts(&provider).await.len();
    // While it is down: sends are refused with 503 and Retry-After, not
    // accepted and lost.
    let mut refused = 0;
    let mut next = backlog;
    while down.elapsed() < Duration::from_secs(10) {
        let port = [front, dispatching[0]][refused % 2];
        let res = send_once(&client, port, &key, &texts[next])
            .await
            .expect("the server answers while PostgreSQL is down");
        if res.status() == 202 {
            next += 1;
            continue;
        }
        assert_eq!(res.status(), 503, "a send while PostgreSQL is down");
        assert!(
            res.headers().contains_key("retry-after"),
            "a 503 says when to retry"
        );
        refused += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused > 0, "no send was refused while PostgreSQL was down");
    pg.start_again().await;

    // It recovers by itself: sends are accepted again within 30 s.
    let up = Instant::now();
    send_until_accepted(&client, front, &key, &texts[next], Duration::from_secs(30)).await;
    let recovered_after = up.elapsed();
    for (i, text) in texts[next + 1..].iter().enumerate() {
        let port = [front, dispatching[0], dispatching[1]][i % 3];
        send_until_accepted(&client, port, &key, text, Duration::from_secs(30)).await;
    }
    wait_for_texts(&provider, texts.len(), Duration::from_secs(120)).await;
    for server in &mut servers {
        assert!(
            server.try_wait().expect("try_wait").is_none(),
            "a server ended"
        );
    }
    // Once all have stopped, nothing more can arrive: a late duplicate is
    // counted too.
    tokio::task::block_in_place(|| servers.iter_mut().for_each(Spawned::stop_gracefully));
    let (dupes, lost) = duplicates_and_lost(&provider, &expected).await;
    let requests = provider.received_requests().await.unwrap_or_default().len();
    eprintln!(
        "drill {name}: {before_stop} of {backlog} queued had reached the provider when \
         PostgreSQL stopped; {refused} sends refused while down; accepted again \
         {recovered_after:?} after the restart; {} sent twice, {} lost, {requests} provider \
         requests for {} messages",
        dupes.len(),
        lost.len(),
        texts.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(dupes.is_empty(), "sent more than once: {dupes:?}");
    assert_eq!(requests, texts.len());
}

/// Whole batches are waiting for the provider when PostgreSQL stops:
/// their outcomes come back while it is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_with_sends_awaiting_the_provider_loses_nothing_and_repeats_nothing() {
    postgres_restart_drill("drill-slow", Duration::from_secs(1), 300).await;
}

/// A fast provider and a backlog: claims and recordings are under way
/// when PostgreSQL stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_dispatch_of_a_backlog_loses_nothing_and_repeats_nothing() {
    postgres_restart_drill("drill-fast", Duration::ZERO, 1000).await;
}

#[tokio::test]
async fn a_server_started_before_postgres_waits_for_it_and_then_serves() {
    let (pg, url) = OwnPostgres::start("drill-late-db");
    pg.stop().await;

    // With no time to wait, it gives up with a clear error.
    let out = server_command(&url, free_port())
        .env("MAVERAA__DATABASE__STARTUP_WAIT_SECS", "0")
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("PostgreSQL did not accept connections within database.startup_wait_secs"),
        "{err}"
    );

    let port = free_port();
    let mut server = Spawned(
        server_command(&url, port)
            .env("MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE", "false")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stderr = server.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // It says what it waits for, and keeps trying (a second line) rather
    // than exiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waiting = 0;
    while waiting < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("a line saying it waits for PostgreSQL");
        if line.contains("waiting for PostgreSQL") {
            assert!(
                !line.contains("password") && line.contains("retry_in_ms"),
                "{line}"
            );
            waiting += 1;
        }
    }
    assert!(server.try_wait().expect("try_wait").is_none(), "it exited");

    pg.start_again().await;
    wait_ready(port);
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    server.stop_gracefully();
    assert!(server.wait().expect("status").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_sends_in_flight_answers_them_and_loses_or_repeats_none() {
    let db = TestDatabase::create();
    let url = db.url().to_owned();
    let key = workspace_with_cloud_session(&url);
    // A slow provider and small batches: batches are mid-flight when the
    // signal comes, and more is queued than they hold.
    let provider = provider(Duration::from_secs(1)).await;
    let uri = provider.uri();
    let port = free_port();
    let small_batches = [("MAVERAA__DISPATCHER__BATCH_SIZE", "5")];
    let mut first = serve(&url, &uri, port, &small_batches);
    wait_ready(port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // Four clients send until the server stops answering; a send is
    // accepted only when its 202 came back.
    let accepted = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let attempted = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let senders: Vec<_> = (0..4)
        .map(|c| {
            let (client, key) = (client.clone(), key.clone());
            let (accepted, attempted) = (accepted.clone(), attempted.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let text = format!("term-{c}-{i}");
                    attempted.lock().expect("lock").insert(text.clone());
                    match send_once(&client, port, &key, &text).await {
                        Ok(res) if res.status() == 202 => {
                            accepted.lock().expect("lock").insert(text);
                        }
                        Ok(res) => panic!("{text}: answered {}", res.status()),
                        // Stopped taking connections: no more sends.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // SIGTERM once sends are both queued and being sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.lock().expect("lock").len() < 100
        || provider
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    {
        assert!(Instant::now() < deadline, "no load built up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| first.stop_gracefully());
    assert!(first.wait().expect("status").success(), "a clean exit");
    for s in senders {
        s.await.expect("a sender got an answer other than 202");
    }
    let accepted = accepted.lock().expect("lock").clone();
    let sent_before_restart = received_texts(&provider).await.len();

    // What was queued and not sent is sent by the next start.
    let port = free_port();
    let mut second = serve(&url, &uri, port, &small_batches);
    wait_ready(port);
    wait_for_texts(&provider, accepted.len(), Duration::from_secs(60)).await;
    tokio::task::block_in_place(|| second.stop_gracefully());
    let (dupes, lost) = duplicates_and_lost(&provider, &accepted).await;
    let received = received_texts(&provider).await;
    let attempted = attempted.lock().expect("lock").clone();
    // A send whose request was cut off unanswered may have been stored;
    // it must at least have been attempted.
    let unknown: Vec<_> = received
        .keys()
        .filter(|t| !attempted.contains(*t))
        .collect();
    eprintln!(
        "drill: {} accepted, {sent_before_restart} sent before SIGTERM ended the server, \
         {} sent twice, {} lost, {} stored unanswered",
        accepted.len(),
        dupes.len(),
        lost.len(),
        received.len().saturating_sub(accepted.len())
    );
    assert!(unknown.is_empty(), "texts no one sent: {unknown:?}");
    assert!(lost.is_empty(), "accepted and never sent: {lost:?}");
    assert!(dupes.is_empty(), "sent more than once: {dupes:?}");
    assert_eq!(
        received.len(),
        accepted.len(),
        "a send was stored but its 202 never came back"
    );
}
