//! The outbox against a real PostgreSQL, one database per test: claims,
//! leases and the outcomes recorded for them.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use maveraa_domain::MessageId;
use maveraa_domain::messaging::{
    DeliveryError, Message, MessageStatus, ProviderSettings, Session, StatusChange,
};
use maveraa_domain::ports::{DispatchOutcome, Outbox, OutboxJob};
use maveraa_storage::testing::{Fixture, fixture, new_session, now, outbound, session, workspace};

use common::{
    LEASE, UNPACED, cloud_settings, enqueue, first, get, record, status, statuses,
    wait_for_lease_end,
};

#[tokio::test]
async fn two_concurrent_claimers_share_the_due_entries_without_overlap() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let mut all = HashSet::new();
    for i in 0..200 {
        // One recipient each: one recipient's messages leave one by one.
        let m = outbound(&s, &format!("628123456{i:04}"), &format!("m{i}"));
        enqueue(&f, &m).await;
        all.insert(m.id);
    }
    // A claim finds nothing while the other claims for the session (it
    // skips the session as SKIP LOCKED skips rows): the claimers stop once
    // all entries are taken, not at their first empty claim.
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    let claimer = |worker: &'static str| {
        let store = f.store.clone();
        let taken = taken.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                if taken.load(Ordering::SeqCst) == 200 {
                    return mine;
                }
                assert!(Instant::now() < deadline, "entries left unclaimed");
                let jobs = store
                    .claim(worker, 7, LEASE, &UNPACED)
                    .await
                    .expect("claim");
                taken.fetch_add(jobs.len(), Ordering::SeqCst);
                if jobs.is_empty() {
                    tokio::task::yield_now().await;
                }
                for j in jobs {
                    assert_eq!(j.attempt, 1);
                    mine.push(j.message.id);
                }
            }
        })
    };
    let (a, b) = (claimer("a"), claimer("b"));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let a_set: HashSet<_> = a.iter().copied().collect();
    let b_set: HashSet<_> = b.iter().copied().collect();
    assert_eq!(a_set.len(), a.len(), "no entry twice to one claimer");
    assert!(a_set.is_disjoint(&b_set), "no entry to both");
    assert_eq!(&a_set | &b_set, all, "every entry to one");
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox WHERE locked_by = 'a'"),
        i64::try_from(a.len()).expect("len")
    );
}

#[tokio::test]
async fn a_claimed_entry_comes_back_only_when_its_lease_ends() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = Session {
        provider: cloud_settings(),
        ..new_session(ws, "cloud", ProviderSettings::Simulator)
    };
    f.sessions().insert(&s).await.expect("session");
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;

    let jobs = f
        .outbox()
        .claim("a", 10, Duration::from_secs(2), &UNPACED)
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].message,
        Message {
            history: Vec::new(),
            ..m.clone()
        }
    );
    assert_eq!(jobs[0].session, s, "with its session and settings");
    assert_eq!(jobs[0].attempt, 1);
    assert!(
        f.outbox()
            .claim("b", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .is_empty(),
        "held by a's lease"
    );

    wait_for_lease_end(&f, &m).await;
    let again = f
        .outbox()
        .claim("b", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "a died: the entry is due again");
    assert_eq!((again[0].message.id, again[0].attempt), (m.id, 2));
}

