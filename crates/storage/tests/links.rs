//! Linked sessions (WhatsApp Web) against a real PostgreSQL: one holder at
//! a time by the database's clock, link state recorded without undoing a
//! stop or a logout, requests taken once, and a linked session's messages
//! claimed only by its holder while it is connected.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use maveraa_domain::messaging::{
    LinkCode, LinkUpdate, LinkedAccount, PairOutcome, ProviderSettings, SessionStatus,
};
use maveraa_domain::ports::{DeviceStateStore, SessionLinks};
use maveraa_domain::{SessionId, WorkspaceId};
use maveraa_storage::testing::{Fixture, fixture, name, new_session, outbound, workspace};

async fn web_session(
    f: &Fixture,
    ws: WorkspaceId,
    session: &str,
) -> maveraa_domain::messaging::Session {
    let mut s = new_session(ws, session, ProviderSettings::WhatsAppWeb);
    s.status = SessionStatus::Starting;
    f.sessions().insert(&s).await.expect("session");
    s
}

fn links(f: &Fixture) -> &dyn SessionLinks {
    f.store.as_ref()
}

async fn status(f: &Fixture, id: SessionId) -> SessionStatus {
    f.sessions()
        .get(id)
        .await
        .expect("get")
        .expect("session")
        .status
}

#[tokio::test]
async fn one_server_holds_a_session_until_its_hold_runs_out() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = web_session(&f, ws, "sales").await;
    let ttl = Duration::from_millis(600);
    assert_eq!(links(&f).is_held(s.id).await, Ok(false));
    assert_eq!(links(&f).hold(s.id, "a", ttl).await, Ok(true));
    assert_eq!(
        links(&f).hold(s.id, "b", ttl).await,
        Ok(false),
        "a holds it"
    );
    assert_eq!(links(&f).hold(s.id, "a", ttl).await, Ok(true), "renewed");
    assert_eq!(links(&f).is_held(s.id).await, Ok(true));
    // Run out (its server died): the other takes it, bounded wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !links(&f).hold(s.id, "b", ttl).await.expect("hold") {
        assert!(std::time::Instant::now() < deadline, "never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        links(&f).hold(s.id, "a", ttl).await,
        Ok(false),
        "b holds it now"
    );
    // A release by a server that no longer holds it changes nothing.
    links(&f).release(s.id, "a").await.expect("release");
    assert_eq!(links(&f).is_held(s.id).await, Ok(true));
    links(&f).release(s.id, "b").await.expect("release");
    assert_eq!(links(&f).is_held(s.id).await, Ok(false));
    assert_eq!(links(&f).hold(s.id, "a", ttl).await, Ok(true), "free again");
    // No hold for a session that does not exist.
    assert_eq!(links(&f).hold(SessionId::new(), "a", ttl).await, Ok(false));
}

