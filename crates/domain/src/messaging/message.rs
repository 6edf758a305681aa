use std::fmt;

use compact_str::CompactString;

use chrono::{DateTime, Utc};

use crate::ids::{MessageId, SessionId, WorkspaceId};
use crate::messaging::{Caption, FileName, SessionName, SessionStatus};
use crate::paging::{ConversationKey, PageStart};
use crate::transport::{MediaKind, OutboundContent};
use crate::values::{JID_SUFFIX, PhoneNumber, ValidationError};

/// A WhatsApp user id: the digits of a number, as providers report them.
/// Looser than [`PhoneNumber`] on purpose: an inbound message from a number
/// our metadata does not know yet must still be stored, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaId(CompactString);

impl WaId {
    /// Parses digits, or a user's JID (`6281234567890@s.whatsapp.net`, or
    /// the older `@c.us` that WhatsApp Web gateways use); a leading `+` is
    /// allowed. Other JIDs (groups' `@g.us`, broadcasts) are not a user's.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` unless 5 to 20 digits remain.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        let s = match s.split_once('@') {
            Some((user, server))
                if server.eq_ignore_ascii_case(&JID_SUFFIX[1..])
                    || server.eq_ignore_ascii_case("c.us") =>
            {
                user
            }
            Some(_) => "",
            None => s,
        };
        let s = s.strip_prefix('+').unwrap_or(s);
        if (5..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.into()))
        } else {
            Err(ValidationError::new(
                field,
                "must be a WhatsApp number: its digits with the country code, or <digits>@s.whatsapp.net",
            ))
        }
    }

    /// A sender that can be answered: a valid phone number (as
    /// [`PhoneNumber::parse`] takes it, normalised) given as its digits or
    /// as a user's JID (as [`WaId::parse`] reads one).
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` for a JID that is not a user's, or a
    /// number that is not valid.
    pub fn parse_number(field: &str, input: &str) -> Result<Self, ValidationError> {
        let input = input.trim();
        let jid_user;
        let number = if input.contains('@') {
            jid_user = Self::parse(field, input)?;
            jid_user.as_str()
        } else {
            input
        };
        Ok(Self::from_trusted_str(
            PhoneNumber::parse(field, number)?.as_str(),
        ))
    }

    /// Wraps digits read back from storage. Does not validate.
    pub fn from_trusted(digits: String) -> Self {
        Self(digits.into())
    }

    /// As `from_trusted`, from borrowed text (held inline: no allocation).
    pub fn from_trusted_str(digits: &str) -> Self {
        Self(digits.into())
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<digits>@s.whatsapp.net`, the reference API's `remoteJid`.
    pub fn to_jid(&self) -> String {
        format!("{}{JID_SUFFIX}", self.0)
    }
}

impl From<&PhoneNumber> for WaId {
    fn from(p: &PhoneNumber) -> Self {
        Self(p.as_str().into())
    }
}

impl fmt::Display for WaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the contact to us.
    Inbound,
    /// From us to the contact.
    Outbound,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Self::Inbound),
            "outbound" => Some(Self::Outbound),
            _ => None,
        }
    }

    /// The status a message of this direction starts its history with, at
    /// its creation: `received` or `queued`.
    pub fn first_status(self) -> MessageStatus {
        match self {
            Self::Inbound => MessageStatus::Received,
            Self::Outbound => MessageStatus::Queued,
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Outbound, stored and waiting in the outbox.
    Queued,
    /// The provider accepted it.
    Sent,
    /// It reached the recipient's phone.
    Delivered,
    /// The recipient read it.
    Read,
    /// It will not be delivered; see the error.
    Failed,
    /// Inbound, stored.
    Received,
}

impl MessageStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            "received" => Some(Self::Received),
            _ => None,
        }
    }

    /// Position in an outbound message's life. `failed` sits after `sent`
    /// (a provider may fail a message it accepted) and before `delivered`
    /// (a phone that got it proves it did not fail).
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued | Self::Received => 0,
            Self::Sent => 1,
            Self::Failed => 2,
            Self::Delivered => 3,
            Self::Read => 4,
        }
    }

    /// Whether a message in this status may move to `next`: statuses never
    /// go backwards (a late `delivered` after `read` keeps `read`).
    pub fn can_advance_to(self, next: Self) -> bool {
        next.rank() > self.rank()
    }
}

/// Media of a message: sent by link, or received with the provider's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Its kind.
    pub kind: MediaKind,
    /// The link it was sent from (outbound).
    pub url: Option<String>,
    /// The provider's media id (inbound; fetch it from the provider).
    pub provider_media_id: Option<String>,
    /// Its MIME type, when known.
    pub mime_type: Option<String>,
    /// Its caption.
    pub caption: Option<String>,
    /// Its file name (documents).
    pub file_name: Option<String>,
    /// Its size in bytes, when the provider says.
    pub size: Option<u64>,
    /// Where the provider keeps received media, when fetching it needs
    /// more than `provider_media_id`: opaque to all but the provider's
    /// adapter (which may put the media's key in it), never shown on the
    /// API.
    pub locator: Option<String>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageContent {
    /// Text.
    Text {
        /// The text.
        body: String,
    },
    /// Image, document, audio or video.
    Media(MediaInfo),
    /// A kind we store but do not interpret (location, sticker, reaction...).
    Other {
        /// The provider's type name.
        kind: String,
        /// Any text it carried.
        body: Option<String>,
    },
}

