//! Contract tests of the Cloud API webhook protocol against Meta's
//! handshake and payloads.

use chrono::DateTime;
use hmac::{Hmac, Mac};
use maveraa_domain::messaging::{
    CloudApiSettings, DeliveryError, InboundMessage, MediaInfo, MessageContent, MessageStatus,
    ProviderEvent, ProviderSettings, SecretString, Session, SessionName, SessionStatus,
    StatusUpdate, WaId,
};
use maveraa_domain::ports::{AccountEvents, WebhookProtocol, WebhookRefusal, WebhookRequest};
use maveraa_domain::transport::MediaKind;
use maveraa_domain::{SessionId, WorkspaceId};
use maveraa_whatsapp_transport::CloudApiWebhooks;
use maveraa_whatsapp_transport::webhook::{self, verify_signature};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const FROM: &str = "6281234567890";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn decoder() -> CloudApiWebhooks {
    CloudApiWebhooks::new()
}

/// A delivery of one `messages` change with `value`'s extra keys.
fn delivery(value: Value) -> Value {
    let mut full = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"}
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), value.as_object()) {
        full.extend(extra.clone());
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": full}]}]
    })
}

fn inbound(message: Value) -> Value {
    delivery(json!({
        "contacts": [{"profile": {"name": "John"}, "wa_id": FROM}],
        "messages": [message]
    }))
}

fn decode(payload: &Value) -> Vec<ProviderEvent> {
    webhook::decode(payload.to_string().as_bytes()).expect("decodes")
}

fn only_message(payload: &Value) -> InboundMessage {
    let mut events = decode(payload);
    assert_eq!(events.len(), 1, "{events:?}");
    match events.remove(0) {
        ProviderEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn statuses(payload: &Value) -> Vec<StatusUpdate> {
    decode(payload)
        .into_iter()
        .map(|e| match e {
            ProviderEvent::Status(s) => s,
            other => panic!("expected a status, got {other:?}"),
        })
        .collect()
}

// --- signatures ---

#[test]
fn valid_signature_verifies() {
    let body = inbound(json!({"from": FROM, "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}})).to_string();
    let sig = sign(SECRET, body.as_bytes());
    assert!(verify_signature(SECRET, body.as_bytes(), Some(&sig)));
    // Upper-case hex is the same digest.
    let upper = format!("sha256={}", sig["sha256=".len()..].to_uppercase());
    assert!(verify_signature(SECRET, body.as_bytes(), Some(&upper)));
}

#[test]
fn signature_under_another_secret_is_refused() {
    let body = br#"{"entry":[]}"#;
    let sig = sign("another-secret", body);
    assert!(!verify_signature(SECRET, body, Some(&sig)));
}

#[test]
fn missing_signature_is_refused() {
    assert!(!verify_signature(SECRET, br#"{"entry":[]}"#, None));
}

#[test]
fn malformed_signature_headers_are_refused() {
    let body = br#"{"entry":[]}"#;
    let good = sign(SECRET, body);
    let hex_part = &good["sha256=".len()..];
    for header in [
        String::new(),
        "sha256=".to_owned(),
        hex_part.to_owned(),                     // no prefix
        format!("sha1={hex_part}"),              // wrong algorithm
        format!("sha256={}", &hex_part[..62]),   // truncated
        format!("sha256={hex_part}00"),          // too long
        format!("sha256={}zz", &hex_part[..62]), // not hex
        format!("sha256={}", "0".repeat(64)),    // right shape, wrong digest
    ] {
        assert!(
            !verify_signature(SECRET, body, Some(&header)),
            "{header:?} verified"
        );
    }
}

#[test]
fn body_changed_by_one_byte_is_refused() {
    let body = br#"{"entry":[{"changes":[]}]}"#.to_vec();
    let sig = sign(SECRET, &body);
    assert!(verify_signature(SECRET, &body, Some(&sig)));
    let mut tampered = body.clone();
    tampered[3] ^= 0x01;
    assert!(!verify_signature(SECRET, &tampered, Some(&sig)));
    let mut longer = body;
    longer.push(b' ');
    assert!(!verify_signature(SECRET, &longer, Some(&sig)));
}

// --- messages ---

#[test]
fn text_message_with_push_name() {
    let m = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.TEXT", "timestamp": "1700000000",
        "type": "text", "text": {"body": "hi"}
    })));
    assert_eq!(
        m,
        InboundMessage {
            provider_message_id: "wamid.TEXT".to_owned(),
            from: WaId::parse("from", FROM).expect("valid"),
            push_name: Some("John".to_owned()),
            content: MessageContent::Text {
                body: "hi".to_owned()
            },
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
        }
    );
}

#[test]
fn push_name_comes_from_the_matching_contact() {
    let payload = delivery(json!({
        "contacts": [
            {"profile": {"name": "Other"}, "wa_id": "6289999999999"},
            {"profile": {"name": "Sender"}, "wa_id": FROM}
        ],
        "messages": [
            {"from": FROM, "id": "wamid.1", "timestamp": "1700000000", "type": "text", "text": {"body": "a"}},
            {"from": "6280000000000", "id": "wamid.2", "timestamp": "1700000000", "type": "text", "text": {"body": "b"}}
        ]
    }));
    let names: Vec<Option<String>> = decode(&payload)
        .into_iter()
        .map(|e| match e {
            ProviderEvent::Message(m) => m.push_name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, vec![Some("Sender".to_owned()), None]);
}

#[test]
fn message_without_contacts_has_no_push_name() {
    let payload = delivery(json!({
        "messages": [{"from": FROM, "id": "wamid.1", "timestamp": "1700000000", "type": "text", "text": {"body": "a"}}]
    }));
    assert_eq!(only_message(&payload).push_name, None);
}

#[test]
fn image_with_caption_and_mime_type() {
    let m = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.IMG", "timestamp": "1700000000", "type": "image",
        "image": {"caption": "Katalog", "mime_type": "image/jpeg", "sha256": "abc=", "id": "1479537139650973"}
    })));
    assert_eq!(
        m.content,
        MessageContent::Media(MediaInfo {
            kind: MediaKind::Image,
            url: None,
            provider_media_id: Some("1479537139650973".to_owned()),
            mime_type: Some("image/jpeg".to_owned()),
            caption: Some("Katalog".to_owned()),
            file_name: None,
            size: None,
            locator: None,
        })
    );
}