#[tokio::test]
async fn link_state_is_recorded_without_undoing_a_stop_or_a_logout() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = web_session(&f, ws, "sales").await;
    let other = web_session(&f, ws, "support").await;
    let runnable = |v: Vec<maveraa_domain::messaging::Session>| {
        let mut names: Vec<String> = v.into_iter().map(|s| s.name.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(
        runnable(links(&f).runnable().await.expect("runnable")),
        ["sales", "support"]
    );

    let code = LinkCode {
        code: "2@abc,def".into(),
        expires_at: (Utc::now() + chrono::Duration::seconds(20)).trunc_subsecs(6),
    };
    links(&f)
        .record(s.id, &LinkUpdate::Qr(code.clone()))
        .await
        .expect("qr");
    assert_eq!(status(&f, s.id).await, SessionStatus::QrRequired);
    assert_eq!(links(&f).qr(s.id).await, Ok(Some(code)));
    // An expired code is not shown.
    let old = LinkCode {
        code: "2@old".into(),
        expires_at: Utc::now() - chrono::Duration::seconds(1),
    };
    links(&f)
        .record(other.id, &LinkUpdate::Qr(old))
        .await
        .expect("qr");
    assert_eq!(links(&f).qr(other.id).await, Ok(None));

    let me = LinkedAccount {
        jid: "6281234567890@s.whatsapp.net".into(),
        push_name: Some("Acme Sales".into()),
    };
    links(&f)
        .record(s.id, &LinkUpdate::Connected(me.clone()))
        .await
        .expect("connected");
    let got = f.sessions().get(s.id).await.expect("get").expect("session");
    assert_eq!(
        (got.status, got.me.clone()),
        (SessionStatus::Connected, Some(me.clone()))
    );
    assert_eq!(links(&f).qr(s.id).await, Ok(None), "no code once linked");
    links(&f)
        .record(s.id, &LinkUpdate::Disconnected("stream closed".into()))
        .await
        .expect("disconnected");
    let got = f.sessions().get(s.id).await.expect("get").expect("session");
    assert_eq!(got.last_error.as_deref(), Some("stream closed"));
    assert_eq!(got.me, Some(me), "the account stays known");

    // Stopped: a late report of the closing connection leaves it stopped.
    assert!(
        f.sessions()
            .set_stopped(ws, &name("sales"), true)
            .await
            .expect("stop")
    );
    links(&f)
        .record(s.id, &LinkUpdate::Starting)
        .await
        .expect("late");
    assert_eq!(status(&f, s.id).await, SessionStatus::Stopped);
    assert_eq!(
        runnable(links(&f).runnable().await.expect("runnable")),
        ["support"]
    );
    // Started again: a linked device opens its connection first.
    assert!(
        f.sessions()
            .set_stopped(ws, &name("sales"), false)
            .await
            .expect("start")
    );
    assert_eq!(status(&f, s.id).await, SessionStatus::Starting);

    // A logout always lands, deletes the device's keys and the account,
    // and nothing after it undoes it but a start.
    f.store
        .put_many(s.id, "identity", &[(b"me".to_vec(), b"key".to_vec())])
        .await
        .expect("state");
    links(&f)
        .record(
            s.id,
            &LinkUpdate::LoggedOut(Some("unlinked from the phone".into())),
        )
        .await
        .expect("logout");
    let got = f.sessions().get(s.id).await.expect("get").expect("session");
    assert_eq!((got.status, got.me), (SessionStatus::LoggedOut, None));
    assert_eq!(f.count("SELECT count(*) AS n FROM device_state"), 0);
    links(&f)
        .record(s.id, &LinkUpdate::Disconnected("late".into()))
        .await
        .expect("late");
    assert_eq!(status(&f, s.id).await, SessionStatus::LoggedOut);
    assert_eq!(
        runnable(links(&f).runnable().await.expect("runnable")),
        ["support"]
    );

    // Status events: each change once, the linked account with it, and
    // each QR code.
    assert_eq!(
        f.count("SELECT count(*) AS n FROM events WHERE type = 'session.qr'"),
        2
    );
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM events WHERE type = 'session.status' \
             AND data->>'status' = 'connected' \
             AND data->'me'->>'id' = '6281234567890@s.whatsapp.net'"
        ),
        1
    );
}

#[tokio::test]
async fn requests_to_the_holder_are_taken_once_and_answered() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = web_session(&f, ws, "sales").await;
    assert_eq!(links(&f).take_requests(s.id).await, Ok(Default::default()));
    links(&f)
        .request_pair_code(s.id, "6281234567890")
        .await
        .expect("ask");
    links(&f).request_logout(s.id).await.expect("ask");
    let taken = links(&f).take_requests(s.id).await.expect("take");
    assert_eq!(taken.pair_phone.as_deref(), Some("6281234567890"));
    assert!(taken.logout);
    assert_eq!(
        links(&f).take_requests(s.id).await,
        Ok(Default::default()),
        "once"
    );
    assert_eq!(links(&f).pair_code_answer(s.id).await, Ok(None));
    links(&f)
        .answer_pair_code(s.id, &PairOutcome::Code("ABCD-EFGH".into()))
        .await
        .expect("answer");
    assert_eq!(
        links(&f).pair_code_answer(s.id).await,
        Ok(Some(PairOutcome::Code("ABCD-EFGH".into())))
    );
    // A new request clears the last answer.
    links(&f)
        .request_pair_code(s.id, "6289876543210")
        .await
        .expect("ask");
    assert_eq!(links(&f).pair_code_answer(s.id).await, Ok(None));
}

