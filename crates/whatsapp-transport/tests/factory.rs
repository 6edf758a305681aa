//! The transport factory: Cloud API sessions get a Cloud API transport on
//! the configured base URL, simulator sessions the simulator.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ChannelSink, PHONE_NUMBER_ID, TOKEN, cloud_session, simulator_session};
use maveraa_domain::PhoneNumber;
use maveraa_domain::messaging::{MessageStatus, MessageText, ProviderEvent};
use maveraa_domain::ports::TransportFactory;
use maveraa_domain::transport::{OutboundContent, OutboundMessage, TransportError};
use maveraa_whatsapp_transport::{
    CloudApiConfig, SIMULATOR_ID_PREFIX, Simulator, SimulatorConfig, Transports,
};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAMID: &str = "wamid.FACTORY";

fn message() -> OutboundMessage {
    OutboundMessage {
        to: PhoneNumber::parse("to", "+62 898-7654-3210").expect("valid phone"),
        content: OutboundContent::Text {
            body: MessageText::parse("text", "hello").expect("text"),
        },
        message_id: None,
    }
}

fn simulator() -> Simulator {
    Simulator::new(SimulatorConfig {
        delivered_after: Duration::ZERO,
        read_after: Duration::ZERO,
    })
}

fn factory(server: &MockServer, simulator: impl Into<Arc<Simulator>>) -> Transports {
    let cfg = CloudApiConfig {
        base_url: format!("{}/v21.0/", server.uri()),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    };
    Transports::from_config(&cfg, simulator).expect("factory")
}

#[tokio::test]
async fn cloud_api_session_sends_to_the_configured_base_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "text",
            "text": {"body": "hello"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "6289876543210", "wa_id": "6289876543210"}],
            "messages": [{"id": WAMID}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let sim = simulator();
    let transports = factory(&server, sim.clone());
    assert_eq!(transports.base_url(), format!("{}/v21.0", server.uri()));
    let transport = transports
        .transport_for(&cloud_session("cloud-1", PHONE_NUMBER_ID, TOKEN))
        .expect("transport");
    let id = transport.send(&message()).await.expect("sent");
    assert_eq!(id, WAMID);
    assert_eq!(sim.sent_count(), 0, "the simulator must not be used");
}

#[tokio::test]
async fn cloud_api_read_receipts_go_to_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}/messages")))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    let transport = factory(&server, simulator())
        .transport_for(&cloud_session("cloud-1", PHONE_NUMBER_ID, TOKEN))
        .expect("transport");
    transport
        .mark_read(
            "wamid.IN",
            &maveraa_domain::messaging::WaId::from_trusted_str("6281234567890"),
        )
        .await
        .expect("marked");
}

#[tokio::test]
async fn simulator_session_uses_the_simulator() {
    let server = MockServer::start().await;
    // Shared as an `Arc`, as the server holds it.
    let sim = Arc::new(simulator());
    let (sink, mut rx) = ChannelSink::new();
    let transports = factory(&server, Arc::clone(&sim));
    transports.simulator().set_sink(Arc::new(sink));
    let session = simulator_session("sim-1");

    let transport = transports.transport_for(&session).expect("transport");
    let id = transport.send(&message()).await.expect("sent");
    assert!(id.starts_with(SIMULATOR_ID_PREFIX), "{id}");
    assert_eq!(sim.sent_count(), 1);

    let (reported, events) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("in time")
        .expect("sink alive");
    assert_eq!(reported.id, session.id);
    assert!(matches!(
        events.as_slice(),
        [ProviderEvent::Status(s)] if s.provider_message_id == id && s.status == MessageStatus::Delivered
    ));
    // Nothing reached the Graph API.
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn unusable_cloud_api_settings_are_permanent_errors() {
    let server = MockServer::start().await;
    let transports = factory(&server, simulator());
    for (pnid, token) in [
        ("", TOKEN),
        ("   ", TOKEN),
        ("123/../../me", TOKEN),
        ("123?x=1", TOKEN),
        (PHONE_NUMBER_ID, ""),
        (PHONE_NUMBER_ID, "  "),
    ] {
        let result = transports.transport_for(&cloud_session("cloud-bad", pnid, token));
        match result {
            Err(TransportError::Permanent {
                code: None,
                message,
            }) => {
                assert!(message.contains("cloud-bad"), "{message}");
            }
            Err(other) => panic!("{pnid:?}/{token:?}: {other:?}"),
            Ok(_) => panic!("{pnid:?}/{token:?}: a transport was made"),
        }
    }
}

#[test]
fn debug_shows_the_base_url() {
    let transports = Transports::new(
        reqwest::Client::new(),
        "https://graph.facebook.com/v21.0",
        simulator(),
    );
    let text = format!("{transports:?}");
    assert!(text.contains("graph.facebook.com"), "{text}");
}
