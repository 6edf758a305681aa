//! The send request and its `202` answer, the `Idempotency-Key` header,
//! and a message as every endpoint shows it.

use actix_web::http::header::HeaderMap;
use maveraa_domain::messaging::{
    Caption, DeliveryError, FileName, MediaUrl, Message, MessageContent, MessageText,
    OutboundMedia, SendMessage, SessionName, StatusChange,
};
use maveraa_domain::transport::{MediaKind, OutboundContent};
use maveraa_domain::{PhoneNumber, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The header that makes a send safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Set to `true` on an answer that repeats an earlier send's.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `POST /api/public/inbox/send` body. Fields are optional here so that a
/// missing one is reported by name, not as a parse failure.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(description = "A message to send: a text, or media by link with `message` as its caption.", example = json!({"sessionId": "session-123", "targetNumber": "6289876543210", "message": "Your OTP code is 4567"}))]
pub struct SendRequest {
    /// The session's name.
    #[schema(required = true, value_type = String, example = "session-123")]
    pub session_id: Option<String>,
    /// The recipient's number with its country code.
    #[schema(required = true, value_type = String, example = "6289876543210")]
    pub target_number: Option<String>,
    /// The text (required without `media`, at most 4,096 characters); with
    /// media, the caption (may be empty; audio takes none).
    #[schema(required = false, value_type = String, example = "Your OTP code is 4567")]
    pub message: Option<String>,
    /// Media to send by link.
    #[schema(required = false, value_type = MediaRequest)]
    pub media: Option<MediaRequest>,
}

/// The `media` object of a send.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(description = "Media to send by link.", example = json!({"type": "image", "url": "https://example.com/a.jpg"}))]
pub struct MediaRequest {
    /// `image`, `document`, `audio` or `video`.
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String, example = "image")]
    pub kind: Option<String>,
    /// An absolute `http` or `https` URL the provider fetches.
    #[schema(required = true, value_type = String, example = "https://example.com/a.jpg")]
    pub url: Option<String>,
    /// The file name shown for a document; ignored for other kinds.
    #[schema(required = false, value_type = String)]
    pub file_name: Option<String>,
}

impl SendRequest {
    /// The domain's request: each field parsed by its value type, which
    /// holds the rules. The text is kept as sent (not trimmed).
    ///
    /// # Errors
    /// A [`ValidationError`] naming the field at fault: `sessionId`,
    /// `targetNumber`, `message`, `media.type`, `media.url` or
    /// `media.fileName`.
    pub fn try_into_domain(self) -> Result<SendMessage, ValidationError> {
        let session = SessionName::parse("sessionId", self.session_id.as_deref().unwrap_or(""))?;
        let to = PhoneNumber::parse("targetNumber", self.target_number.as_deref().unwrap_or(""))?;
        let content = match self.media {
            None => {
                let text = self
                    .message
                    .ok_or_else(|| ValidationError::new("message", "is required"))?;
                OutboundContent::Text {
                    body: MessageText::parse_without_media("message", &text)?,
                }
            }
            // With media, `message` is the caption: absent is empty.
            Some(media) => {
                let kind =
                    MediaKind::parse_field("media.type", media.kind.as_deref().unwrap_or(""))?;
                let url = MediaUrl::parse("media.url", media.url.as_deref().unwrap_or(""))?;
                let caption =
                    Caption::parse("message", kind, self.message.as_deref().unwrap_or(""))?;
                let file_name = FileName::parse(
                    "media.fileName",
                    kind,
                    media.file_name.as_deref().unwrap_or(""),
                )?;
                OutboundContent::Media(OutboundMedia::new(kind, url, caption, file_name))
            }
        };
        Ok(SendMessage {
            session,
            to,
            content,
        })
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 printable ASCII
/// characters.
///
/// # Errors
/// `400 validation_failed` on field `Idempotency-Key` for another value or
/// for more than one such header.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |why: &str| ApiError::validation(IDEMPOTENCY_KEY_HEADER, why.to_owned());
    if values.next().is_some() {
        return Err(invalid("send one Idempotency-Key header, not several"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        return Err(invalid(
            "Idempotency-Key must be 1 to 255 printable ASCII characters, e.g. a UUID",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The `202` answer to a send (and to its replays).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SendAccepted, description = "A send, queued.")]
pub struct Accepted<'a> {
    /// The message's id: `GET /api/public/messages/{messageId}` follows it.
    #[schema(example = "01a24927-596f-7727-9c8e-65b3d9bd2057")]
    message_id: String,
    /// Always `queued`.
    #[schema(example = "queued")]
    status: &'static str,
    /// The session's name.
    #[schema(example = "session-123")]
    session_id: &'a str,
    /// The recipient's JID.
    #[schema(example = "6289876543210@s.whatsapp.net")]
    remote_jid: String,
}

impl<'a> Accepted<'a> {
    /// The answer to the send that stored `m`, or to a replay of it.
    pub fn new(m: &'a Message) -> Self {
        Self {
            message_id: m.id.to_string(),
            // A replay answers what the first request was answered, whatever
            // the message's status is now; GET the message for that.
            status: "queued",
            session_id: m.session_name.as_str(),
            remote_jid: m.remote.to_jid(),
        }
    }
}

/// A delivery error on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeliveryError, description = "Why a message failed, as the provider said.")]
struct DeliveryErrorBody<'a> {
    /// The provider's error code, when it gave one (`190`: an expired
    /// access token).
    code: Option<&'a str>,
    /// The provider's message.
    message: &'a str,
}

impl<'a> From<&'a DeliveryError> for DeliveryErrorBody<'a> {
    fn from(e: &'a DeliveryError) -> Self {
        Self {
            code: e.code.as_deref(),
            message: &e.message,
        }
    }
}

/// A message's media on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Media, description = "A message's media.")]
struct MediaBody<'a> {
    /// `image`, `document`, `audio`, `video` or `sticker`.
    #[serde(rename = "type")]
    kind: &'static str,
    url: Option<&'a str>,
    provider_media_id: Option<&'a str>,
    mime_type: Option<&'a str>,
    caption: Option<&'a str>,
    file_name: Option<&'a str>,
    /// Its size in bytes, when the provider says (received media).
    size: Option<u64>,
    /// Where to download received media (`GET`, with your key), when its
    /// provider gave a way to; `null` for media you sent (see `url`).
    #[schema(example = "/api/public/messages/01a24927-596f-7727-9c8e-65b3d9bd2057/media")]
    download: Option<String>,
}

/// One step of a message's status history on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StatusChange, description = "One step of a message's status history.")]
struct StatusBody<'a> {
    /// `queued`, `sent`, `delivered`, `read` or `failed`.
    #[schema(example = "sent")]
    status: &'static str,
    /// When (RFC 3339, UTC, microseconds).
    #[schema(format = DateTime)]
    timestamp: String,
    /// Why, for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<DeliveryErrorBody<'a>>,
}

