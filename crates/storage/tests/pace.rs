//! Sending at the provider's pace and unknown outcomes, against a real
//! PostgreSQL: the per-session cap and rate hold across claimers, one
//! recipient's messages are claimed in queue order, and an unknown outcome
//! waits for a status report naming the message.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use maveraa_domain::messaging::{Message, MessageStatus};
use maveraa_domain::ports::{DispatchOutcome, SessionPace};
use maveraa_storage::testing::{fixture, now, outbound, session, workspace};

use common::{LEASE, enqueue, first, get, record, status, statuses};

fn pace(concurrency: u32) -> SessionPace {
    SessionPace {
        concurrency,
        rate_per_sec: None,
    }
}

#[tokio::test]
async fn claimers_racing_never_lease_more_of_a_session_than_its_cap() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let other = session(&f, ws, "s2").await;
    let mut queued = Vec::new();
    for i in 0..40 {
        let m = outbound(&s, &format!("628123456{i:04}"), &format!("m{i}"));
        enqueue(&f, &m).await;
        queued.push(m);
    }
    let o = outbound(&other, "6281234567890", "other session");
    enqueue(&f, &o).await;
    // Eight claimers at once, each claiming repeatedly and recording
    // nothing: every lease stays live, so the session's cap is all they
    // may take between them, whatever the interleaving.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..10 {
                let jobs = maveraa_domain::ports::Outbox::claim(
                    &*store,
                    &format!("w{w}"),
                    100,
                    LEASE,
                    &pace(5),
                )
                .await
                .expect("claim");
                mine.extend(jobs.into_iter().map(|j| j.message.id));
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.expect("claimer"));
    }
    let distinct: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "no entry claimed twice");
    let of_s = claimed.iter().filter(|id| **id != o.id).count();
    assert_eq!(of_s, 5, "the cap, no more: {claimed:?}");
    assert!(distinct.contains(&o.id), "another session has its own cap");
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE session_id = '{}' AND locked_until > now()",
            s.id
        )),
        5
    );

    // Two outcomes recorded free two places, and only two.
    let done: Vec<&Message> = queued.iter().filter(|m| distinct.contains(&m.id)).collect();
    for (i, m) in done.iter().take(2).enumerate() {
        let outcome = DispatchOutcome::Sent {
            provider_message_id: format!("wamid.{i}"),
        };
        record(&f, first(m), outcome, now()).await;
    }
    let more = f
        .outbox()
        .claim("late", 100, LEASE, &pace(5))
        .await
        .expect("claim");
    assert_eq!(more.len(), 2);
}

#[tokio::test]
async fn one_recipients_messages_are_claimed_one_at_a_time_in_queue_order() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let a: Vec<Message> = (0..3)
        .map(|i| outbound(&s, "6281234567890", &format!("a{i}")))
        .collect();
    let b = outbound(&s, "6281234567891", "b0");
    for m in a.iter().chain([&b]) {
        enqueue(&f, m).await;
    }
    let ids = |jobs: &[maveraa_domain::ports::OutboxJob]| -> HashSet<_> {
        jobs.iter().map(|j| j.message.id).collect()
    };
    let jobs = f
        .outbox()
        .claim("w", 100, LEASE, &pace(8))
        .await
        .expect("claim");
    assert_eq!(ids(&jobs), HashSet::from([a[0].id, b.id]), "each head");

    // The head is retried, due at once: it goes again before the next one.
    let retry = DispatchOutcome::Retry {
        at: now(),
        error: "HTTP 503".into(),
    };
    record(&f, first(&a[0]), retry, now()).await;
    let jobs = f
        .outbox()
        .claim("w", 100, LEASE, &pace(8))
        .await
        .expect("claim");
    assert_eq!(ids(&jobs), HashSet::from([a[0].id]));

    // Sent: the next of that recipient is due.
    let sent = DispatchOutcome::Sent {
        provider_message_id: "wamid.a0".into(),
    };
    let second_claim = maveraa_domain::ports::Claim {
        message: a[0].id,
        attempt: 2,
    };
    record(&f, second_claim, sent, now()).await;
    let jobs = f
        .outbox()
        .claim("w", 100, LEASE, &pace(8))
        .await
        .expect("claim");
    assert_eq!(ids(&jobs), HashSet::from([a[1].id]));
}

#[tokio::test]
async fn a_rate_spaces_a_sessions_claims() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    for i in 0..10 {
        enqueue(
            &f,
            &outbound(&s, &format!("628123456{i:04}"), &format!("m{i}")),
        )
        .await;
    }
    let paced = SessionPace {
        concurrency: 100,
        rate_per_sec: Some(4.0),
    };
    let started = Instant::now();
    let mut claimed = f
        .outbox()
        .claim("w", 100, LEASE, &paced)
        .await
        .expect("claim")
        .len();
    assert_eq!(claimed, 4, "a burst of one second's worth");
    // Six more at 4/s take at least 1.5 s, whatever the polling.
    while claimed < 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "stalled");
        claimed += f
            .outbox()
            .claim("w", 100, LEASE, &paced)
            .await
            .expect("claim")
            .len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_by_a_status_naming_the_message() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    let jobs = f
        .outbox()
        .claim("w", 10, LEASE, &pace(8))
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    let unknown = DispatchOutcome::Unknown {
        retry_at: now() + TimeDelta::seconds(60),
        error: "request timed out".into(),
    };
    record(&f, first(&m), unknown, now()).await;
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM outbox WHERE outcome_unknown_since IS NOT NULL \
             AND next_attempt_at > now() + interval '50 seconds' AND locked_until IS NULL"
        ),
        1,
        "waits out the grace, marked unknown"
    );
    assert!(
        f.outbox()
            .claim("w", 10, LEASE, &pace(8))
            .await
            .expect("claim")
            .is_empty()
    );

    // A status for a provider id we never recorded, naming our message.
    let mut delivered = status("wamid.unknown", MessageStatus::Delivered);
    delivered.echoed_message_id = Some(m.id);
    assert!(
        f.messages()
            .apply_status(s.id, &delivered)
            .await
            .expect("apply")
    );
    let got = get(&f, &m).await;
    assert_eq!(got.provider_message_id.as_deref(), Some("wamid.unknown"));
    assert_eq!(got.status, MessageStatus::Delivered);
    assert_eq!(
        statuses(&got),
        vec![
            MessageStatus::Queued,
            MessageStatus::Sent,
            MessageStatus::Delivered
        ]
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0, "not resent");
}

#[tokio::test]
async fn a_status_naming_another_sessions_message_settles_nothing() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let other = session(&f, ws, "s2").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    let mut forged = status("wamid.x", MessageStatus::Sent);
    forged.echoed_message_id = Some(m.id);
    assert!(
        !f.messages()
            .apply_status(other.id, &forged)
            .await
            .expect("apply")
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 1);
}
