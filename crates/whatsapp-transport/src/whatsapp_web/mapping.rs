//! From the engine's events and messages to the domain's: pure functions,
//! so each rule is tested with the engine's own types.

use chrono::{DateTime, Utc};
use maveraa_domain::MessageId;
use maveraa_domain::messaging::{
    DeliveryError, InboundMessage, LinkCode, LinkEvent, LinkedAccount, MediaInfo, MessageContent,
    MessageStatus, ProviderEvent, StatusUpdate, WaId,
};
use maveraa_domain::transport::MediaKind;
use whatsapp_rust::types::events::{Event, InboundMessage as WaInbound, LoggedOut};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Jid, Server};

/// The reason reported when another connection of the same device took
/// over.
pub(crate) const REPLACED: &str = "replaced by another connection of this device";

/// What a link reports for `event`, if anything. `me` gives the linked
/// account (read from the device only when connected); `echoed` gives our
/// message id of a WhatsApp id we derived from one.
pub(crate) fn map_event(
    event: &Event,
    now: DateTime<Utc>,
    me: impl FnOnce() -> Option<LinkedAccount>,
    echoed: impl Fn(&str) -> Option<MessageId>,
) -> Option<LinkEvent> {
    match event {
        Event::PairingQrCode(qr) => Some(LinkEvent::Qr(LinkCode {
            code: qr.code.clone(),
            expires_at: now + chrono::Duration::from_std(qr.timeout).unwrap_or_default(),
        })),
        Event::Connected(_) => {
            let me = me();
            if me.is_none() {
                tracing::warn!("whatsapp-web: connected, but the device has no phone number yet");
            }
            me.map(LinkEvent::Connected)
        }
        // A clean shutdown is the server recycling the stream (or ours):
        // the engine reconnects at once, nothing worth recording.
        Event::Disconnected(d) if d.reason.is_clean_shutdown() => None,
        Event::Disconnected(d) => Some(LinkEvent::Disconnected {
            reason: d.reason.to_string(),
        }),
        Event::StreamReplaced(_) => Some(LinkEvent::Disconnected {
            reason: REPLACED.to_owned(),
        }),
        Event::LoggedOut(l) => Some(LinkEvent::LoggedOut {
            reason: Some(logged_out_reason(l)),
        }),
        Event::TemporaryBan(ban) => {
            let until = chrono::Duration::from_std(ban.expire.to_std().unwrap_or_default())
                .ok()
                .map(|d| now + d);
            let until = until.map_or_else(String::new, |t| format!(" until {}", t.to_rfc3339()));
            Some(LinkEvent::Failed {
                reason: format!("temporarily banned by WhatsApp (code {}){until}", ban.code),
            })
        }
        Event::ConnectFailure(f) if !f.reason.should_reconnect() => Some(LinkEvent::Failed {
            reason: match &f.message {
                Some(m) if !m.is_empty() => {
                    format!("WhatsApp refused the connection ({:?}): {m}", f.reason)
                }
                _ => format!("WhatsApp refused the connection ({:?})", f.reason),
            },
        }),
        Event::ClientOutdated(_) => Some(LinkEvent::Failed {
            reason: "WhatsApp refused this client's version as outdated".to_owned(),
        }),
        Event::Receipt(r) => {
            let status = match r.r#type {
                ReceiptType::Delivered => MessageStatus::Delivered,
                // The domain has no "played": a played voice note was heard.
                ReceiptType::Read | ReceiptType::Played => MessageStatus::Read,
                // Others are about messages we received (read-self,
                // played-self), retries, or our own devices (sender).
                _ => return None,
            };
            if r.source.is_group || r.message_ids.is_empty() {
                return None;
            }
            let events = r
                .message_ids
                .iter()
                .map(|id| {
                    ProviderEvent::Status(StatusUpdate {
                        provider_message_id: id.clone(),
                        status,
                        timestamp: r.timestamp,
                        error: None,
                        echoed_message_id: echoed(id),
                    })
                })
                .collect();
            Some(LinkEvent::Provider { events, ack: None })
        }
        Event::ServerAck(a) if a.class.as_deref() == Some("message") => {
            let (status, error) = match &a.error {
                Some(code) => (
                    MessageStatus::Failed,
                    Some(DeliveryError {
                        code: Some(code.clone()),
                        message: format!("WhatsApp refused the message (error {code})"),
                    }),
                ),
                None => (MessageStatus::Sent, None),
            };
            Some(LinkEvent::Provider {
                events: vec![ProviderEvent::Status(StatusUpdate {
                    provider_message_id: a.id.clone(),
                    status,
                    timestamp: a.timestamp.unwrap_or(now),
                    error,
                    echoed_message_id: echoed(&a.id),
                })],
                ack: None,
            })
        }
        // Messages reach the inbox through the durability hook, before
        // WhatsApp is acknowledged; batches that bypass it (newsletters,
        // recovered messages) are not one-to-one chats.
        _ => None,
    }
}

fn logged_out_reason(l: &LoggedOut) -> String {
    let mut reason = format!("logged out by WhatsApp ({:?})", l.reason);
    if let Some(text) = l
        .logout_message
        .as_ref()
        .and_then(|m| m.subtext.as_deref().or(m.header.as_deref()))
        .filter(|t| !t.is_empty())
    {
        reason.push_str(": ");
        reason.push_str(text);
    }
    reason
}

/// Why an inbound message is not handed to the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// A group, broadcast, status or newsletter chat: this version keeps
    /// one-to-one conversations.
    NotOneToOne,
    /// From a LID whose phone number is unknown.
    NoNumber,
    /// A sender that is not a valid number.
    BadNumber,
    /// A protocol message (a revoke, an edit, a key share...), not content.
    Protocol,
}

