//! The mapping on the engine's own event and message types.

use std::sync::Arc;
use std::time::Duration;

use whatsapp_rust::buffa;
use whatsapp_rust::types::events::{
    ClientOutdated, ConnectFailure, ConnectFailureReason, Connected, Disconnected, PairingQrCode,
    Receipt, ServerAck, StreamReplaced, TempBanReason, TemporaryBan,
};
use whatsapp_rust::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::wacore::net::DisconnectReason;

use super::*;

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

fn map(event: &Event) -> Option<LinkEvent> {
    map_event(event, at(), || None, |_| None)
}

fn me() -> Option<LinkedAccount> {
    Some(LinkedAccount {
        jid: "628111@s.whatsapp.net".into(),
        push_name: Some("Shop".into()),
    })
}

#[test]
fn qr_codes_expire_after_their_timeout() {
    let e = Event::PairingQrCode(
        PairingQrCode::builder()
            .code("2@abc".into())
            .timeout(Duration::from_secs(20))
            .build(),
    );
    match map(&e) {
        Some(LinkEvent::Qr(c)) => {
            assert_eq!(c.code, "2@abc");
            assert_eq!(c.expires_at, at() + chrono::Duration::seconds(20));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn connected_reports_the_linked_account() {
    let e = Event::Connected(Connected::builder().build());
    match map_event(&e, at(), me, |_| None) {
        Some(LinkEvent::Connected(a)) => assert_eq!(Some(a), me()),
        other => panic!("{other:?}"),
    }
    // Without a number on the device, nothing to record.
    assert!(map(&e).is_none());
}

#[test]
fn disconnects_are_reported_unless_clean() {
    let e = Event::Disconnected(
        Disconnected::builder()
            .reason(DisconnectReason::ReadError("reset".into()))
            .build(),
    );
    assert!(
        matches!(map(&e), Some(LinkEvent::Disconnected { reason }) if reason.contains("reset"))
    );
    let clean = Event::Disconnected(
        Disconnected::builder()
            .reason(DisconnectReason::StreamEnded)
            .build(),
    );
    assert!(map(&clean).is_none());
    let replaced = Event::StreamReplaced(StreamReplaced::builder().build());
    assert!(
        matches!(map(&replaced), Some(LinkEvent::Disconnected { reason }) if reason == REPLACED)
    );
}

#[test]
fn logouts_bans_and_refusals() {
    let e = Event::LoggedOut(
        LoggedOut::builder()
            .on_connect(false)
            .reason(ConnectFailureReason::LoggedOut)
            .build(),
    );
    assert!(
        matches!(map(&e), Some(LinkEvent::LoggedOut { reason: Some(r) }) if r.contains("LoggedOut"))
    );
    let ban = Event::TemporaryBan(
        TemporaryBan::builder()
            .code(TempBanReason::BlockedByUsers)
            .expire(chrono::Duration::hours(1))
            .build(),
    );
    match map(&ban) {
        Some(LinkEvent::Failed { reason }) => {
            assert!(reason.contains("102"), "{reason}");
            assert!(
                reason.contains(&(at() + chrono::Duration::hours(1)).to_rfc3339()),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let refused = Event::ConnectFailure(
        ConnectFailure::builder()
            .reason(ConnectFailureReason::BadUserAgent)
            .build(),
    );
    assert!(matches!(map(&refused), Some(LinkEvent::Failed { .. })));
    let retried = Event::ConnectFailure(
        ConnectFailure::builder()
            .reason(ConnectFailureReason::ServiceUnavailable)
            .build(),
    );
    assert!(map(&retried).is_none(), "the engine reconnects by itself");
    let outdated = Event::ClientOutdated(ClientOutdated::builder().build());
    assert!(matches!(map(&outdated), Some(LinkEvent::Failed { .. })));
}

fn receipt(kind: ReceiptType, ids: &[&str]) -> Event {
    Event::Receipt(
        Receipt::builder()
            .source(MessageSource {
                chat: Jid::pn("628222"),
                sender: Jid::pn("628222"),
                ..Default::default()
            })
            .message_ids(ids.iter().map(|s| (*s).to_owned()).collect())
            .timestamp(at())
            .r#type(kind)
            .offline(false)
            .build(),
    )
}

fn statuses(e: Option<LinkEvent>) -> Vec<StatusUpdate> {
    match e {
        Some(LinkEvent::Provider { events, ack: None }) => events
            .into_iter()
            .map(|e| match e {
                ProviderEvent::Status(s) => s,
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn receipts_become_statuses_with_our_ids_echoed() {
    let ours = MessageId::new();
    let echo = |id: &str| (id == "3EB0OURS").then_some(ours);
    let got = statuses(map_event(
        &receipt(ReceiptType::Delivered, &["3EB0OURS", "OTHER"]),
        at(),
        || None,
        echo,
    ));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].provider_message_id, "3EB0OURS");
    assert_eq!(got[0].status, MessageStatus::Delivered);
    assert_eq!(got[0].echoed_message_id, Some(ours));
    assert_eq!(got[0].timestamp, at());
    assert_eq!(got[1].echoed_message_id, None);
    let read = statuses(map(&receipt(ReceiptType::Read, &["A"])));
    assert_eq!(read[0].status, MessageStatus::Read);
    let played = statuses(map(&receipt(ReceiptType::Played, &["A"])));
    assert_eq!(played[0].status, MessageStatus::Read);
    assert!(map(&receipt(ReceiptType::ReadSelf, &["A"])).is_none());
    assert!(map(&receipt(ReceiptType::Retry, &["A"])).is_none());
}

#[test]
fn server_acks_of_messages_become_sent_or_failed() {
    let ack = |error: Option<&str>, class: &str| {
        Event::ServerAck(
            ServerAck::builder()
                .id("3EB0X".into())
                .class(class.into())
                .maybe_error(error.map(str::to_owned))
                .build(),
        )
    };
    let failed = statuses(map(&ack(Some("479"), "message")));
    assert_eq!(failed[0].status, MessageStatus::Failed);
    assert_eq!(
        failed[0].error.as_ref().and_then(|e| e.code.as_deref()),
        Some("479")
    );
    let sent = statuses(map(&ack(None, "message")));
    assert_eq!(sent[0].status, MessageStatus::Sent);
    assert!(map(&ack(Some("479"), "receipt")).is_none());
}

fn inbound(source: MessageSource, message: wa::Message) -> WaInbound {
    WaInbound::builder()
        .message(Arc::new(message))
        .info(Arc::new(MessageInfo {
            source,
            id: "ABCDEF".into(),
            push_name: "Ana".into(),
            timestamp: at(),
            ..Default::default()
        }))
        .build()
}

fn dm_from(sender: Jid) -> MessageSource {
    MessageSource {
        chat: sender.to_non_ad(),
        sender,
        ..Default::default()
    }
}

fn text(body: &str) -> wa::Message {
    wa::Message {
        conversation: Some(body.into()),
        ..Default::default()
    }
}

#[test]
fn text_from_a_number() {
    let m = inbound(dm_from(Jid::pn_device("628222", 3)), text("hi"));
    assert_eq!(lid_to_resolve(&m), None);
    let got = map_inbound(&m, None).expect("mapped");
    assert_eq!(got.from.as_str(), "628222");
    assert_eq!(got.provider_message_id, "ABCDEF");
    assert_eq!(got.push_name.as_deref(), Some("Ana"));
    assert_eq!(got.timestamp, at());
    assert_eq!(got.content, MessageContent::Text { body: "hi".into() });
}

#[test]
fn media_keeps_kind_caption_and_mime_type() {
    let image = wa::Message {
        image_message: buffa::MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/jpeg".into()),
            caption: Some("look".into()),
            file_length: Some(1234),
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = map_inbound(&inbound(dm_from(Jid::pn("628222")), image), None).expect("ok");
    match got.content {
        MessageContent::Media(m) => {
            assert_eq!(m.kind, MediaKind::Image);
            assert_eq!(m.caption.as_deref(), Some("look"));
            assert_eq!(m.mime_type.as_deref(), Some("image/jpeg"));
        }
        other => panic!("{other:?}"),
    }
    let doc = wa::Message {
        document_message: buffa::MessageField::some(wa::message::DocumentMessage {
            mimetype: Some("application/pdf".into()),
            file_name: Some("invoice.pdf".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match map_inbound(&inbound(dm_from(Jid::pn("628222")), doc), None)
        .expect("ok")
        .content
    {
        MessageContent::Media(m) => {
            assert_eq!(m.kind, MediaKind::Document);
            assert_eq!(m.file_name.as_deref(), Some("invoice.pdf"));
            assert_eq!(m.caption, None);
        }
        other => panic!("{other:?}"),
    }
    let audio = wa::Message {
        audio_message: buffa::MessageField::some(wa::message::AudioMessage {
            mimetype: Some("audio/ogg; codecs=opus".into()),
            ptt: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = map_inbound(&inbound(dm_from(Jid::pn("628222")), audio), None).expect("ok");
    assert_eq!(got.content.type_name(), "audio");
}

#[test]
fn other_kinds_and_protocol_messages() {
    let sticker = wa::Message {
        sticker_message: buffa::MessageField::some(wa::message::StickerMessage::default()),
        ..Default::default()
    };
    let got = map_inbound(&inbound(dm_from(Jid::pn("628222")), sticker), None).expect("ok");
    assert_eq!(
        got.content,
        MessageContent::Other {
            kind: "sticker".into(),
            body: None
        }
    );
    let reaction = wa::Message {
        reaction_message: buffa::MessageField::some(wa::message::ReactionMessage {
            text: Some("👍".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = map_inbound(&inbound(dm_from(Jid::pn("628222")), reaction), None).expect("ok");
    assert_eq!(got.content.type_name(), "reaction");
    assert_eq!(got.content.text(), Some("👍"));
    let revoke = wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage::default()),
        ..Default::default()
    };
    assert_eq!(
        map_inbound(&inbound(dm_from(Jid::pn("628222")), revoke), None),
        Err(Skipped::Protocol)
    );
}

#[test]
fn lid_senders_take_their_number_from_sender_alt_or_the_lookup() {
    let with_alt = MessageSource {
        sender_alt: Some(Jid::pn("628333")),
        ..dm_from(Jid::lid("99887766"))
    };
    let m = inbound(with_alt, text("hi"));
    assert_eq!(lid_to_resolve(&m), None);
    assert_eq!(map_inbound(&m, None).expect("ok").from.as_str(), "628333");
    let bare = inbound(dm_from(Jid::lid("99887766")), text("hi"));
    assert_eq!(lid_to_resolve(&bare), Some(&Jid::lid("99887766")));
    assert_eq!(
        map_inbound(&bare, Some("628444"))
            .expect("ok")
            .from
            .as_str(),
        "628444"
    );
    assert_eq!(map_inbound(&bare, None), Err(Skipped::NoNumber));
}

#[test]
fn groups_and_broadcasts_are_skipped_and_own_messages_name_the_recipient() {
    let group = MessageSource {
        chat: Jid::group("120363000000"),
        sender: Jid::pn("628222"),
        is_group: true,
        ..Default::default()
    };
    assert_eq!(
        map_inbound(&inbound(group, text("hi")), None),
        Err(Skipped::NotOneToOne)
    );
    let status = MessageSource {
        chat: Jid::new("status", Server::Broadcast),
        sender: Jid::pn("628222"),
        ..Default::default()
    };
    assert_eq!(
        map_inbound(&inbound(status, text("hi")), None),
        Err(Skipped::NotOneToOne)
    );
    // Sent from the linked phone: the conversation is the recipient's
    // (the chat), not the sender's (the account itself), by its number
    // even when the chat is a LID.
    let mine = MessageSource {
        is_from_me: true,
        chat: Jid::pn("628333"),
        sender: Jid::pn("628999"),
        ..Default::default()
    };
    let echo = map_inbound(&inbound(mine, text("hi")), None).expect("mapped");
    assert_eq!(echo.from.as_str(), "628333");
    let mine_lid = MessageSource {
        is_from_me: true,
        chat: Jid::lid("99887766"),
        sender: Jid::pn("628999"),
        recipient_alt: Some(Jid::pn("628334")),
        ..Default::default()
    };
    let m = inbound(mine_lid, text("hi"));
    assert_eq!(lid_to_resolve(&m), None, "its number is in the source");
    assert_eq!(
        map_inbound(&m, None).expect("mapped").from.as_str(),
        "628334"
    );
}
