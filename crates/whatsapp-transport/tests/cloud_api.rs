//! Contract tests of the Cloud API adapter against a mock Graph API.

use std::time::Duration;

use maveraa_domain::PhoneNumber;
use maveraa_domain::messaging::{Caption, FileName, MediaUrl, MessageText, OutboundMedia};
use maveraa_domain::transport::{
    MediaKind, OutboundContent, OutboundMessage, TransportError, WhatsAppTransport,
};
use maveraa_whatsapp_transport::{CloudApiConfig, CloudApiTransport, build_http_client};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE_NUMBER_ID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-token";
const MESSAGES_PATH: &str = "/v21.0/106540352242922/messages";
const WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA";

fn transport_with_timeout(server: &MockServer, timeout: Duration) -> CloudApiTransport {
    let cfg = CloudApiConfig {
        base_url: format!("{}/v21.0", server.uri()),
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(1),
    };
    let client = build_http_client(&cfg).expect("http client");
    CloudApiTransport::new(
        client,
        &cfg.base_url,
        PHONE_NUMBER_ID.to_owned(),
        TOKEN.to_owned(),
    )
}

fn transport(server: &MockServer) -> CloudApiTransport {
    transport_with_timeout(server, Duration::from_secs(5))
}

fn to() -> PhoneNumber {
    PhoneNumber::parse("to", "+62 898-7654-3210").expect("valid phone")
}

fn text(body: &str) -> OutboundMessage {
    OutboundMessage {
        to: to(),
        content: OutboundContent::Text {
            body: MessageText::parse("text", body).expect("text"),
        },
        message_id: None,
    }
}

fn media(
    kind: MediaKind,
    url: &str,
    caption: Option<&str>,
    file_name: Option<&str>,
) -> OutboundMessage {
    OutboundMessage {
        to: to(),
        // Caption and file name parsed for kinds that show them, so that
        // the tests can give them to kinds that do not.
        content: OutboundContent::Media(OutboundMedia::new(
            kind,
            MediaUrl::parse("url", url).expect("url"),
            caption.and_then(|c| Caption::parse("caption", MediaKind::Image, c).expect("caption")),
            file_name.and_then(|f| {
                FileName::parse("fileName", MediaKind::Document, f).expect("file name")
            }),
        )),
        message_id: None,
    }
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "6289876543210", "wa_id": "6289876543210"}],
        "messages": [{"id": WAMID}]
    }))
}

/// Mounts a mock that only answers `expected_body` posted with the right
/// path and token, expected exactly once.
async fn expect_post(server: &MockServer, expected_body: Value, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

/// Mounts a mock answering any post to the messages path.
async fn answer_any(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn sends_text() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "text",
            "text": {"body": "Halo, pesanan Anda sudah dikirim"}
        }),
        accepted(),
    )
    .await;

    let id = transport(&server)
        .send(&text("Halo, pesanan Anda sudah dikirim"))
        .await
        .expect("sent");
    assert_eq!(id, WAMID);
}

#[tokio::test]
async fn sends_our_message_id_as_callback_data() {
    let server = MockServer::start().await;
    let ours = maveraa_domain::MessageId::new();
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "biz_opaque_callback_data": ours.to_string(),
            "type": "text",
            "text": {"body": "hi"}
        }),
        accepted(),
    )
    .await;
    let mut message = text("hi");
    message.message_id = Some(ours);
    assert_eq!(
        transport(&server).send(&message).await.expect("sent"),
        WAMID
    );
}

#[tokio::test]
async fn sends_image_with_caption() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "image",
            "image": {"link": "https://cdn.example.com/a.jpg", "caption": "Katalog"}
        }),
        accepted(),
    )
    .await;

    let message = media(
        MediaKind::Image,
        "https://cdn.example.com/a.jpg",
        Some("Katalog"),
        Some("ignored.jpg"),
    );
    let id = transport(&server).send(&message).await.expect("sent");
    assert_eq!(id, WAMID);
}

#[tokio::test]
async fn sends_document_with_filename() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "document",
            "document": {
                "link": "https://cdn.example.com/inv.pdf",
                "caption": "Invoice",
                "filename": "invoice-42.pdf"
            }
        }),
        accepted(),
    )
    .await;

    let message = media(
        MediaKind::Document,
        "https://cdn.example.com/inv.pdf",
        Some("Invoice"),
        Some("invoice-42.pdf"),
    );
    let id = transport(&server).send(&message).await.expect("sent");
    assert_eq!(id, WAMID);
}

#[tokio::test]
async fn sends_document_without_optional_fields() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "document",
            "document": {"link": "https://cdn.example.com/inv.pdf"}
        }),
        accepted(),
    )
    .await;

    let message = media(
        MediaKind::Document,
        "https://cdn.example.com/inv.pdf",
        None,
        None,
    );
    transport(&server).send(&message).await.expect("sent");
}

#[tokio::test]
async fn sends_audio_without_caption() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "audio",
            "audio": {"link": "https://cdn.example.com/note.ogg"}
        }),
        accepted(),
    )
    .await;

    let message = media(
        MediaKind::Audio,
        "https://cdn.example.com/note.ogg",
        Some("dropped"),
        Some("dropped.ogg"),
    );
    let id = transport(&server).send(&message).await.expect("sent");
    assert_eq!(id, WAMID);
}