#[test]
fn document_with_filename() {
    let m = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.DOC", "timestamp": "1700000000", "type": "document",
        "document": {"caption": "Invoice", "filename": "invoice-42.pdf", "mime_type": "application/pdf", "sha256": "x", "id": "media-doc"}
    })));
    assert_eq!(
        m.content,
        MessageContent::Media(MediaInfo {
            kind: MediaKind::Document,
            url: None,
            provider_media_id: Some("media-doc".to_owned()),
            mime_type: Some("application/pdf".to_owned()),
            caption: Some("Invoice".to_owned()),
            file_name: Some("invoice-42.pdf".to_owned()),
            size: None,
            locator: None,
        })
    );
}

#[test]
fn audio_and_video() {
    let audio = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.AUD", "timestamp": "1700000000", "type": "audio",
        "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "x", "id": "media-aud", "voice": true}
    })));
    let video = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.VID", "timestamp": "1700000000", "type": "video",
        "video": {"mime_type": "video/mp4", "id": "media-vid", "caption": "clip"}
    })));
    match (audio.content, video.content) {
        (MessageContent::Media(a), MessageContent::Media(v)) => {
            assert_eq!(a.kind, MediaKind::Audio);
            assert_eq!(a.provider_media_id.as_deref(), Some("media-aud"));
            assert_eq!(a.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
            assert_eq!(v.kind, MediaKind::Video);
            assert_eq!(v.caption.as_deref(), Some("clip"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn location_is_other_with_its_name_and_address() {
    let m = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.LOC", "timestamp": "1700000000", "type": "location",
        "location": {"latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta Pusat"}
    })));
    assert_eq!(
        m.content,
        MessageContent::Other {
            kind: "location".to_owned(),
            body: Some("Monas, Jakarta Pusat".to_owned())
        }
    );
    let bare = only_message(&inbound(json!({
        "from": FROM, "id": "wamid.LOC2", "timestamp": "1700000000", "type": "location",
        "location": {"latitude": -6.2, "longitude": 106.8}
    })));
    assert_eq!(
        bare.content,
        MessageContent::Other {
            kind: "location".to_owned(),
            body: Some("-6.2,106.8".to_owned())
        }
    );
}

#[test]
fn other_kinds_keep_their_best_text() {
    let cases = [
        (
            json!({"type": "sticker", "sticker": {"mime_type": "image/webp", "id": "st-1", "animated": false}}),
            "sticker",
            None,
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}),
            "reaction",
            Some("👍"),
        ),
        (
            json!({"type": "button", "button": {"text": "Yes", "payload": "YES_PAYLOAD"}}),
            "button",
            Some("Yes"),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row 1", "description": "d"}}}),
            "interactive",
            Some("Row 1"),
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"}, "phones": []}]}),
            "contacts",
            Some("Jane Doe"),
        ),
        (
            json!({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]}),
            "unsupported",
            None,
        ),
        (json!({}), "unknown", None),
    ];
    for (mut message, kind, body) in cases {
        if let Some(obj) = message.as_object_mut() {
            obj.insert("from".into(), FROM.into());
            obj.insert("id".into(), "wamid.O".into());
            obj.insert("timestamp".into(), "1700000000".into());
        }
        let m = only_message(&inbound(message));
        assert_eq!(
            m.content,
            MessageContent::Other {
                kind: kind.to_owned(),
                body: body.map(str::to_owned)
            },
            "{kind}"
        );
    }
}