/// A queued message claimed by dispatcher "a" with a short lease that runs
/// out, then claimed again by "b": the session, the message, a's claim and
/// b's.
async fn claimed_twice(f: &Fixture) -> (Session, Message, OutboxJob, OutboxJob) {
    let ws = workspace(f, "Acme").await;
    let s = session(f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(f, &m).await;
    let mut slow = f
        .outbox()
        .claim("a", 10, Duration::from_millis(200), &UNPACED)
        .await
        .expect("claim");
    wait_for_lease_end(f, &m).await;
    let mut taken_over = f
        .outbox()
        .claim("b", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(taken_over.len(), 1, "a's lease ran out: b claims it");
    assert_eq!(taken_over[0].attempt, 2);
    let (a, b) = (slow.remove(0), taken_over.remove(0));
    (s, m, a, b)
}

#[tokio::test]
async fn a_late_outcome_of_an_expired_claim_leaves_the_new_claim_alone() {
    let f = fixture();
    let (_, m, slow, taken_over) = claimed_twice(&f).await;

    // a's send finally fails: neither its retry nor its failure may undo
    // b's claim (a retry would let a third dispatcher send it too).
    let late = slow.claim();
    record(
        &f,
        late,
        DispatchOutcome::Retry {
            at: now(),
            error: "timeout".into(),
        },
        now(),
    )
    .await;
    record(
        &f,
        late,
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox WHERE locked_by = 'b' AND locked_until > now()"),
        1,
        "still b's"
    );
    assert!(
        f.outbox()
            .claim("c", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    // b's outcome decides.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.b".into(),
        },
        now(),
    )
    .await;
    let stored = get(&f, &m).await;
    assert_eq!(
        (stored.status, stored.provider_message_id.as_deref()),
        (MessageStatus::Sent, Some("wamid.b"))
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

#[tokio::test]
async fn a_late_sent_counts_after_a_newer_claim_failed_the_message() {
    let f = fixture();
    let (s, m, slow, taken_over) = claimed_twice(&f).await;
    // b's attempt is refused (say the provider took a's copy and refuses
    // the second) and fails the message.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Failed(DeliveryError {
            code: Some("131000".into()),
            message: "refused".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &m).await.status, MessageStatus::Failed);

    // a's send went through after all: the provider has the message, and
    // its statuses can only be matched through the provider id.
    record(
        &f,
        slow.claim(),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.a".into(),
        },
        now(),
    )
    .await;
    let stored = get(&f, &m).await;
    assert_eq!(
        (
            stored.status,
            stored.provider_message_id.as_deref(),
            stored.error.as_ref()
        ),
        (MessageStatus::Sent, Some("wamid.a"), None)
    );
    assert_eq!(
        statuses(&stored),
        vec![
            MessageStatus::Queued,
            MessageStatus::Failed,
            MessageStatus::Sent
        ]
    );
    assert!(
        f.messages()
            .apply_status(s.id, &status("wamid.a", MessageStatus::Delivered))
            .await
            .expect("apply")
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Delivered);

    // Once sent, a later failure of a claim changes nothing.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &m).await.status, MessageStatus::Delivered);
}

#[tokio::test]
async fn a_retry_waits_by_the_database_clock_whatever_the_servers_clock_says() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    assert_eq!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .len(),
        1
    );
    // This server's clock runs two days ahead of the database's, and its
    // backoff says 30 s.
    let server_now = now() + TimeDelta::days(2);
    record(
        &f,
        first(&m),
        DispatchOutcome::Retry {
            at: server_now + TimeDelta::seconds(30),
            error: "HTTP 503".into(),
        },
        server_now,
    )
    .await;
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM outbox WHERE next_attempt_at \
             BETWEEN now() + interval '25 seconds' AND now() + interval '30 seconds'"
        ),
        1,
        "30 s from now by the database's clock"
    );
}

#[tokio::test]
async fn an_entry_this_version_cannot_read_does_not_hold_up_the_others() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let good = outbound(&s, "6281234567890", "good");
    let odd = outbound(&s, "6281234567891", "odd");
    enqueue(&f, &good).await;
    enqueue(&f, &odd).await;
    // A status a newer version might write.
    f.sql(&format!(
        "UPDATE messages SET status = 'scheduled' WHERE id = '{}'",
        odd.id
    ));
    let jobs = f
        .outbox()
        .claim("a", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    let ids: Vec<MessageId> = jobs.iter().map(|j| j.message.id).collect();
    assert_eq!(ids, vec![good.id], "the readable entry is handed out");
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE message_id = '{}' \
             AND locked_by = 'a' AND locked_until > now()",
            odd.id
        )),
        1,
        "the other stays claimed until its lease ends"
    );
}

#[tokio::test]
async fn a_retried_entry_waits_for_its_time() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    assert_eq!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .len(),
        1
    );
    record(
        &f,
        first(&m),
        DispatchOutcome::Retry {
            at: now() + TimeDelta::hours(1),
            error: "HTTP 503".into(),
        },
        now(),
    )
    .await;
    assert!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM outbox WHERE last_error = 'HTTP 503' \
             AND locked_by IS NULL AND locked_until IS NULL AND next_attempt_at > now()"
        ),
        1
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    f.sql("UPDATE outbox SET next_attempt_at = now() - interval '1 second'");
    let jobs = f
        .outbox()
        .claim("a", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!((jobs.len(), jobs[0].attempt), (1, 2));
}