impl<'a> From<&'a StatusChange> for StatusBody<'a> {
    fn from(c: &'a StatusChange) -> Self {
        Self {
            status: c.status.as_str(),
            timestamp: super::time(&c.at),
            error: c.error.as_ref().map(DeliveryErrorBody::from),
        }
    }
}

/// A message on the wire, either direction. Borrows from the domain value.
/// `text` is the text of a text message (or of a kind we do not interpret);
/// a media message's caption is in `media.caption`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    as = Message,
    description = "A message, either direction. `text` is a text message's text; a media message's caption is in `media.caption`."
)]
pub struct MessageBody<'a> {
    /// The message's id.
    #[schema(example = "01a24927-596f-7727-9c8e-65b3d9bd2057")]
    message_id: String,
    /// The session's name.
    #[schema(example = "session-123")]
    session_id: &'a str,
    /// The contact's JID.
    #[schema(example = "6289876543210@s.whatsapp.net")]
    remote_jid: String,
    /// `inbound` or `outbound`.
    #[schema(example = "outbound")]
    direction: &'static str,
    /// `text`, a media kind, or another WhatsApp type as the provider names it.
    #[serde(rename = "type")]
    #[schema(example = "text")]
    kind: &'a str,
    /// The text of a text message.
    text: Option<&'a str>,
    /// A media message's media.
    media: Option<MediaBody<'a>>,
    /// `queued`, `sent`, `delivered`, `read`, `failed` (outbound) or
    /// `received` (inbound).
    #[schema(example = "sent")]
    status: &'static str,
    /// The provider's id of the message, once it has one.
    provider_message_id: Option<&'a str>,
    /// Why it failed, for `failed`.
    error: Option<DeliveryErrorBody<'a>>,
    /// Inbound: when the contact sent it (the provider's clock).
    provider_timestamp: Option<String>,
    /// When we stored it; histories are ordered and paged by it.
    #[schema(format = DateTime)]
    created_at: String,
    /// When its status last changed.
    #[schema(format = DateTime)]
    updated_at: String,
    /// Only where the history was read (a single message); a history page
    /// leaves it out rather than claim an empty history.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    status_history: Option<Vec<StatusBody<'a>>>,
}

impl<'a> MessageBody<'a> {
    /// A message in a history page: everything but `statusHistory`, which
    /// pages do not read.
    pub fn listed(m: &'a Message) -> Self {
        Self {
            status_history: None,
            ..Self::from(m)
        }
    }
}

