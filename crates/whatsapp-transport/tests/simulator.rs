//! The simulator: immediate ids, then `delivered` and `read` reported to
//! the sink of the right session, in order and on schedule.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ChannelSink, simulator_session};
use maveraa_domain::PhoneNumber;
use maveraa_domain::messaging::{MessageStatus, MessageText, ProviderEvent, Session, StatusUpdate};
use maveraa_domain::transport::{OutboundContent, OutboundMessage, WhatsAppTransport};
use maveraa_whatsapp_transport::{SIMULATOR_ID_PREFIX, Simulator, SimulatorConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn message() -> OutboundMessage {
    OutboundMessage {
        to: PhoneNumber::parse("to", "+62 898-7654-3210").expect("valid phone"),
        content: OutboundContent::Text {
            body: MessageText::parse("text", "hello").expect("text"),
        },
        message_id: None,
    }
}

fn config(delivered_ms: u64, read_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        delivered_after: Duration::from_millis(delivered_ms),
        read_after: Duration::from_millis(read_ms),
    }
}

/// The next report: the session it named and its one status update.
async fn next_status(
    rx: &mut UnboundedReceiver<(Session, Vec<ProviderEvent>)>,
) -> (Session, StatusUpdate) {
    let (session, mut events) = timeout(WAIT, rx.recv())
        .await
        .expect("a report in time")
        .expect("sink alive");
    assert_eq!(events.len(), 1, "{events:?}");
    match events.remove(0) {
        ProviderEvent::Status(s) => (session, s),
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test]
async fn reports_delivered_then_read_with_the_configured_delays() {
    let simulator = Simulator::new(config(20, 40));
    let (sink, mut rx) = ChannelSink::new();
    simulator.set_sink(Arc::new(sink));
    let session = simulator_session("sim-1");
    let transport = simulator.transport_for(&session);

    let start = Instant::now();
    let id = transport.send(&message()).await.expect("sent");
    assert!(id.starts_with(SIMULATOR_ID_PREFIX), "{id}");
    let uuid_part = &id[SIMULATOR_ID_PREFIX.len()..];
    assert_eq!(uuid_part.len(), 32, "{id}");
    assert!(uuid_part.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    let (reported_session, delivered) = next_status(&mut rx).await;
    let delivered_at = start.elapsed();
    assert_eq!(reported_session.id, session.id);
    assert_eq!(delivered.provider_message_id, id);
    assert_eq!(delivered.status, MessageStatus::Delivered);
    assert_eq!(delivered.error, None);
    assert!(
        delivered_at >= Duration::from_millis(20),
        "{delivered_at:?}"
    );

    let (reported_session, read) = next_status(&mut rx).await;
    let read_at = start.elapsed();
    assert_eq!(reported_session.id, session.id);
    assert_eq!(read.provider_message_id, id);
    assert_eq!(read.status, MessageStatus::Read);
    assert!(read_at >= Duration::from_millis(40), "{read_at:?}");
    assert!(read.timestamp >= delivered.timestamp);

    // Nothing else comes.
    assert!(
        timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn zero_delays_report_at_once_but_after_send_returns() {
    let simulator = Simulator::new(config(0, 0));
    let (sink, mut rx) = ChannelSink::new();
    simulator.set_sink(Arc::new(sink));
    let transport = simulator.transport_for(&simulator_session("sim-zero"));

    let id = transport.send(&message()).await.expect("sent");
    // The current-thread test runtime has not run the report task yet.
    assert!(rx.try_recv().is_err(), "reported synchronously");

    let (_, delivered) = next_status(&mut rx).await;
    let (_, read) = next_status(&mut rx).await;
    assert_eq!(
        (delivered.status, read.status),
        (MessageStatus::Delivered, MessageStatus::Read)
    );
    assert_eq!(delivered.provider_message_id, id);
    assert_eq!(read.provider_message_id, id);
}

#[tokio::test]
async fn read_never_comes_before_delivered() {
    let simulator = Simulator::new(config(30, 0));
    let (sink, mut rx) = ChannelSink::new();
    simulator.set_sink(Arc::new(sink));
    let transport = simulator.transport_for(&simulator_session("sim-order"));
    transport.send(&message()).await.expect("sent");
    assert_eq!(
        next_status(&mut rx).await.1.status,
        MessageStatus::Delivered
    );
    assert_eq!(next_status(&mut rx).await.1.status, MessageStatus::Read);
}

#[tokio::test]
async fn reports_go_to_the_session_that_sent() {
    let simulator = Simulator::new(config(0, 0));
    let (sink, mut rx) = ChannelSink::new();
    simulator.set_sink(Arc::new(sink));
    let a = simulator_session("sim-a");
    let b = simulator_session("sim-b");
    let id_a = simulator
        .transport_for(&a)
        .send(&message())
        .await
        .expect("sent");
    let id_b = simulator
        .transport_for(&b)
        .send(&message())
        .await
        .expect("sent");
    assert_ne!(id_a, id_b);

    for _ in 0..4 {
        let (session, update) = next_status(&mut rx).await;
        let expected = if update.provider_message_id == id_a {
            &a
        } else {
            &b
        };
        assert_eq!(session.id, expected.id, "{update:?}");
    }
}

#[tokio::test]
async fn counts_sends_across_sessions_and_clones() {
    let simulator = Simulator::new(config(0, 0));
    assert_eq!(simulator.sent_count(), 0);
    let a = simulator.transport_for(&simulator_session("sim-a"));
    let b = simulator.clone().transport_for(&simulator_session("sim-b"));
    a.send(&message()).await.expect("sent");
    a.send(&message()).await.expect("sent");
    b.send(&message()).await.expect("sent");
    assert_eq!(simulator.sent_count(), 3);
    // Read receipts are accepted and not counted as sends.
    a.mark_read(
        "wamid.in",
        &maveraa_domain::messaging::WaId::from_trusted_str("6281234567890"),
    )
    .await
    .expect("ok");
    assert_eq!(simulator.sent_count(), 3);
}

#[tokio::test]
async fn without_a_sink_statuses_are_dropped_and_sends_still_work() {
    let simulator = Simulator::new(config(0, 0));
    assert!(!simulator.has_sink());
    let transport = simulator.transport_for(&simulator_session("sim-nosink"));
    transport.send(&message()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(simulator.sent_count(), 1);
}

#[tokio::test]
async fn a_sink_set_after_the_send_still_gets_due_reports() {
    let simulator = Simulator::new(config(30, 40));
    let transport = simulator.transport_for(&simulator_session("sim-late"));
    let id = transport.send(&message()).await.expect("sent");
    let (sink, mut rx) = ChannelSink::new();
    simulator.set_sink(Arc::new(sink));
    let (_, delivered) = next_status(&mut rx).await;
    assert_eq!(delivered.provider_message_id, id);
}

#[tokio::test]
async fn the_first_sink_stays() {
    let simulator = Simulator::new(config(0, 0));
    let (first, mut rx_first) = ChannelSink::new();
    let (second, mut rx_second) = ChannelSink::new();
    assert!(simulator.set_sink(Arc::new(first)));
    assert!(simulator.has_sink());
    assert!(!simulator.set_sink(Arc::new(second)));
    simulator
        .transport_for(&simulator_session("sim-1"))
        .send(&message())
        .await
        .expect("sent");
    next_status(&mut rx_first).await;
    next_status(&mut rx_first).await;
    assert!(rx_second.try_recv().is_err());
}

#[tokio::test]
async fn a_failing_sink_does_not_stop_later_reports() {
    let simulator = Simulator::new(config(0, 0));
    let (sink, mut rx) = ChannelSink::new();
    sink.failures.lock().expect("lock").push(true);
    simulator.set_sink(Arc::new(sink));
    simulator
        .transport_for(&simulator_session("sim-1"))
        .send(&message())
        .await
        .expect("sent");
    assert_eq!(
        next_status(&mut rx).await.1.status,
        MessageStatus::Delivered
    );
    assert_eq!(next_status(&mut rx).await.1.status, MessageStatus::Read);
}

#[test]
fn send_outside_a_runtime_still_answers() {
    let simulator = Simulator::new(config(0, 0));
    let transport = simulator.transport_for(&simulator_session("sim-1"));
    // A bare executor: no tokio runtime around.
    let id = block_on_without_runtime(transport.send(&message())).expect("sent");
    assert!(id.starts_with(SIMULATOR_ID_PREFIX));
    assert_eq!(simulator.sent_count(), 1);
}

/// Polls a future that never waits to completion, without a runtime.
fn block_on_without_runtime<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn debug_shows_no_secrets_and_defaults_are_sane() {
    let simulator = Simulator::default();
    assert!(simulator.config().delivered_after < simulator.config().read_after);
    let session = common::cloud_session("c", "1", common::TOKEN);
    let text = format!("{:?}", simulator.transport_for(&session));
    assert!(!text.contains(common::TOKEN), "{text}");
    assert!(!text.contains("app-secret"), "{text}");
}