#[tokio::test]
async fn a_linked_sessions_messages_are_claimed_by_its_holder_while_connected() {
    use maveraa_domain::ports::{Outbox, SessionPace};
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = web_session(&f, ws, "sales").await;
    let m = outbound(&s, "6281234567890", "hello");
    f.messages().enqueue(&m, None).await.expect("enqueue");
    let pace = SessionPace {
        concurrency: 10,
        rate_per_sec: None,
    };
    let claim = |worker: &'static str| {
        let store = f.store.clone();
        async move {
            store
                .claim(worker, 10, Duration::from_secs(30), &pace)
                .await
                .expect("claim")
                .len()
        }
    };
    // Not connected: it waits, queued, whoever holds it.
    assert_eq!(
        links(&f).hold(s.id, "a", Duration::from_secs(30)).await,
        Ok(true)
    );
    assert_eq!(claim("a").await, 0);
    let me = LinkedAccount {
        jid: "6280000000000@s.whatsapp.net".into(),
        push_name: None,
    };
    links(&f)
        .record(s.id, &LinkUpdate::Connected(me))
        .await
        .expect("connected");
    // Connected: only its holder claims it.
    assert_eq!(claim("b").await, 0, "b does not hold it");
    assert_eq!(claim("a").await, 1);
}

#[tokio::test]
async fn messages_waiting_too_long_for_their_session_fail_and_the_others_wait() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let waiting = web_session(&f, ws, "waiting").await;
    let connected = web_session(&f, ws, "connected").await;
    let stopped = web_session(&f, ws, "stopped").await;
    let me = LinkedAccount {
        jid: "6280000000000@s.whatsapp.net".into(),
        push_name: None,
    };
    links(&f)
        .record(connected.id, &LinkUpdate::Connected(me))
        .await
        .expect("connected");
    assert!(
        f.sessions()
            .set_stopped(ws, &name("stopped"), true)
            .await
            .expect("stop")
    );
    let mut old = Vec::new();
    for s in [&waiting, &connected, &stopped] {
        let m = outbound(s, "6281234567890", "old");
        f.messages().enqueue(&m, None).await.expect("enqueue");
        old.push(m.id);
    }
    let fresh = outbound(&waiting, "6281234567890", "fresh");
    f.messages().enqueue(&fresh, None).await.expect("enqueue");
    f.sql(&format!(
        "UPDATE messages SET created_at = now() - interval '2 hours' WHERE id IN ('{}', '{}', '{}')",
        old[0], old[1], old[2]
    ));
    assert_eq!(
        links(&f).fail_unsent(Duration::from_secs(3600)).await,
        Ok(1)
    );
    let status = |id: maveraa_domain::MessageId| {
        f.count(&format!(
            "SELECT count(*) AS n FROM messages WHERE id = '{id}' AND status = 'failed' \
             AND error_code = 'session_not_connected'"
        ))
    };
    assert_eq!(
        status(old[0]),
        1,
        "the waiting session's old message failed"
    );
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM message_status_history WHERE message_id = '{}' AND status = 'failed'",
            old[0]
        )),
        1
    );
    assert_eq!(
        status(old[1]),
        0,
        "a connected session's message is sent, not failed"
    );
    assert_eq!(
        status(old[2]),
        0,
        "a stopped session's messages wait for its start"
    );
    assert_eq!(status(fresh.id), 0, "a fresh message waits");
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 3);
    assert_eq!(
        links(&f).fail_unsent(Duration::from_secs(3600)).await,
        Ok(0),
        "once"
    );
}
