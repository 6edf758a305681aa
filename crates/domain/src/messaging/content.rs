//! What an outbound message says: its text, or media by link with a caption
//! and a file name. Each part is a value type built only by a `parse` that
//! checks it, so a [`SendMessage`](super::SendMessage) that exists can be
//! sent: the rules of a send live here and nowhere else.

use std::fmt;

use crate::transport::MediaKind;
use crate::values::ValidationError;

/// Longest text or caption WhatsApp takes, in characters.
const MAX_TEXT_CHARS: usize = 4096;

/// Checks free text: at most `max` characters, and no control characters
/// but line breaks and tabs (PostgreSQL cannot even store NUL).
fn check_free_text(field: &str, text: &str, max: usize) -> Result<(), ValidationError> {
    if text.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

/// The text of a text message: kept as given (not trimmed), not blank, at
/// most [`MessageText::MAX_CHARS`] characters, no control characters but
/// line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

impl MessageText {
    /// Longest text accepted, in characters (WhatsApp's limit).
    pub const MAX_CHARS: usize = MAX_TEXT_CHARS;

    /// Parses the text of a message.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when the text is longer than
    /// [`MessageText::MAX_CHARS`], has control characters other than line
    /// breaks and tabs, or is blank (`must not be empty`).
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        Self::parse_or(field, input, "must not be empty")
    }

    /// As [`MessageText::parse`], for a send without media, whose text is
    /// all it says: a blank text is refused as `must not be empty without
    /// media`, which tells the caller what else would have done.
    ///
    /// # Errors
    /// As [`MessageText::parse`].
    pub fn parse_without_media(field: &str, input: &str) -> Result<Self, ValidationError> {
        Self::parse_or(field, input, "must not be empty without media")
    }

    fn parse_or(field: &str, input: &str, blank: &str) -> Result<Self, ValidationError> {
        check_free_text(field, input, Self::MAX_CHARS)?;
        if input.trim().is_empty() {
            return Err(ValidationError::new(field, blank));
        }
        Ok(Self(input.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text shown with media of a kind that shows one (not audio): kept as
/// given, not blank, at most [`Caption::MAX_CHARS`] characters, no control
/// characters but line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caption(String);

impl Caption {
    /// Longest caption accepted, in characters (WhatsApp's limit).
    pub const MAX_CHARS: usize = MAX_TEXT_CHARS;

    /// Parses the caption of media of `kind`. Blank text is no caption.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when the text is longer than
    /// [`Caption::MAX_CHARS`], has control characters other than line
    /// breaks and tabs, or is not blank while `kind` shows no caption.
    pub fn parse(
        field: &str,
        kind: MediaKind,
        input: &str,
    ) -> Result<Option<Self>, ValidationError> {
        check_free_text(field, input, Self::MAX_CHARS)?;
        if input.trim().is_empty() {
            return Ok(None);
        }
        if !kind.allows_caption() {
            return Err(ValidationError::new(
                field,
                format!("must be empty with {kind} media: WhatsApp shows no caption with it"),
            ));
        }
        Ok(Some(Self(input.to_owned())))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Caption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name a document is shown with: trimmed, not empty, at most
/// [`FileName::MAX_CHARS`] characters on one line, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileName(String);

impl FileName {
    /// Longest file name accepted, in characters.
    pub const MAX_CHARS: usize = 255;

    /// Parses the file name of media of `kind`. Only documents show one:
    /// for other kinds the input is ignored, unchecked. Blank is no name.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when, for a document, the trimmed
    /// name is longer than [`FileName::MAX_CHARS`], has control characters
    /// or is not on one line.
    pub fn parse(
        field: &str,
        kind: MediaKind,
        input: &str,
    ) -> Result<Option<Self>, ValidationError> {
        if !kind.allows_file_name() {
            return Ok(None);
        }
        let name = input.trim();
        check_free_text(field, name, Self::MAX_CHARS)?;
        if name.contains(['\n', '\r', '\t']) {
            return Err(ValidationError::new(field, "must be on one line"));
        }
        Ok((!name.is_empty()).then(|| Self(name.to_owned())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link a provider fetches media from: an absolute `http` or `https` URL
/// with a host, in normalised form (punycode host, percent-encoded path),
/// at most [`MediaUrl::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaUrl(String);

impl MediaUrl {
    /// Longest URL accepted, in characters, before and after normalising.
    pub const MAX_CHARS: usize = 2048;

    /// Parses a media link, trimmed, and normalises it.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when it is blank, too long, not an
    /// absolute `http` or `https` URL with a host, or written loosely
    /// (whitespace, `\`, `https:host`, `https:///host`).
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        let too_long = || {
            ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            )
        };
        if input.chars().count() > Self::MAX_CHARS {
            return Err(too_long());
        }
        let invalid = || {
            ValidationError::new(
                field,
                "must be an absolute http or https URL with a host, e.g. https://example.com/photo.jpg",
            )
        };
        // The URL parser forgives `https:host`, `https:///host` and `\`
        // for `/`, and drops tabs and line breaks; a link the provider is
        // to fetch should be written out as the caller means it.
        let authority = ["http://", "https://"].iter().find_map(|p| {
            input
                .get(..p.len())
                .filter(|s| s.eq_ignore_ascii_case(p))
                .and_then(|_| input.get(p.len()..))
        });
        if authority.is_none_or(|a| a.is_empty() || a.starts_with('/'))
            || input
                .chars()
                .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let url = url::Url::parse(input).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid());
        }
        // Normalised, as providers expect; encoding can lengthen it.
        let url = String::from(url);
        if url.chars().count() > Self::MAX_CHARS {
            return Err(too_long());
        }
        Ok(Self(url))
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Media to send: its kind, its link, and the caption and file name the
/// kind shows. Holds no caption for audio and no file name but for
/// documents, so what it holds is what the recipient sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMedia {
    kind: MediaKind,
    url: MediaUrl,
    caption: Option<Caption>,
    file_name: Option<FileName>,
}

impl OutboundMedia {
    /// Media of `kind` at `url`. A caption or file name that `kind` does
    /// not show is left out; parse them for `kind`
    /// ([`Caption::parse`], [`FileName::parse`]) to refuse or ignore them
    /// there instead.
    pub fn new(
        kind: MediaKind,
        url: MediaUrl,
        caption: Option<Caption>,
        file_name: Option<FileName>,
    ) -> Self {
        Self {
            kind,
            url,
            caption: caption.filter(|_| kind.allows_caption()),
            file_name: file_name.filter(|_| kind.allows_file_name()),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The link the provider fetches it from.
    pub fn url(&self) -> &MediaUrl {
        &self.url
    }

    /// The text shown with it, if any.
    pub fn caption(&self) -> Option<&Caption> {
        self.caption.as_ref()
    }

    /// The name a document is shown with, if any.
    pub fn file_name(&self) -> Option<&FileName> {
        self.file_name.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_as_given_and_bounded() {
        let text = MessageText::parse("message", " line 1\n\tline 2 ").expect("valid");
        assert_eq!(text.as_str(), " line 1\n\tline 2 ");
        let max = "é".repeat(MessageText::MAX_CHARS);
        assert!(MessageText::parse("message", &max).is_ok());
        for (input, want) in [
            (format!("{max}x"), "must be at most 4096 characters"),
            ("a\0b".to_owned(), "must not contain control characters"),
            (" \n ".to_owned(), "must not be empty"),
        ] {
            let err = MessageText::parse("message", &input).expect_err("invalid");
            assert_eq!(err.field, "message");
            assert!(err.message.starts_with(want), "{}", err.message);
        }
        let err = MessageText::parse_without_media("message", "  ").expect_err("blank");
        assert_eq!(err.message, "must not be empty without media");
    }

    #[test]
    fn captions_are_optional_and_not_for_audio() {
        let caption = Caption::parse("message", MediaKind::Image, " look ").expect("valid");
        assert_eq!(caption.as_ref().map(Caption::as_str), Some(" look "));
        for blank in ["", "  "] {
            assert_eq!(Caption::parse("message", MediaKind::Audio, blank), Ok(None));
        }
        let err = Caption::parse("message", MediaKind::Audio, "hello").expect_err("audio");
        assert_eq!(err.field, "message");
        let over = "x".repeat(Caption::MAX_CHARS + 1);
        assert!(Caption::parse("message", MediaKind::Video, &over).is_err());
    }

    #[test]
    fn file_names_are_for_documents_only() {
        let doc = MediaKind::Document;
        let name = FileName::parse("media.fileName", doc, " a.pdf ").expect("valid");
        assert_eq!(name.as_ref().map(FileName::as_str), Some("a.pdf"));
        assert_eq!(FileName::parse("media.fileName", doc, "  "), Ok(None));
        let long = "n".repeat(FileName::MAX_CHARS + 1);
        for bad in [long.as_str(), "a\nb.pdf", "a\u{1}.pdf"] {
            let err = FileName::parse("media.fileName", doc, bad).expect_err(bad);
            assert_eq!(err.field, "media.fileName");
        }
        // Other kinds show no file name: it is ignored, not checked.
        assert_eq!(
            FileName::parse("media.fileName", MediaKind::Video, &long),
            Ok(None)
        );
    }

    #[test]
    fn media_holds_only_what_its_kind_shows() {
        let url = MediaUrl::parse("media.url", "https://example.com/a.ogg").expect("valid");
        let caption = Caption::parse("message", MediaKind::Image, "hi").expect("valid");
        let name = FileName::parse("media.fileName", MediaKind::Document, "a.ogg").expect("valid");
        let audio =
            OutboundMedia::new(MediaKind::Audio, url.clone(), caption.clone(), name.clone());
        assert_eq!((audio.caption(), audio.file_name()), (None, None));
        let document = OutboundMedia::new(MediaKind::Document, url, caption, name);
        assert!(document.caption().is_some() && document.file_name().is_some());
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        for url in [
            "",
            "ftp://example.com/a.jpg",
            "https:example.com/a.jpg",
            "//example.com/a.jpg",
            "/a.jpg",
            "https://",
            "https:///a.jpg",
            "https://exa mple.com/a.jpg",
            "https://example.com/a\tb.jpg",
            "https://example.com\\a.jpg",
            "javascript:alert(1)",
            "https://BÜCHER.example/ä b",
        ] {
            let err = MediaUrl::parse("media.url", url).expect_err(url);
            assert_eq!(err.field, "media.url", "{url}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MediaUrl::MAX_CHARS));
        assert!(MediaUrl::parse("media.url", &long).is_err());
        for url in [
            "http://example.com/a.jpg",
            "HTTPS://Example.com:8443/a.jpg?x=1",
        ] {
            assert!(MediaUrl::parse("media.url", url).is_ok(), "{url}");
        }
        assert_eq!(
            MediaUrl::parse("media.url", " HTTPS://BÜCHER.example/ä ")
                .expect("valid")
                .as_str(),
            "https://xn--bcher-kva.example/%C3%A4"
        );
    }
}