#[test]
fn messages_without_id_or_valid_sender_are_skipped() {
    let payload = delivery(json!({
        "messages": [
            {"from": FROM, "timestamp": "1700000000", "type": "text", "text": {"body": "no id"}},
            {"from": "not-a-number", "id": "wamid.BAD", "timestamp": "1700000000", "type": "text", "text": {"body": "x"}},
            {"from": FROM, "id": "wamid.OK", "timestamp": "1700000000", "type": "text", "text": {"body": "ok"}}
        ]
    }));
    assert_eq!(only_message(&payload).provider_message_id, "wamid.OK");
}

// --- statuses ---

#[test]
fn statuses_sent_delivered_read_and_failed_with_error() {
    let payload = delivery(json!({
        "statuses": [
            {"id": "wamid.S", "status": "sent", "timestamp": "1700000001", "recipient_id": FROM},
            {"id": "wamid.S", "status": "delivered", "timestamp": "1700000002", "recipient_id": FROM},
            {"id": "wamid.S", "status": "read", "timestamp": "1700000003", "recipient_id": FROM},
            {"id": "wamid.F", "status": "failed", "timestamp": "1700000004", "recipient_id": FROM,
             "errors": [{"code": 131026, "title": "Message undeliverable", "message": "Message Undeliverable.",
                         "error_data": {"details": "Recipient is not a WhatsApp user"}}]},
            {"id": "wamid.S", "status": "deleted", "timestamp": "1700000005", "recipient_id": FROM}
        ]
    }));
    let got = statuses(&payload);
    let at = |s| DateTime::from_timestamp(s, 0).expect("valid");
    assert_eq!(
        got,
        vec![
            StatusUpdate {
                provider_message_id: "wamid.S".to_owned(),
                status: MessageStatus::Sent,
                timestamp: at(1_700_000_001),
                error: None,
                echoed_message_id: None
            },
            StatusUpdate {
                provider_message_id: "wamid.S".to_owned(),
                status: MessageStatus::Delivered,
                timestamp: at(1_700_000_002),
                error: None,
                echoed_message_id: None
            },
            StatusUpdate {
                provider_message_id: "wamid.S".to_owned(),
                status: MessageStatus::Read,
                timestamp: at(1_700_000_003),
                error: None,
                echoed_message_id: None
            },
            StatusUpdate {
                provider_message_id: "wamid.F".to_owned(),
                status: MessageStatus::Failed,
                timestamp: at(1_700_000_004),
                error: Some(DeliveryError {
                    code: Some("131026".to_owned()),
                    message: "Message Undeliverable.".to_owned()
                }),
                echoed_message_id: None
            },
        ]
    );
}

#[test]
fn our_message_id_echoed_in_biz_opaque_callback_data_is_kept() {
    let ours = maveraa_domain::MessageId::new();
    let payload = delivery(json!({
        "statuses": [
            {"id": "wamid.A", "status": "sent", "timestamp": "1700000001", "recipient_id": FROM,
             "biz_opaque_callback_data": ours.to_string()},
            {"id": "wamid.B", "status": "sent", "timestamp": "1700000001", "recipient_id": FROM,
             "biz_opaque_callback_data": "set by another tool"},
            {"id": "wamid.C", "status": "sent", "timestamp": "1700000001", "recipient_id": FROM}
        ]
    }));
    let echoed: Vec<_> = statuses(&payload)
        .into_iter()
        .map(|s| s.echoed_message_id)
        .collect();
    assert_eq!(echoed, vec![Some(ours), None, None]);
}