impl Skipped {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotOneToOne => "not a one-to-one chat",
            Self::NoNumber => "sender's phone number unknown",
            Self::BadNumber => "sender is not a phone number",
            Self::Protocol => "protocol message",
        }
    }
}

/// The contact of `m`'s conversation and its alternate JID: the sender,
/// or for a message sent from the linked phone itself, the chat (the
/// recipient).
fn contact(m: &WaInbound) -> (&Jid, Option<&Jid>) {
    let s = &m.info.source;
    if s.is_from_me {
        (&s.chat, s.recipient_alt.as_ref())
    } else {
        (&s.sender, s.sender_alt.as_ref())
    }
}

/// The LID contact of `m` whose phone number must be looked up, when its
/// source does not carry one.
pub(crate) fn lid_to_resolve(m: &WaInbound) -> Option<&Jid> {
    let (who, alt) = contact(m);
    (who.is_lid() && !alt.is_some_and(Jid::is_pn)).then_some(who)
}

/// The domain's message for `m`, its `from` the conversation's contact (for
/// a message sent from the linked phone itself, [`ProviderEvent::Echo`]'s
/// shape, the recipient). `looked_up` is the contact's phone number
/// (digits) found for its LID, when [`lid_to_resolve`] asked for one.
///
/// [`ProviderEvent::Echo`]: maveraa_domain::messaging::ProviderEvent::Echo
pub(crate) fn map_inbound(
    m: &WaInbound,
    looked_up: Option<&str>,
) -> Result<InboundMessage, Skipped> {
    let info = &m.info;
    let s = &info.source;
    if s.is_group || !matches!(s.chat.server, Server::Pn | Server::Lid) {
        return Err(Skipped::NotOneToOne);
    }
    let (who, alt) = contact(m);
    let number = if who.is_pn() {
        who.user_base().to_owned()
    } else if who.is_lid() {
        match (alt.filter(|j| j.is_pn()), looked_up) {
            (Some(alt), _) => alt.user_base().to_owned(),
            (None, Some(pn)) => pn.to_owned(),
            (None, None) => return Err(Skipped::NoNumber),
        }
    } else {
        return Err(Skipped::NotOneToOne);
    };
    let from = WaId::parse("from", &number).map_err(|_| Skipped::BadNumber)?;
    let content = content(m.message.get_base_message())?;
    Ok(InboundMessage {
        provider_message_id: info.id.clone(),
        from,
        push_name: Some(info.push_name.clone()).filter(|n| !n.is_empty()),
        content,
        timestamp: info.timestamp,
    })
}

fn media(
    kind: MediaKind,
    mime: Option<&String>,
    caption: Option<&String>,
    file_name: Option<&String>,
) -> MessageContent {
    MessageContent::Media(MediaInfo {
        kind,
        url: None,
        // The engine's media needs its keys and path to be fetched, which
        // the inbox cannot hold yet.
        provider_media_id: None,
        mime_type: mime.cloned(),
        caption: caption.filter(|c| !c.is_empty()).cloned(),
        file_name: file_name.filter(|f| !f.is_empty()).cloned(),
    })
}

fn other(kind: &str, body: Option<&String>) -> MessageContent {
    MessageContent::Other {
        kind: kind.to_owned(),
        body: body.filter(|b| !b.is_empty()).cloned(),
    }
}

fn content(m: &wa::Message) -> Result<MessageContent, Skipped> {
    if let Some(text) = m.text_content() {
        return Ok(MessageContent::Text {
            body: text.to_owned(),
        });
    }
    if let Some(i) = m.image_message.as_option() {
        return Ok(media(
            MediaKind::Image,
            i.mimetype.as_ref(),
            i.caption.as_ref(),
            None,
        ));
    }
    if let Some(v) = m
        .video_message
        .as_option()
        .or_else(|| m.ptv_message.as_option())
    {
        return Ok(media(
            MediaKind::Video,
            v.mimetype.as_ref(),
            v.caption.as_ref(),
            None,
        ));
    }
    if let Some(a) = m.audio_message.as_option() {
        return Ok(media(MediaKind::Audio, a.mimetype.as_ref(), None, None));
    }
    if let Some(d) = m.document_message.as_option() {
        return Ok(media(
            MediaKind::Document,
            d.mimetype.as_ref(),
            d.caption.as_ref(),
            d.file_name.as_ref(),
        ));
    }
    if m.protocol_message.is_set() {
        return Err(Skipped::Protocol);
    }
    // The domain's media kinds have no sticker: kept as another kind.
    Ok(if m.sticker_message.is_set() {
        other("sticker", None)
    } else if let Some(r) = m.reaction_message.as_option() {
        other("reaction", r.text.as_ref())
    } else if let Some(l) = m.location_message.as_option() {
        other("location", l.name.as_ref())
    } else if m.live_location_message.is_set() {
        other("live_location", None)
    } else if let Some(c) = m.contact_message.as_option() {
        other("contact", c.display_name.as_ref())
    } else if m.contacts_array_message.is_set() {
        other("contacts", None)
    } else if m.poll_creation_message.is_set()
        || m.poll_creation_message_v2.is_set()
        || m.poll_creation_message_v3.is_set()
    {
        other("poll", None)
    } else {
        other("unknown", None)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use whatsapp_rust::buffa;
    use whatsapp_rust::types::events::{
        ClientOutdated, ConnectFailure, ConnectFailureReason, Connected, Disconnected,
        PairingQrCode, Receipt, ServerAck, StreamReplaced, TempBanReason, TemporaryBan,
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
}
