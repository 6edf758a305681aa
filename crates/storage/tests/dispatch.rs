//! The dispatcher over the store, against a real PostgreSQL, one database
//! per test.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use maveraa_domain::messaging::MessageStatus;
use maveraa_domain::ports::{
    Claim, DispatchOutcome, MessageRepository, Outbox, OutboxJob, SessionPace,
};
use maveraa_domain::usecases::{Dispatcher, DispatcherSettings, RetryPolicy};
use maveraa_domain::{MessageId, RepositoryError, SystemClock};
use maveraa_storage::PgStore;
use maveraa_storage::testing::{Fixture, fixture, outbound, session, workspace};

use common::{AcceptAll, LEASE, Transports, enqueue, get, wait_for_lease_end};

/// An outbox whose first `record` fails with `error` (the database busy,
/// or a failure storage cannot name), then the real one.
struct BusyOnce {
    store: Arc<PgStore>,
    failed: std::sync::atomic::AtomicBool,
    error: RepositoryError,
}

#[async_trait]
impl Outbox for BusyOnce {
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        pace: &SessionPace,
    ) -> Result<Vec<maveraa_domain::ports::OutboxJob>, RepositoryError> {
        self.store.claim(worker, limit, lease, pace).await
    }
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(self.error.clone());
        }
        self.store.record(results, at).await
    }
}

#[tokio::test]
async fn a_sent_storage_could_not_take_is_recorded_before_the_next_claim() {
    // Busy, or failing in a way storage cannot name (a full disk reported
    // in another language, say): either way the `Sent` is kept.
    for error in [
        RepositoryError::Unavailable("pool busy".into()),
        RepositoryError::Internal("FEHLER: konnte Datei nicht erweitern".into()),
    ] {
        sent_kept_through(error).await;
    }
}

async fn sent_kept_through(error: RepositoryError) {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    let transport = Arc::new(AcceptAll::default());
    let lease = Duration::from_millis(300);
    let dispatcher = dispatcher_over(
        Arc::new(BusyOnce {
            store: f.store.clone(),
            failed: std::sync::atomic::AtomicBool::new(false),
            error: error.clone(),
        }),
        transport.clone(),
        "a",
        lease,
    );
    assert!(
        dispatcher.run_once().await.is_err(),
        "the outcome could not be recorded ({error:?})"
    );
    assert_eq!(transport.sent.load(Ordering::Relaxed), 1);
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    // The lease runs out meanwhile: the entry is due again, but the kept
    // outcome is recorded before anything is claimed.
    wait_for_lease_end(&f, &m).await;
    assert_eq!(dispatcher.run_once().await.expect("run"), 0, "nothing due");
    assert_eq!(
        transport.sent.load(Ordering::Relaxed),
        1,
        "sent once ({error:?})"
    );
    let stored = get(&f, &m).await;
    assert_eq!(
        (stored.status, stored.provider_message_id.as_deref()),
        (MessageStatus::Sent, Some("wamid.0"))
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

/// An outbox that refuses for good to record anything about one message
/// (as for a provider id another message has), and is the real one else.
struct RefusesOne {
    store: Arc<PgStore>,
    refused: MessageId,
}

#[async_trait]
impl Outbox for RefusesOne {
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        pace: &SessionPace,
    ) -> Result<Vec<OutboxJob>, RepositoryError> {
        self.store.claim(worker, limit, lease, pace).await
    }
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if results.iter().any(|(c, _)| c.message == self.refused) {
            return Err(RepositoryError::Duplicate { existing: None });
        }
        self.store.record(results, at).await
    }
}