#[tokio::test]
async fn a_failed_outcome_fails_the_message_and_ends_the_entry() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    // Three recipients: one recipient's messages are claimed one by one.
    let failing = outbound(&s, "6281234567890", "hello");
    let retried = outbound(&s, "6281234567891", "again");
    let sent = outbound(&s, "6281234567892", "ok");
    for m in [&failing, &retried, &sent] {
        enqueue(&f, m).await;
    }
    assert_eq!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .len(),
        3
    );
    let error = DeliveryError {
        code: Some("131030".into()),
        message: "Recipient not in allowed list".into(),
    };
    // Mixed outcomes in one call: one transaction.
    f.outbox()
        .record(
            &[
                (first(&failing), DispatchOutcome::Failed(error.clone())),
                (
                    first(&retried),
                    DispatchOutcome::Retry {
                        at: now() + TimeDelta::minutes(5),
                        error: "timeout".into(),
                    },
                ),
                (
                    first(&sent),
                    DispatchOutcome::Sent {
                        provider_message_id: "wamid.ok".into(),
                    },
                ),
            ],
            now(),
        )
        .await
        .expect("record");
    let stored = get(&f, &failing).await;
    assert_eq!(
        (stored.status, stored.error.clone()),
        (MessageStatus::Failed, Some(error.clone()))
    );
    assert_eq!(
        stored.history.last(),
        Some(&StatusChange {
            status: MessageStatus::Failed,
            at: stored.updated_at,
            error: Some(error)
        })
    );
    assert_eq!(get(&f, &sent).await.status, MessageStatus::Sent);
    assert_eq!(get(&f, &retried).await.status, MessageStatus::Queued);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox"),
        1,
        "only the retry is left"
    );

    // An outcome for an entry that is gone (another dispatcher recorded it
    // after this one's lease ran out) changes nothing.
    record(
        &f,
        first(&sent),
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &sent).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn a_failed_message_is_queued_again_once_and_one_the_provider_took_never() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let failed = |code: &str| {
        DispatchOutcome::Failed(DeliveryError {
            code: Some(code.into()),
            message: "refused".into(),
        })
    };
    // Different recipients: one recipient's messages are claimed in turn.
    let (a, b) = (
        outbound(&s, "6281234567890", "a"),
        outbound(&s, "6281234567891", "b"),
    );
    for m in [&a, &b] {
        enqueue(&f, m).await;
    }
    let claimed = f
        .store
        .claim("w", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    record(&f, first(&a), failed("190"), now()).await;
    record(&f, first(&b), failed("131030"), now()).await;

    // Two retries at once: one queues it, the other finds nothing to do.
    let (x, y) = tokio::join!(
        f.messages().requeue(ws, a.id, now()),
        f.messages().requeue(ws, a.id, now())
    );
    let done: Vec<Message> = [x, y]
        .into_iter()
        .filter_map(|r| r.expect("requeue"))
        .collect();
    assert_eq!(done.len(), 1, "queued again exactly once");
    assert_eq!(done[0].status, MessageStatus::Queued);
    assert_eq!(done[0].error, None);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox"),
        1,
        "one new entry"
    );
    // Another workspace's id behaves like an unknown one.
    let other = workspace(&f, "Other").await;
    assert_eq!(
        f.messages().requeue(other, b.id, now()).await.expect("r"),
        None
    );
    // By session and error code: only b's code, only b.
    assert_eq!(
        f.messages()
            .requeue_failed(ws, s.id, Some("190"), now())
            .await
            .expect("r"),
        0
    );
    assert_eq!(
        f.messages()
            .requeue_failed(ws, s.id, Some("131030"), now())
            .await
            .expect("r"),
        1
    );

    // Sent, then failed by the provider: the provider took it, so it is
    // never queued again.
    let c = outbound(&s, "6281234567892", "c");
    enqueue(&f, &c).await;
    let jobs = f
        .store
        .claim("w", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    let job = jobs
        .iter()
        .find(|j| j.message.id == c.id)
        .expect("c claimed");
    record(
        &f,
        job.claim(),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.c".into(),
        },
        now(),
    )
    .await;
    let mut report = status("wamid.c", MessageStatus::Failed);
    report.error = Some(DeliveryError {
        code: Some("131026".into()),
        message: "undeliverable".into(),
    });
    f.messages()
        .apply_status(s.id, &report)
        .await
        .expect("apply");
    let c_now = get(&f, &c).await;
    assert_eq!(c_now.status, MessageStatus::Failed);
    assert!(!c_now.can_retry());
    assert_eq!(
        f.messages().requeue(ws, c.id, now()).await.expect("r"),
        None
    );
    assert_eq!(
        f.messages()
            .requeue_failed(ws, s.id, None, now())
            .await
            .expect("r"),
        0
    );
}