#[test]
fn failed_error_message_falls_back_to_title_then_details() {
    let payload = delivery(json!({
        "statuses": [
            {"id": "wamid.1", "status": "failed", "timestamp": "1700000000",
             "errors": [{"code": 130472, "title": "User's number is part of an experiment"}]},
            {"id": "wamid.2", "status": "failed", "timestamp": "1700000000",
             "errors": [{"code": "131047", "error_data": {"details": "Re-engagement message"}}]}
        ]
    }));
    let errors: Vec<Option<DeliveryError>> =
        statuses(&payload).into_iter().map(|s| s.error).collect();
    assert_eq!(
        errors,
        vec![
            Some(DeliveryError {
                code: Some("130472".to_owned()),
                message: "User's number is part of an experiment".to_owned()
            }),
            Some(DeliveryError {
                code: Some("131047".to_owned()),
                message: "Re-engagement message".to_owned()
            }),
        ]
    );
}

// --- whole deliveries ---

#[test]
fn multi_entry_payload_keeps_every_event_in_order() {
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "contacts": [{"profile": {"name": "John"}, "wa_id": FROM}],
                    "messages": [{"from": FROM, "id": "wamid.M1", "timestamp": "1700000000", "type": "text", "text": {"body": "one"}}]
                }},
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
            ]},
            {"id": "2", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "statuses": [{"id": "wamid.OUT", "status": "delivered", "timestamp": "1700000002", "recipient_id": FROM}]
                }},
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "contacts": [{"profile": {"name": "Ann"}, "wa_id": "6289876543210"}],
                    "messages": [{"from": "6289876543210", "id": "wamid.M2", "timestamp": "1700000003", "type": "text", "text": {"body": "two"}}]
                }}
            ]},
            {"id": "3"}
        ]
    });
    let ids: Vec<(String, Option<String>)> = decode(&payload)
        .into_iter()
        .map(|e| match e {
            ProviderEvent::Message(m) => (m.provider_message_id, m.push_name),
            ProviderEvent::Status(s) => (s.provider_message_id, None),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("wamid.M1".to_owned(), Some("John".to_owned())),
            ("wamid.OUT".to_owned(), None),
            ("wamid.M2".to_owned(), Some("Ann".to_owned())),
        ]
    );
}

#[test]
fn empty_and_unrelated_deliveries_have_no_events() {
    assert!(decode(&json!({"object": "whatsapp_business_account", "entry": []})).is_empty());
    assert!(
        decode(&json!({"entry": [{"changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]}))
            .is_empty()
    );
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        &b""[..],
        b"not json",
        b"{\"entry\": [",
        b"[]",
        b"{}",
        b"{\"object\":\"whatsapp_business_account\"}",
        b"{\"entry\": {}}",
        b"{\"entry\": null}",
    ] {
        let result = webhook::decode(body);
        assert!(
            result.is_err(),
            "{:?} decoded to {result:?}",
            String::from_utf8_lossy(body)
        );
    }
}

// --- the protocol: handshake, authentication, accounts ---

const NUMBER: &str = "106540352242922";

fn cloud_session(phone_number_id: &str, app_secret: &str) -> Session {
    Session {
        id: SessionId::new(),
        workspace_id: WorkspaceId::new(),
        name: SessionName::from_trusted_str("cloud"),
        provider: ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: phone_number_id.into(),
            access_token: SecretString::new("EAA-token"),
            app_secret: SecretString::new(app_secret),
            verify_token: SecretString::new("verify-me"),
        }),
        status: SessionStatus::Connected,
        last_error: None,
        me: None,
        created_at: chrono::Utc::now(),
    }
}

fn handshake(session: &Session, query: &[(&str, &str)]) -> Result<String, WebhookRefusal> {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    decoder().handshake(
        session,
        &WebhookRequest {
            query: &query,
            headers: &[],
            body: &[],
        },
    )
}

#[test]
fn handshake_answers_the_challenge_only_to_the_verify_token() {
    let s = cloud_session(NUMBER, SECRET);
    let q = |mode, token| {
        vec![
            ("hub.mode", mode),
            ("hub.verify_token", token),
            ("hub.challenge", "ch-1158201444"),
        ]
    };
    assert_eq!(
        handshake(&s, &q("subscribe", "verify-me")),
        Ok("ch-1158201444".to_owned())
    );
    for query in [
        q("subscribe", "verify-mE"),
        q("subscribe", ""),
        q("unsubscribe", "verify-me"),
        vec![("hub.mode", "subscribe"), ("hub.verify_token", "verify-me")],
        vec![("hub.mode", "subscribe"), ("hub.challenge", "c")],
    ] {
        assert_eq!(
            handshake(&s, &query),
            Err(WebhookRefusal::VerificationRefused),
            "{query:?}"
        );
    }
}

fn open(
    session: &Session,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Vec<AccountEvents>, WebhookRefusal> {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| vec![("x-hub-signature-256", s)])
        .unwrap_or_default();
    decoder().open(
        session,
        &WebhookRequest {
            query: &[],
            headers: &headers,
            body,
        },
    )
}

#[test]
fn a_delivery_is_opened_only_with_the_sessions_signature() {
    let s = cloud_session(NUMBER, SECRET);
    let body = inbound(json!({"from": FROM, "id": "wamid.1", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}})).to_string();
    let groups = open(&s, Some(&sign(SECRET, body.as_bytes())), body.as_bytes()).expect("opens");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].account.as_deref(), Some(NUMBER));
    assert_eq!(groups[0].events.len(), 1);
    assert_eq!(
        open(
            &s,
            Some(&sign("another-secret", body.as_bytes())),
            body.as_bytes()
        ),
        Err(WebhookRefusal::BadSignature)
    );
    assert_eq!(
        open(&s, None, body.as_bytes()),
        Err(WebhookRefusal::BadSignature)
    );
    // Checked before decoding: an unsigned body is never parsed.
    assert_eq!(
        open(&s, None, b"garbage"),
        Err(WebhookRefusal::BadSignature)
    );
    assert!(matches!(
        open(&s, Some(&sign(SECRET, b"garbage")), b"garbage"),
        Err(WebhookRefusal::Malformed(_))
    ));
}

