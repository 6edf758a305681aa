//! The real WhatsApp Web engine over PostgreSQL, as far as it goes without
//! a phone or WhatsApp's servers (none is reachable from the test
//! machine): opening a fresh session creates its device's identity in the
//! device state, the connection keeps trying without panicking or
//! claiming a link, `close` returns in bounded time and ends the events,
//! and opening again loads the same identity.

use std::time::Duration;

use maveraa_domain::messaging::{LinkEvent, ProviderSettings, Session};
use maveraa_domain::ports::{DeviceStateStore, Link, LinkEngine};
use maveraa_storage::testing::{Fixture, fixture, new_session, workspace};
use maveraa_whatsapp_transport::WhatsAppWebEngine;

/// Opening builds the device (key generation, a save): generous.
const OPEN_WAIT: Duration = Duration::from_secs(60);
/// `close` waits at most 30 s for the engine itself; a little more here.
const CLOSE_WAIT: Duration = Duration::from_secs(40);

async fn web_session(f: &Fixture) -> Session {
    let ws = workspace(f, "acme").await;
    let s = new_session(ws, "web", ProviderSettings::WhatsAppWeb);
    f.sessions().insert(&s).await.expect("session");
    s
}

/// The device's identity key as the engine saved it.
async fn identity(f: &Fixture, s: &Session) -> Option<serde_json::Value> {
    let bytes = f
        .store
        .get(s.id, "device", b"device")
        .await
        .expect("device state")?;
    let device: serde_json::Value = serde_json::from_slice(&bytes).expect("device JSON");
    Some(device["identity_key"].clone())
}

/// Opens `s`, watches its events for `watch`, closes it; returns what it
/// reported.
async fn open_watch_close(f: &Fixture, s: &Session, watch: Duration) -> Vec<String> {
    let engine = WhatsAppWebEngine::new(f.store.clone());
    let Link {
        connection,
        mut events,
    } = tokio::time::timeout(OPEN_WAIT, engine.open(s))
        .await
        .expect("open in time")
        .expect("opened");
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(watch, async {
        while let Some(event) = events.next().await {
            seen.push(format!("{event:?}"));
            assert!(
                matches!(
                    event,
                    LinkEvent::Disconnected { .. } | LinkEvent::Qr(_) | LinkEvent::Failed { .. }
                ),
                "without WhatsApp, nothing links: {event:?}"
            );
        }
    })
    .await;
    let started = tokio::time::Instant::now();
    tokio::time::timeout(CLOSE_WAIT, connection.close())
        .await
        .expect("close returns in bounded time");
    eprintln!("close took {:?}", started.elapsed());
    // Once closed, the events end (what was queued first).
    tokio::time::timeout(Duration::from_secs(5), async {
        while events.next().await.is_some() {}
    })
    .await
    .expect("the events end after close");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_session_gets_a_device_identity_and_closes_cleanly() {
    let f = fixture();
    let s = web_session(&f).await;
    assert!(identity(&f, &s).await.is_none());

    let seen = open_watch_close(&f, &s, Duration::from_secs(5)).await;
    eprintln!("reported without WhatsApp: {seen:?}");
    let first = identity(&f, &s).await.expect("the device is saved");
    assert!(
        first.is_object() || first.is_array() || first.is_string(),
        "{first}"
    );

    // Opened again (as after a restart), it is the same device.
    let _ = open_watch_close(&f, &s, Duration::from_millis(500)).await;
    assert_eq!(identity(&f, &s).await, Some(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_pairing_fail_cleanly_while_not_connected() {
    use maveraa_domain::MessageId;
    use maveraa_domain::ports::TransportError;
    use maveraa_domain::transport::{OutboundContent, OutboundMessage};
    use maveraa_domain::values::PhoneNumber;

    let f = fixture();
    let s = web_session(&f).await;
    let engine = WhatsAppWebEngine::new(f.store.clone()).with_media(
        maveraa_whatsapp_transport::MediaFetcher::new(Duration::from_secs(5), 1_000_000, false)
            .expect("fetcher"),
    );
    let link = tokio::time::timeout(OPEN_WAIT, engine.open(&s))
        .await
        .expect("open in time")
        .expect("opened");
    let text = OutboundMessage {
        to: PhoneNumber::parse("to", "6281234567890").expect("number"),
        content: OutboundContent::Text {
            body: maveraa_domain::messaging::MessageText::parse("body", "hello").expect("text"),
        },
        message_id: Some(MessageId::new()),
    };
    let sent = tokio::time::timeout(Duration::from_secs(30), link.connection.send(&text))
        .await
        .expect("send answers in time");
    assert!(
        matches!(sent, Err(TransportError::Unreachable { .. })),
        "not linked, not connected: nothing written ({sent:?})"
    );
    // Media is neither fetched nor uploaded while not connected.
    let media = OutboundMessage {
        content: OutboundContent::Media(maveraa_domain::messaging::OutboundMedia::new(
            maveraa_domain::transport::MediaKind::Image,
            maveraa_domain::messaging::MediaUrl::parse("url", "https://example.com/a.jpg")
                .expect("url"),
            None,
            None,
        )),
        ..text.clone()
    };
    let sent = link.connection.send(&media).await;
    assert!(
        matches!(sent, Err(TransportError::Unreachable { .. })),
        "{sent:?}"
    );
    // A read receipt (to the sender's number, the message not being one
    // this connection received) needs a connection too.
    let read = link
        .connection
        .mark_read(
            "3EB0UNKNOWN",
            &maveraa_domain::messaging::WaId::from_trusted_str("6281234567890"),
        )
        .await;
    assert!(
        matches!(read, Err(TransportError::Unreachable { .. })),
        "{read:?}"
    );
    // A number too short to be anyone's: refused by the engine itself, so
    // this test never asks WhatsApp to notify a real phone, even on a
    // machine that can reach it. No code, no panic, bounded.
    let code =
        tokio::time::timeout(Duration::from_secs(45), link.connection.pair_code("12345")).await;
    assert!(
        matches!(code, Err(_) | Ok(Err(TransportError::Permanent { .. }))),
        "{code:?}"
    );
    tokio::time::timeout(CLOSE_WAIT, link.connection.close())
        .await
        .expect("close returns in bounded time");
}