impl MessageContent {
    /// The type name: `text`, `image`, ..., or the provider's for others.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Media(m) => m.kind.as_str(),
            Self::Other { kind, .. } => kind,
        }
    }

    /// The text or caption, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text { body } => Some(body),
            Self::Media(m) => m.caption.as_deref(),
            Self::Other { body, .. } => body.as_deref(),
        }
    }

    /// What a conversation list shows: the text, the caption, or
    /// `[image]`-style for media without one.
    pub fn preview(&self) -> String {
        match self.text().filter(|t| !t.is_empty()) {
            Some(t) => t.to_owned(),
            None => format!("[{}]", self.type_name()),
        }
    }
}

impl From<&OutboundContent> for MessageContent {
    fn from(c: &OutboundContent) -> Self {
        match c {
            OutboundContent::Text { body } => Self::Text {
                body: body.as_str().to_owned(),
            },
            OutboundContent::Media(media) => Self::Media(MediaInfo {
                kind: media.kind(),
                url: Some(media.url().as_str().to_owned()),
                provider_media_id: None,
                mime_type: None,
                caption: media.caption().map(|c| c.as_str().to_owned()),
                file_name: media.file_name().map(|f| f.as_str().to_owned()),
                size: None,
                locator: None,
            }),
        }
    }
}

/// Why delivering a message failed: the provider's code and words, or the
/// dispatcher's reason when the message could not be handed over at all.
/// Data on a message (its `error`, a step of its history), unlike
/// [`crate::MessagingError`], which is what a messaging use case fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// The provider's code, when it gave one.
    pub code: Option<String>,
    /// The explanation.
    pub message: String,
}

/// One step of a message's status history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The status reached.
    pub status: MessageStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// The error, for `failed` (and for a retried attempt's note).
    pub error: Option<DeliveryError>,
}

/// A stored message, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id (`messageId`).
    pub id: MessageId,
    /// The owning workspace.
    pub workspace_id: WorkspaceId,
    /// The session it went through.
    pub session_id: SessionId,
    /// That session's name.
    pub session_name: SessionName,
    /// The other party.
    pub remote: WaId,
    /// Which way it went.
    pub direction: Direction,
    /// What it says.
    pub content: MessageContent,
    /// Where it is.
    pub status: MessageStatus,
    /// The provider's id for it, once known.
    pub provider_message_id: Option<String>,
    /// Why it failed, for `failed`.
    pub error: Option<DeliveryError>,
    /// Inbound: when the contact sent it, by the provider's clock (whole
    /// seconds). `None` for outbound messages.
    pub provider_timestamp: Option<DateTime<Utc>>,
    /// When we stored it (microseconds, our clock): messages are ordered
    /// and paged by it.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// Its statuses, oldest first (filled by single-message reads).
    pub history: Vec<StatusChange>,
}

impl Message {
    /// Whether it can be queued again: an outbound message that failed
    /// before any provider took it. One the provider took and reported
    /// failed is not: the provider may still deliver it, and a second send
    /// could reach the recipient twice.
    pub fn can_retry(&self) -> bool {
        self.direction == Direction::Outbound
            && self.status == MessageStatus::Failed
            && self.provider_message_id.is_none()
    }

    /// Whether the message is received media its provider gave a way to
    /// fetch (see [`crate::usecases::MessagingService::media`]).
    pub fn has_received_media(&self) -> bool {
        self.direction == Direction::Inbound
            && matches!(&self.content, MessageContent::Media(m)
                if m.provider_media_id.is_some() || m.locator.is_some())
    }
}

/// A request to send a message. Every part is a value type that was checked
/// when it was parsed, so a request that exists can be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The session to send through.
    pub session: SessionName,
    /// The recipient.
    pub to: PhoneNumber,
    /// What to send.
    pub content: OutboundContent,
}

impl SendMessage {
    /// A canonical text of the request, to tell a retried request from a
    /// different one under the same idempotency key.
    pub fn fingerprint(&self) -> String {
        // Stored with idempotency keys: the format must not change.
        let content = match &self.content {
            OutboundContent::Text { body } => format!("text\u{1f}{body}"),
            OutboundContent::Media(media) => format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                media.kind(),
                media.url(),
                media.caption().map_or("", Caption::as_str),
                media.file_name().map_or("", FileName::as_str)
            ),
        };
        format!("{}\u{1f}{}\u{1f}{content}", self.session, self.to)
    }
}

/// An `Idempotency-Key` with the fingerprint of the request that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller's key.
    pub key: String,
    /// [`SendMessage::fingerprint`] of the request.
    pub fingerprint: String,
}