#[test]
fn precheck_refuses_headers_that_cannot_carry_a_signature() {
    let s = cloud_session(NUMBER, SECRET);
    let good = sign(SECRET, b"any body");
    let pre = |headers: &[(&str, &str)]| decoder().precheck(&s, headers);
    // The headers alone cannot tell a right signature from a wrong one:
    // any well-formed one passes, and `open` decides.
    assert_eq!(pre(&[("x-hub-signature-256", &good)]), Ok(()));
    assert_eq!(pre(&[("X-Hub-Signature-256", &good)]), Ok(()));
    for headers in [
        vec![],
        vec![("content-type", "application/json")],
        vec![("x-hub-signature-256", "")],
        vec![("x-hub-signature-256", "sha1=abc")],
        vec![("x-hub-signature-256", "sha256=")],
        vec![("x-hub-signature-256", "sha256=zz")],
        vec![("x-hub-signature", good.as_str())],
    ] {
        assert_eq!(
            pre(&headers),
            Err(WebhookRefusal::BadSignature),
            "{headers:?}"
        );
    }
    // A session without an app secret can verify nothing.
    let unsigned = cloud_session(NUMBER, "");
    assert_eq!(
        decoder().precheck(&unsigned, &[("x-hub-signature-256", &good)]),
        Err(WebhookRefusal::BadSignature)
    );
}

#[test]
fn events_are_grouped_by_the_account_they_concern() {
    let change = |number: Option<&str>, id: &str| {
        let mut value = json!({
            "messaging_product": "whatsapp",
            "messages": [{"from": FROM, "id": id, "timestamp": "1700000000", "type": "text", "text": {"body": "x"}}]
        });
        if let Some(number) = number {
            value["metadata"] = json!({"phone_number_id": number});
        }
        json!({"field": "messages", "value": value})
    };
    let body = json!({"entry": [
        {"changes": [change(Some("111"), "wamid.A1"), change(Some("222"), "wamid.B1")]},
        {"changes": [change(None, "wamid.N1"), change(Some("111"), "wamid.A2")]}
    ]})
    .to_string();
    let groups: Vec<(Option<String>, Vec<String>)> = webhook::decode_by_account(body.as_bytes())
        .expect("decodes")
        .into_iter()
        .map(|g| {
            let ids = g
                .events
                .into_iter()
                .map(|e| match e {
                    ProviderEvent::Message(m) => m.provider_message_id,
                    other => panic!("{other:?}"),
                })
                .collect();
            (g.account, ids)
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (
                Some("111".to_owned()),
                vec!["wamid.A1".to_owned(), "wamid.A2".to_owned()]
            ),
            (Some("222".to_owned()), vec!["wamid.B1".to_owned()]),
            (None, vec!["wamid.N1".to_owned()]),
        ]
    );
}

#[test]
fn one_app_secret_vouches_for_the_apps_other_numbers_only() {
    let addressed = cloud_session("111", SECRET);
    let same_app = cloud_session("222", SECRET);
    let other_app = cloud_session("333", "another-secret");
    let mut simulator = cloud_session("444", SECRET);
    simulator.provider = ProviderSettings::Simulator;
    assert!(decoder().vouches_for(&addressed, &same_app));
    assert!(!decoder().vouches_for(&addressed, &other_app));
    assert!(!decoder().vouches_for(&addressed, &simulator));
}