#[tokio::test]
async fn an_entry_no_process_can_read_is_failed_after_a_few_claims() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let readable = outbound(&s, "6281234567890", "fine");
    let broken = outbound(&s, "6281234567891", "broken");
    for m in [&readable, &broken] {
        enqueue(&f, m).await;
    }
    // A status this version does not know, as a newer one might write.
    f.sql(&format!(
        "UPDATE messages SET status = 'scheduled' WHERE id = '{}'",
        broken.id
    ));
    let short = Duration::from_millis(200);
    let jobs = f
        .store
        .claim("w", 10, short, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(
        jobs.iter().map(|j| j.message.id).collect::<Vec<_>>(),
        [readable.id],
        "the unreadable entry does not hold up the others"
    );
    // Claimed again after each lease, until the third claim gives up on it.
    for claim in 2..=3 {
        wait_for_lease_end(&f, &broken).await;
        let jobs = f
            .store
            .claim("w", 10, short, &UNPACED)
            .await
            .expect("claim");
        assert!(
            jobs.iter().all(|j| j.message.id != broken.id),
            "claim {claim}"
        );
    }
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE message_id = '{}'",
            broken.id
        )),
        0,
        "no longer claimed"
    );
    let (status, code, message) = {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            status: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            error_code: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            error_message: Option<String>,
        }
        let id = broken.id;
        let row: Row = f
            .store
            .database()
            .run_blocking(move |conn| {
                use diesel::RunQueryDsl;
                Ok(diesel::sql_query(format!(
                    "SELECT status, error_code, error_message FROM messages WHERE id = '{id}'"
                ))
                .get_result(conn)?)
            })
            .expect("row");
        (row.status, row.error_code, row.error_message)
    };
    assert_eq!(status, "failed");
    assert_eq!(code.as_deref(), Some(maveraa_storage::UNREADABLE_CODE));
    assert!(
        message.is_some_and(|m| m.contains("never sent") && m.contains("scheduled")),
        "the reason says what could not be read"
    );
}

#[tokio::test]
async fn an_entry_whose_lease_ended_while_the_database_was_down_waits_a_lease_after_its_start() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "held");
    enqueue(&f, &m).await;
    let jobs = f
        .store
        .claim("a", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    // As if the lease had run out while the database was down: it ended
    // before the server's start.
    f.sql(&format!(
        "UPDATE outbox SET locked_until = pg_postmaster_start_time() - interval '1 second', \
         next_attempt_at = pg_postmaster_start_time() - interval '1 second' \
         WHERE message_id = '{}'",
        m.id
    ));
    let uptime =
        f.count("SELECT extract(epoch FROM now() - pg_postmaster_start_time())::bigint AS n");
    // Within a lease of the start, nobody else may claim it: its holder
    // may still record what it could not.
    let within = Duration::from_secs(u64::try_from(uptime).expect("uptime") + 600);
    assert!(
        f.store
            .claim("b", 10, within, &UNPACED)
            .await
            .expect("claim")
            .is_empty(),
        "claimed during its holder's grace"
    );
    // Once a lease has passed since the start, it is due as any other.
    let jobs = f
        .store
        .claim("b", 10, Duration::from_secs(1), &UNPACED)
        .await
        .expect("claim");
    assert_eq!(
        jobs.iter().map(|j| j.message.id).collect::<Vec<_>>(),
        [m.id]
    );
}

#[tokio::test]
async fn a_stopped_sessions_messages_wait_queued_until_it_starts() {
    use maveraa_domain::messaging::{SessionName, SessionStatus};
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let stopped = session(&f, ws, "paused").await;
    let other = session(&f, ws, "running").await;
    let name = SessionName::parse("sessionId", "paused").expect("name");
    assert!(
        f.sessions()
            .set_stopped(ws, &name, true)
            .await
            .expect("stop")
    );
    let waiting = outbound(&stopped, "6281234567890", "later");
    enqueue(&f, &waiting).await;
    let going = outbound(&other, "6281234567890", "now");
    enqueue(&f, &going).await;

    let jobs = f
        .outbox()
        .claim("a", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    let claimed: Vec<_> = jobs.iter().map(|j| j.message.id).collect();
    assert_eq!(claimed, vec![going.id], "only the running session's");
    assert_eq!(get(&f, &waiting).await.status, MessageStatus::Queued);
    // What a send that ends now finds does not start it again.
    f.sessions()
        .set_status(stopped.id, SessionStatus::Connected, None)
        .await
        .expect("status");
    let read = f
        .sessions()
        .get_by_name(ws, &name)
        .await
        .expect("get")
        .expect("session");
    assert_eq!(read.status, SessionStatus::Stopped);
    assert!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .is_empty(),
        "still waiting"
    );

    assert!(
        f.sessions()
            .set_stopped(ws, &name, false)
            .await
            .expect("start")
    );
    let jobs = f
        .outbox()
        .claim("a", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].message.id, waiting.id);
    assert_eq!(jobs[0].session.status, SessionStatus::Connected);
    let missing = SessionName::parse("sessionId", "nope").expect("name");
    assert!(
        !f.sessions()
            .set_stopped(ws, &missing, true)
            .await
            .expect("stop")
    );
}