impl<'a> From<&'a Message> for MessageBody<'a> {
    fn from(m: &'a Message) -> Self {
        let (text, media) = match &m.content {
            MessageContent::Text { body } => (Some(body.as_str()), None),
            MessageContent::Media(info) => (
                None,
                Some(MediaBody {
                    kind: info.kind.as_str(),
                    url: info.url.as_deref(),
                    provider_media_id: info.provider_media_id.as_deref(),
                    mime_type: info.mime_type.as_deref(),
                    caption: info.caption.as_deref(),
                    file_name: info.file_name.as_deref(),
                    size: info.size,
                    download: m
                        .has_received_media()
                        .then(|| format!("/api/public/messages/{}/media", m.id)),
                }),
            ),
            MessageContent::Other { body, .. } => (body.as_deref(), None),
        };
        Self {
            message_id: m.id.to_string(),
            session_id: m.session_name.as_str(),
            remote_jid: m.remote.to_jid(),
            direction: m.direction.as_str(),
            kind: m.content.type_name(),
            text,
            media,
            status: m.status.as_str(),
            provider_message_id: m.provider_message_id.as_deref(),
            error: m.error.as_ref().map(DeliveryErrorBody::from),
            provider_timestamp: m.provider_timestamp.as_ref().map(super::time),
            created_at: super::time(&m.created_at),
            updated_at: super::time(&m.updated_at),
            status_history: Some(m.history.iter().map(StatusBody::from).collect()),
        }
    }
}

/// The answer to a retry of a session's failed messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// How many were queued again.
    pub requeued: u64,
}