/// A message a provider delivered to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The provider's id: messages are stored once per id and session.
    pub provider_message_id: String,
    /// The sender.
    pub from: WaId,
    /// The sender's WhatsApp profile name.
    pub push_name: Option<String>,
    /// What it says.
    pub content: MessageContent,
    /// When the sender sent it.
    pub timestamp: DateTime<Utc>,
}

/// Drops NUL characters from text a provider wrote: no text we store may
/// hold one (PostgreSQL's text cannot), and refusing the text would lose
/// what it came with.
pub(crate) fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

/// A provider's news about one of our outbound messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The provider's id of the message.
    pub provider_message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: MessageStatus,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The error, for `failed`.
    pub error: Option<DeliveryError>,
    /// Our id of the message, when the provider echoed the one the send
    /// carried ([`OutboundMessage::message_id`](crate::transport::OutboundMessage::message_id)):
    /// it settles a send whose outcome was unknown, whose provider id was
    /// therefore never recorded.
    pub echoed_message_id: Option<MessageId>,
}

/// Something a provider reports, in no provider's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// A new inbound message.
    Message(InboundMessage),
    /// A status of an outbound message.
    Status(StatusUpdate),
    /// A message the account sent from another of its devices (the phone
    /// a WhatsApp Web session is linked to): stored as outbound and
    /// `sent`, never unread. Its `from` names the conversation's contact
    /// (the recipient), its `push_name` is ignored.
    Echo(InboundMessage),
    /// The session's connection changed: it connected, lost its
    /// connection, or its credentials stopped working.
    SessionStatus {
        /// The session's new status.
        status: SessionStatus,
        /// What the provider said, for the session's last error.
        reason: Option<String>,
    },
}

/// A chat with one contact through one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The session.
    pub session_id: SessionId,
    /// Its name.
    pub session_name: SessionName,
    /// The contact.
    pub remote: WaId,
    /// The contact's WhatsApp profile name, when known.
    pub push_name: Option<String>,
    /// Preview of the latest message, either direction.
    pub last_message: String,
    /// When the latest message was.
    pub last_message_at: DateTime<Utc>,
    /// Inbound messages not yet marked read.
    pub unread_count: u32,
}

/// Which conversations to list: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationQuery {
    /// Only this session's.
    pub session: Option<SessionId>,
    /// Where the page starts: the newest, before a time (a page may then
    /// hold more than `limit` to keep a group of equal times whole: see
    /// `MessageRepository::list_conversations`), or after a position.
    pub start: PageStart<ConversationKey>,
    /// Page size.
    pub limit: u32,
}

impl ConversationQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 500;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_never_go_backwards() {
        use MessageStatus::*;
        assert!(Queued.can_advance_to(Sent));
        assert!(Sent.can_advance_to(Delivered));
        assert!(Delivered.can_advance_to(Read));
        assert!(!Read.can_advance_to(Delivered));
        assert!(!Delivered.can_advance_to(Sent));
        assert!(!Read.can_advance_to(Read));
        assert!(Sent.can_advance_to(Failed));
        assert!(!Delivered.can_advance_to(Failed));
        assert!(Failed.can_advance_to(Delivered));
    }

    #[test]
    fn wa_ids_accept_jids() {
        assert_eq!(
            WaId::parse("f", "6281234567890@s.whatsapp.net")
                .expect("ok")
                .as_str(),
            "6281234567890"
        );
        assert_eq!(
            WaId::parse("f", "+6281234567890").expect("ok").to_jid(),
            "6281234567890@s.whatsapp.net"
        );
        assert!(WaId::parse("f", "abc").is_err());
        assert_eq!(
            WaId::parse("f", "6281234567890@c.us").expect("ok").as_str(),
            "6281234567890"
        );
        for not_a_user in [
            "62811@g.us",
            "120363025246125486@g.us",
            "6281234567890@broadcast",
            "6281234567890@",
        ] {
            assert!(WaId::parse("f", not_a_user).is_err(), "{not_a_user}");
        }
    }

    #[test]
    fn a_number_to_answer_is_a_valid_phone_number_or_its_jid() {
        for given in [
            "6281234567890",
            "+62 812-3456-7890",
            "6281234567890@s.whatsapp.net",
            " 6281234567890@c.us ",
        ] {
            assert_eq!(
                WaId::parse_number("from", given).expect(given).as_str(),
                "6281234567890",
                "{given}"
            );
        }
        for refused in ["", "12345", "abc", "62811@g.us", "12345@s.whatsapp.net"] {
            let err = WaId::parse_number("from", refused).expect_err(refused);
            assert_eq!(err.field, "from", "{refused}");
        }
    }

    #[test]
    fn previews() {
        let media = MessageContent::Media(MediaInfo {
            kind: MediaKind::Image,
            url: None,
            provider_media_id: Some("m1".into()),
            mime_type: Some("image/jpeg".into()),
            caption: None,
            file_name: None,
            size: None,
            locator: None,
        });
        assert_eq!(media.preview(), "[image]");
        assert_eq!(MessageContent::Text { body: "hi".into() }.preview(), "hi");
    }
}