#[tokio::test]
async fn a_provider_id_given_twice_is_kept_once_and_the_batch_is_still_recorded() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let earlier = outbound(&s, "6281234567890", "one");
    let again = outbound(&s, "6281234567891", "two");
    let twice = outbound(&s, "6281234567892", "three");
    let other = outbound(&s, "6281234567893", "four");
    for m in [&earlier, &again, &twice, &other] {
        enqueue(&f, m).await;
    }
    assert_eq!(
        f.outbox()
            .claim("a", 10, LEASE, &UNPACED)
            .await
            .expect("claim")
            .len(),
        4
    );
    let sent = |id: &str| DispatchOutcome::Sent {
        provider_message_id: id.into(),
    };
    record(&f, first(&earlier), sent("wamid.same"), now()).await;
    // The provider gives an id it gave before, and one id twice in a batch:
    // refusing the batch would leave all of it claimed, to be sent again.
    f.outbox()
        .record(
            &[
                (first(&again), sent("wamid.same")),
                (first(&twice), sent("wamid.new")),
                (first(&other), sent("wamid.new")),
            ],
            now(),
        )
        .await
        .expect("the batch is recorded");
    for m in [&earlier, &again, &twice, &other] {
        assert_eq!(get(&f, m).await.status, MessageStatus::Sent);
    }
    assert_eq!(
        get(&f, &earlier).await.provider_message_id.as_deref(),
        Some("wamid.same")
    );
    assert_eq!(get(&f, &again).await.provider_message_id, None);
    let ids = [
        get(&f, &twice).await.provider_message_id,
        get(&f, &other).await.provider_message_id,
    ];
    assert_eq!(
        ids.iter()
            .filter(|i| i.as_deref() == Some("wamid.new"))
            .count(),
        1,
        "{ids:?}"
    );
    assert_eq!(ids.iter().filter(|i| i.is_none()).count(), 1, "{ids:?}");
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

// Over `unnest` arrays PostgreSQL judges a generic plan dearer than one made
// for the values, so without `with_generic_plans` it planned the record
// anew at every run, which cost as much as running it.
#[tokio::test]
async fn records_reuse_their_plan() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Plans {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        custom: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        generic: i64,
    }
    // One connection: prepared statements and their counts are per
    // connection.
    let f = Fixture::with_pool(&maveraa_storage::PoolSettings {
        max_size: 1,
        min_idle: 1,
        ..maveraa_storage::PoolSettings::default()
    });
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let runs = 8;
    for i in 0..runs {
        let m = outbound(&s, &format!("62812345{i:04}"), "hi");
        enqueue(&f, &m).await;
        let jobs = f
            .outbox()
            .claim("w", 1, LEASE, &UNPACED)
            .await
            .expect("claim");
        assert_eq!(jobs.len(), 1);
        let sent = DispatchOutcome::Sent {
            provider_message_id: format!("wamid.{i}"),
        };
        record(&f, jobs[0].claim(), sent, now()).await;
    }
    let plans = f
        .store
        .database()
        .run(|conn| {
            Ok(diesel::sql_query(
                "SELECT coalesce(sum(custom_plans), 0)::bigint AS custom, \
                        coalesce(sum(generic_plans), 0)::bigint AS generic \
                 FROM pg_prepared_statements \
                 WHERE statement LIKE 'WITH locked AS%'",
            )
            .get_result::<Plans>(conn)?)
        })
        .await
        .expect("plans");
    assert_eq!(plans.generic, runs, "records ran a generic plan");
    assert_eq!(plans.custom, 0, "none planned for its values");
}