/// The `errorCode` filter of a session's retry: 1 to 64 printable
/// characters, or absent for every retryable message.
///
/// # Errors
/// `400 validation_failed` on `errorCode`, or on an unknown parameter.
pub fn retry_filter(query: &str) -> Result<Option<String>, ApiError> {
    let mut code = None;
    for (key, value) in crate::query::pairs(query)? {
        match key.as_str() {
            "errorCode" => {
                let value = value.trim();
                if value.is_empty()
                    || value.len() > 64
                    || !value.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(ApiError::validation(
                        "errorCode",
                        "errorCode must be 1 to 64 printable characters, e.g. 190".to_owned(),
                    ));
                }
                code = Some(value.to_owned());
            }
            other => {
                return Err(ApiError::validation(
                    other,
                    format!("unknown parameter {other}; this endpoint takes errorCode"),
                ));
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn req(session: &str, to: &str, message: Option<&str>) -> SendRequest {
        SendRequest {
            session_id: Some(session.into()),
            target_number: Some(to.into()),
            message: message.map(Into::into),
            media: None,
        }
    }

    fn media(kind: &str, url: &str, file_name: Option<&str>) -> Option<MediaRequest> {
        Some(MediaRequest {
            kind: Some(kind.into()),
            url: Some(url.into()),
            file_name: file_name.map(Into::into),
        })
    }

    fn text(body: &str) -> OutboundContent {
        OutboundContent::Text {
            body: MessageText::parse("message", body).expect("valid text"),
        }
    }

    /// Kind, URL, caption and file name of media content.
    fn media_parts(c: &OutboundContent) -> (MediaKind, &str, Option<&str>, Option<&str>) {
        let OutboundContent::Media(m) = c else {
            panic!("media expected, got {c:?}");
        };
        (
            m.kind(),
            m.url().as_str(),
            m.caption().map(Caption::as_str),
            m.file_name().map(FileName::as_str),
        )
    }

    fn field_of(r: SendRequest) -> String {
        r.try_into_domain()
            .map_or_else(|e| e.field, |ok| format!("accepted: {ok:?}"))
    }

    #[test]
    fn a_text_send() {
        let m = req(
            " session-123 ",
            "+62 898-7654-3210",
            Some("Your OTP code is 4567"),
        )
        .try_into_domain()
        .expect("valid");
        assert_eq!(m.session.as_str(), "session-123");
        assert_eq!(m.to.as_str(), "6289876543210");
        assert_eq!(m.content, text("Your OTP code is 4567"));
    }

    #[test]
    fn required_fields_are_named() {
        assert_eq!(field_of(SendRequest::default()), "sessionId");
        assert_eq!(
            field_of(SendRequest {
                target_number: None,
                ..req("s", "x", Some("hi"))
            }),
            "targetNumber"
        );
        assert_eq!(field_of(req("", "6289876543210", Some("hi"))), "sessionId");
        assert_eq!(
            field_of(req("a b", "6289876543210", Some("hi"))),
            "sessionId"
        );
        assert_eq!(field_of(req("s", "0812", Some("hi"))), "targetNumber");
        assert_eq!(field_of(req("s", "6289876543210", None)), "message");
        assert_eq!(field_of(req("s", "6289876543210", Some(" \n "))), "message");
    }

    #[test]
    fn text_length_and_characters() {
        let max = "é".repeat(MessageText::MAX_CHARS);
        assert!(
            req("s", "6289876543210", Some(&max))
                .try_into_domain()
                .is_ok()
        );
        let over = format!("{max}x");
        assert_eq!(field_of(req("s", "6289876543210", Some(&over))), "message");
        assert_eq!(field_of(req("s", "6289876543210", Some("a\0b"))), "message");
        // Line breaks and tabs are text; the text is kept as sent.
        let m = req("s", "6289876543210", Some(" line 1\n\tline 2 "))
            .try_into_domain()
            .expect("valid");
        assert_eq!(m.content, text(" line 1\n\tline 2 "));
    }

    #[test]
    fn media_with_and_without_captions() {
        let m = SendRequest {
            media: media("image", "https://example.com/a.jpg", Some("ignored.jpg")),
            ..req("s", "6289876543210", Some("look"))
        }
        .try_into_domain()
        .expect("valid");
        assert_eq!(
            media_parts(&m.content),
            (
                MediaKind::Image,
                "https://example.com/a.jpg",
                Some("look"),
                None
            )
        );
        // With media the message may be empty, or absent.
        for message in [Some(""), Some("  "), None] {
            let m = SendRequest {
                media: media("document", "https://example.com/a.pdf", Some(" a.pdf ")),
                ..req("s", "6289876543210", message)
            }
            .try_into_domain()
            .expect("valid");
            assert_eq!(
                media_parts(&m.content),
                (
                    MediaKind::Document,
                    "https://example.com/a.pdf",
                    None,
                    Some("a.pdf")
                )
            );
        }
        // Audio has no caption.
        let audio = |message| SendRequest {
            media: media("audio", "https://example.com/a.ogg", None),
            ..req("s", "6289876543210", message)
        };
        assert_eq!(field_of(audio(Some("hello"))), "message");
        assert!(audio(Some("")).try_into_domain().is_ok());
    }

    #[test]
    fn media_fields_are_checked() {
        let with = |m| SendRequest {
            media: m,
            ..req("s", "6289876543210", Some("hi"))
        };
        assert_eq!(
            field_of(with(media("sticker", "https://a.b/c", None))),
            "media.type"
        );
        assert_eq!(
            field_of(with(Some(MediaRequest {
                url: Some("https://a.b/c".into()),
                ..MediaRequest::default()
            }))),
            "media.type"
        );
        // The rules are the domain's (`MediaUrl`); here only that a bad
        // URL is reported under its wire field.
        for url in ["", "ftp://example.com/a.jpg"] {
            assert_eq!(
                field_of(with(media("image", url, None))),
                "media.url",
                "{url}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MediaUrl::MAX_CHARS));
        assert_eq!(field_of(with(media("image", &long, None))), "media.url");
        for url in [
            "http://example.com/a.jpg",
            "HTTPS://Example.com:8443/a.jpg?x=1",
        ] {
            assert!(
                with(media("image", url, None)).try_into_domain().is_ok(),
                "{url}"
            );
        }
        let name = "n".repeat(FileName::MAX_CHARS + 1);
        assert_eq!(
            field_of(with(media("document", "https://a.b/c", Some(&name)))),
            "media.fileName"
        );
        assert_eq!(
            field_of(with(media("document", "https://a.b/c", Some("a\nb.pdf")))),
            "media.fileName"
        );
        // A file name is only kept (and so only checked) for documents.
        assert!(
            with(media("video", "https://a.b/c", Some(&name)))
                .try_into_domain()
                .is_ok()
        );
    }

    #[test]
    fn urls_are_normalised() {
        let m = SendRequest {
            media: media("image", "https://BÜCHER.example/ä b", None),
            ..req("s", "6289876543210", None)
        }
        .try_into_domain();
        // Spaces are refused rather than guessed at...
        assert!(m.is_err());
        let m = SendRequest {
            media: media("image", "HTTPS://BÜCHER.example/ä", None),
            ..req("s", "6289876543210", None)
        }
        .try_into_domain()
        .expect("valid");
        // ...while a readable address is sent in the form providers fetch.
        assert_eq!(
            media_parts(&m.content).1,
            "https://xn--bcher-kva.example/%C3%A4"
        );
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_static("idempotency-key"),
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        h
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!(idempotency_key(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(
            idempotency_key(&headers(&[b"order-42 retry"])).ok(),
            Some(Some("order-42 retry".into()))
        );
        let max = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
        assert!(idempotency_key(&headers(&[max.as_bytes()])).is_ok());
        let over = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        for bad in [
            headers(&[b""]),
            headers(&[over.as_bytes()]),
            headers(&["é".as_bytes()]),
            headers(&[b"a", b"b"]),
        ] {
            let err = idempotency_key(&bad).expect_err("invalid");
            assert_eq!(err.field(), Some(IDEMPOTENCY_KEY_HEADER));
            assert_eq!(err.status().as_u16(), 400);
        }
    }
}
