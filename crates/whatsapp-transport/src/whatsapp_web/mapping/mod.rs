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
use whatsapp_rust::wacore::download::MediaType;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Jid, Server};

use super::media::Locator;

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

/// What a received file's message says of it, besides its kind.
struct File<'a> {
    mime: Option<&'a String>,
    caption: Option<&'a String>,
    file_name: Option<&'a String>,
    size: Option<u64>,
    /// Where to download it and its key, when the message carries them.
    locator: Option<Locator>,
}

fn media(kind: MediaKind, f: File<'_>) -> MessageContent {
    MessageContent::Media(MediaInfo {
        kind,
        url: None,
        provider_media_id: None,
        mime_type: f.mime.cloned(),
        caption: f.caption.filter(|c| !c.is_empty()).cloned(),
        file_name: f.file_name.filter(|f| !f.is_empty()).cloned(),
        size: f.size,
        locator: f.locator.and_then(|l| l.encode()),
    })
}

/// The locator of a media message's file (`$m`: any of the engine's media
/// messages, which share these fields).
macro_rules! locator {
    ($t:expr, $m:expr) => {
        Locator::of(
            $t,
            $m.direct_path.as_ref(),
            $m.media_key.as_ref(),
            $m.file_enc_sha256.as_ref(),
            $m.file_sha256.as_ref(),
            $m.file_length,
        )
    };
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
            File {
                mime: i.mimetype.as_ref(),
                caption: i.caption.as_ref(),
                file_name: None,
                size: i.file_length,
                locator: locator!(MediaType::Image, i),
            },
        ));
    }
    if let Some(v) = m
        .video_message
        .as_option()
        .or_else(|| m.ptv_message.as_option())
    {
        return Ok(media(
            MediaKind::Video,
            File {
                mime: v.mimetype.as_ref(),
                caption: v.caption.as_ref(),
                file_name: None,
                size: v.file_length,
                locator: locator!(MediaType::Video, v),
            },
        ));
    }
    if let Some(a) = m.audio_message.as_option() {
        return Ok(media(
            MediaKind::Audio,
            File {
                mime: a.mimetype.as_ref(),
                caption: None,
                file_name: None,
                size: a.file_length,
                locator: locator!(MediaType::Audio, a),
            },
        ));
    }
    if let Some(d) = m.document_message.as_option() {
        return Ok(media(
            MediaKind::Document,
            File {
                mime: d.mimetype.as_ref(),
                caption: d.caption.as_ref(),
                file_name: d.file_name.as_ref(),
                size: d.file_length,
                locator: locator!(MediaType::Document, d),
            },
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
mod tests;