#[tokio::test]
async fn sends_video_with_caption_and_no_filename() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6289876543210",
            "type": "video",
            "video": {"link": "https://cdn.example.com/demo.mp4", "caption": "Demo"}
        }),
        accepted(),
    )
    .await;

    let message = media(
        MediaKind::Video,
        "https://cdn.example.com/demo.mp4",
        Some("Demo"),
        Some("dropped.mp4"),
    );
    let id = transport(&server).send(&message).await.expect("sent");
    assert_eq!(id, WAMID);
}

#[tokio::test]
async fn meta_error_on_400_is_permanent_with_code_and_message() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "message": "(#131030) Recipient phone number not in allowed list",
                "type": "OAuthException",
                "code": 131030,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": "Recipient phone number not in allowed list"
                },
                "error_subcode": 2494010,
                "fbtrace_id": "AbCdEf123"
            }
        })),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        TransportError::Permanent {
            code: Some("131030".to_owned()),
            message: "(#131030) Recipient phone number not in allowed list".to_owned(),
        }
    );
}

#[tokio::test]
async fn refused_credentials_are_told_apart_from_refused_messages() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190}
        })),
    )
    .await;
    assert_eq!(
        transport(&server).send(&text("hi")).await,
        Err(TransportError::CredentialsRefused {
            code: Some("190".to_owned()),
            message: "Error validating access token: Session has expired".to_owned(),
        })
    );

    let server = MockServer::start().await;
    answer_any(&server, ResponseTemplate::new(401)).await;
    assert!(matches!(
        transport(&server).send(&text("hi")).await,
        Err(TransportError::CredentialsRefused { code: Some(ref c), .. }) if c == "401"
    ));
}

#[tokio::test]
async fn non_meta_4xx_body_is_permanent_with_status_and_text() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(404).set_body_string("x".repeat(800)),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("refused");
    match err {
        TransportError::Permanent { code, message } => {
            assert_eq!(code.as_deref(), Some("404"));
            assert_eq!(message, "x".repeat(500));
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_429_is_retryable_with_retry_after() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(json!({
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "type": "OAuthException",
                    "code": 130429,
                    "fbtrace_id": "X"
                }
            })),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("throttled");
    match err {
        TransportError::Retryable {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(reason.contains("(#130429) Rate limit hit"), "{reason}");
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("expected Retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn server_error_500_is_retryable() {
    let server = MockServer::start().await;
    answer_any(&server, ResponseTemplate::new(500).set_body_string("oops")).await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("failed");
    match err {
        TransportError::Retryable {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, None);
            assert!(reason.contains("500"), "{reason}");
        }
        other => panic!("expected Retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn service_unavailable_keeps_meta_message_and_ignores_http_date() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(503)
            .insert_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")
            .set_body_json(json!({
                "error": {"message": "Service temporarily unavailable", "code": 2}
            })),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("failed");
    match err {
        TransportError::Retryable {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, None);
            assert!(
                reason.contains("Service temporarily unavailable"),
                "{reason}"
            );
        }
        other => panic!("expected Retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_200_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp"})),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("malformed");
    // A 2xx: Meta took the request, whatever its body says.
    match err {
        TransportError::OutcomeUnknown { reason } => {
            assert!(reason.contains("malformed provider response"), "{reason}");
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
}

#[tokio::test]
async fn non_json_200_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(200).set_body_string("<html>"),
    )
    .await;

    let err = transport(&server)
        .send(&text("hi"))
        .await
        .expect_err("malformed");
    assert!(
        matches!(err, TransportError::OutcomeUnknown { ref reason } if reason.contains("malformed provider response")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_timed_out_answer_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    answer_any(&server, accepted().set_delay(Duration::from_secs(2))).await;

    let transport = transport_with_timeout(&server, Duration::from_millis(200));
    let err = transport.send(&text("hi")).await.expect_err("timed out");
    // The request was written: the provider may have taken it.
    match err {
        TransportError::OutcomeUnknown { reason } => {
            assert!(reason.contains("timed out"), "{reason}");
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // A port nobody listens on: bind one, then free it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);

    let client = build_http_client(&CloudApiConfig::default()).expect("http client");
    let transport = CloudApiTransport::new(
        client,
        &format!("http://{addr}/v21.0"),
        PHONE_NUMBER_ID.to_owned(),
        TOKEN.to_owned(),
    );
    let err = transport.send(&text("hi")).await.expect_err("refused");
    assert!(
        matches!(&err, TransportError::Unreachable { reason } if reason.contains("connection failed")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn mark_read_posts_read_status() {
    let server = MockServer::start().await;
    expect_post(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": WAMID
        }),
        ResponseTemplate::new(200).set_body_json(json!({"success": true})),
    )
    .await;

    transport(&server)
        .mark_read(
            WAMID,
            &maveraa_domain::messaging::WaId::from_trusted_str("6281234567890"),
        )
        .await
        .expect("marked read");
}

#[tokio::test]
async fn mark_read_maps_errors() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100}
        })),
    )
    .await;

    let err = transport(&server)
        .mark_read(
            "wamid.unknown",
            &maveraa_domain::messaging::WaId::from_trusted_str("6281234567890"),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        TransportError::Permanent {
            code: Some("100".to_owned()),
            message: "Invalid parameter".to_owned(),
        }
    );
}
