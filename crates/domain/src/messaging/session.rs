use std::fmt;

use compact_str::CompactString;

use chrono::{DateTime, Utc};

use crate::ids::{SessionId, WorkspaceId};
use crate::values::ValidationError;

/// The name a user gives a session (the API's `sessionId`, e.g.
/// `session-123`): 1 to 64 letters, digits, `.`, `_` or `-`, unique within
/// a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionName(CompactString);

impl SessionName {
    /// Longest name accepted.
    pub const MAX_CHARS: usize = 64;

    /// Checks a name.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when it is empty, too long or has
    /// other characters.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        if s.len() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ValidationError::new(
                field,
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(s.into()))
    }

    /// Wraps a name read back from storage. Does not validate.
    pub fn from_trusted(name: String) -> Self {
        Self(name.into())
    }

    /// As `from_trusted`, from borrowed text (held inline: no allocation).
    pub fn from_trusted_str(name: &str) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A provider credential. Never printed by `Debug`, never returned by the API.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's text; use it, don't log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Settings of a Meta WhatsApp Cloud API number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudApiSettings {
    /// The Cloud API's phone number id.
    pub phone_number_id: String,
    /// A system-user access token.
    pub access_token: SecretString,
    /// The Meta app's secret: webhooks are signed with it.
    pub app_secret: SecretString,
    /// The token Meta echoes when it verifies the webhook URL.
    pub verify_token: SecretString,
}

/// The kinds of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// The built-in simulator, for development and integration tests.
    Simulator,
    /// Meta's WhatsApp Cloud API.
    CloudApi,
    /// WhatsApp Web: a device linked to a phone's WhatsApp by a QR code or
    /// a pairing code, over a connection a server holds.
    WhatsAppWeb,
}

impl ProviderKind {
    /// Whether the provider reports by calling a webhook URL of ours (the
    /// session then has one), rather than over a connection we hold.
    pub fn reports_by_webhook(self) -> bool {
        matches!(self, Self::CloudApi)
    }

    /// Whether the session runs over a connection one server holds at a
    /// time (linked devices), rather than over stateless requests.
    pub fn holds_connection(self) -> bool {
        matches!(self, Self::WhatsAppWeb)
    }

    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simulator => "simulator",
            Self::CloudApi => "cloud-api",
            Self::WhatsAppWeb => "whatsapp-web",
        }
    }
}

/// Which provider a session uses, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    /// The simulator needs no settings.
    Simulator,
    /// Meta's Cloud API.
    CloudApi(CloudApiSettings),
    /// WhatsApp Web: no settings; the linked device's keys are its state.
    WhatsAppWeb,
}

impl ProviderSettings {
    /// The provider's id of the account this session is (the Cloud API's
    /// phone number id); `None` for providers with no such id. Webhook
    /// deliveries name accounts by it.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Self::Simulator | Self::WhatsAppWeb => None,
            Self::CloudApi(settings) => Some(&settings.phone_number_id),
        }
    }

    /// The kind of provider.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Simulator => ProviderKind::Simulator,
            Self::CloudApi(_) => ProviderKind::CloudApi,
            Self::WhatsAppWeb => ProviderKind::WhatsAppWeb,
        }
    }
}

/// Whether a session can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Sending and receiving.
    Connected,
    /// Turned off or logged out.
    Disconnected,
    /// The provider refuses the session's credentials; see `last_error`.
    Failed,
    /// Stopped by its owner: its messages stay queued, none is sent, until
    /// it is started again. What a provider reports still comes in.
    Stopped,
    /// A linked device's connection is being opened.
    Starting,
    /// A linked device waits for its phone to scan the QR code (or to
    /// enter a pairing code).
    QrRequired,
    /// The phone unlinked the device (or the owner logged it out): its
    /// keys are gone, and only a new scan links it again.
    LoggedOut,
}

impl SessionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::QrRequired => "qr_required",
            Self::LoggedOut => "logged_out",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connected" => Some(Self::Connected),
            "disconnected" => Some(Self::Disconnected),
            "failed" => Some(Self::Failed),
            "stopped" => Some(Self::Stopped),
            "starting" => Some(Self::Starting),
            "qr_required" => Some(Self::QrRequired),
            "logged_out" => Some(Self::LoggedOut),
            _ => None,
        }
    }
}

/// A WhatsApp number connected to a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Global id; the inbound webhook URL carries it.
    pub id: SessionId,
    /// The owning workspace.
    pub workspace_id: WorkspaceId,
    /// The user's name for it, unique within the workspace.
    pub name: SessionName,
    /// Provider and settings.
    pub provider: ProviderSettings,
    /// Whether it works.
    pub status: SessionStatus,
    /// The last provider error, when `status` is `failed`; why, when
    /// `disconnected` or `logged_out`.
    pub last_error: Option<String>,
    /// The WhatsApp account a linked device is, once linked.
    pub me: Option<LinkedAccount>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The WhatsApp account a linked device belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// Its number's JID (`628123456789@s.whatsapp.net`).
    pub jid: String,
    /// Its WhatsApp profile name, when known.
    pub push_name: Option<String>,
}

/// A code that links a device, until it expires: the QR code's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The text the QR code encodes.
    pub code: String,
    /// When WhatsApp stops accepting it (a new one replaces it).
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        assert_eq!(
            SessionName::parse("sessionId", " session-123 ")
                .expect("ok")
                .as_str(),
            "session-123"
        );
        assert!(SessionName::parse("sessionId", "a b").is_err());
        assert!(SessionName::parse("sessionId", "").is_err());
        assert!(SessionName::parse("sessionId", &"x".repeat(65)).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = CloudApiSettings {
            phone_number_id: "123".into(),
            access_token: SecretString::new("EAAtoken"),
            app_secret: SecretString::new("appsecret"),
            verify_token: SecretString::new("verify"),
        };
        let text = format!("{s:?}");
        assert!(
            !text.contains("EAAtoken") && !text.contains("appsecret") && !text.contains("verify\"")
        );
    }
}