#[tokio::test]
async fn an_outcome_storage_refuses_for_good_does_not_hold_up_the_others() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let refused = outbound(&s, "6281234567890", "refused");
    enqueue(&f, &refused).await;
    let transport = Arc::new(AcceptAll::default());
    let dispatcher = dispatcher_over(
        Arc::new(RefusesOne {
            store: f.store.clone(),
            refused: refused.id,
        }),
        transport.clone(),
        "a",
        LEASE,
    );
    assert!(dispatcher.run_once().await.is_err(), "refused");
    // A message queued later is still sent: the refused outcome is not
    // retried before every claim.
    let later = outbound(&s, "6281234567891", "later");
    enqueue(&f, &later).await;
    assert_eq!(dispatcher.run_once().await.expect("run"), 1);
    assert_eq!(get(&f, &later).await.status, MessageStatus::Sent);
}

fn dispatcher(f: &Fixture, transport: Arc<AcceptAll>, worker: &str) -> Dispatcher {
    dispatcher_over(f.store.clone(), transport, worker, LEASE)
}

/// A dispatcher on `outbox` (the store, or a wrapper of it).
fn dispatcher_over(
    outbox: Arc<dyn Outbox>,
    transport: Arc<AcceptAll>,
    worker: &str,
    lease: Duration,
) -> Dispatcher {
    Dispatcher::new(
        outbox,
        Arc::new(Transports(transport)),
        Arc::new(SystemClock),
        DispatcherSettings {
            worker: worker.into(),
            batch_size: 100,
            lease,
            retry: RetryPolicy::default(),
            pace: SessionPace::default(),
            unknown_outcome_grace: Duration::from_secs(60),
        },
    )
}

/// Enqueues `n` messages with `writers` concurrent writers, then drains the
/// outbox with `dispatchers` concurrent dispatchers; returns how long each
/// phase took.
async fn enqueue_and_dispatch(
    f: &Fixture,
    n: usize,
    writers: usize,
    dispatchers: usize,
) -> (Duration, Duration) {
    let ws = workspace(f, "Acme").await;
    let s = session(f, ws, "s1").await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, s) = (f.store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(writers) {
                let m = outbound(&s, &format!("62810{i:08}"), "hello");
                store.enqueue(&m, None).await.expect("enqueue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let enqueued = started.elapsed();

    let transport = Arc::new(AcceptAll::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..dispatchers {
        let dispatcher = dispatcher(f, transport.clone(), &format!("d{d}"));
        tasks.push(tokio::spawn(async move {
            while dispatcher.run_once().await.expect("run") > 0 {}
        }));
    }
    for t in tasks {
        t.await.expect("dispatcher");
    }
    let dispatched = started.elapsed();
    assert_eq!(
        transport.sent.load(Ordering::Relaxed),
        n as u64,
        "each sent once"
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM messages WHERE status = 'sent' AND provider_message_id IS NOT NULL"),
        i64::try_from(n).expect("n")
    );
    (enqueued, dispatched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatchers_send_every_queued_message_once() {
    let f = fixture();
    enqueue_and_dispatch(&f, 300, 4, 2).await;
}

/// Throughput: `cargo test -p maveraa-storage --release --test dispatch
/// -- --ignored --nocapture throughput`. First each phase alone, then
/// writers and dispatchers at once (the "overall" rate).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let n = 5000;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let f = fixture();
    let (enqueued, dispatched) = enqueue_and_dispatch(&f, n, 16, 2).await;
    println!(
        "apart: enqueue {n} in {enqueued:?} ({:.0}/s), dispatch {n} in {dispatched:?} ({:.0}/s)",
        rate(enqueued),
        rate(dispatched)
    );

    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let transport = Arc::new(AcceptAll::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, s) = (f.store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let m = outbound(&s, &format!("62810{i:08}"), "hello");
                store.enqueue(&m, None).await.expect("enqueue");
            }
        }));
    }
    for d in 0..2 {
        let dispatcher = dispatcher(&f, transport.clone(), &format!("d{d}"));
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            while transport.sent.load(Ordering::Relaxed) < n as u64 {
                if dispatcher.run_once().await.expect("run") == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let overall = started.elapsed();
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
    println!(
        "together: {n} enqueued and sent in {overall:?} ({:.0}/s)",
        rate(overall)
    );
}
