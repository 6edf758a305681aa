//! A session as the API shows it, and the simulated inbound message.

use maveraa_domain::messaging::{
    CloudApiSettings, MessageText, ProviderSettings, SecretString, Session, SessionName, WaId,
};
use maveraa_domain::{ContactName, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A session on the wire. Never carries a credential: only the Cloud API's
/// phone number id, which is not secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
pub struct SessionBody<'a> {
    /// The session's name, chosen at its creation.
    #[schema(example = "session-123")]
    session_id: &'a str,
    /// `whatsapp-web`, `cloud-api` or `simulator`.
    #[schema(example = "simulator")]
    provider: &'static str,
    /// The Cloud API's phone number id (Cloud API sessions only; not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    phone_number_id: Option<&'a str>,
    /// `connected`, `disconnected`, `failed` or `stopped`; for
    /// `whatsapp-web` also `starting`, `qr_required` (waiting for a scan:
    /// `GET .../qr`) and `logged_out` (unlinked: `start` shows a new QR).
    #[schema(example = "connected")]
    status: &'static str,
    /// Why the session is `failed`, `disconnected` or `logged_out`.
    last_error: Option<&'a str>,
    /// The WhatsApp account a `whatsapp-web` session is linked as, once
    /// linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    me: Option<MeBody<'a>>,
    /// The path to give Meta as the webhook URL (Cloud API sessions only).
    #[schema(example = json!(null))]
    webhook_url: Option<String>,
    /// When it was created (RFC 3339, UTC, microseconds).
    #[schema(format = DateTime, example = "2026-12-06T02:20:44.453771Z")]
    created_at: String,
}

/// The account a linked session is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LinkedAccount)]
pub struct MeBody<'a> {
    /// Its number's JID.
    #[schema(example = "6281234567890@s.whatsapp.net")]
    id: &'a str,
    /// Its WhatsApp profile name, when known.
    push_name: Option<&'a str>,
}

impl<'a> From<&'a Session> for SessionBody<'a> {
    fn from(s: &'a Session) -> Self {
        Self {
            session_id: s.name.as_str(),
            provider: s.provider.kind().as_str(),
            phone_number_id: match &s.provider {
                ProviderSettings::CloudApi(c) => Some(c.phone_number_id.as_str()),
                ProviderSettings::Simulator | ProviderSettings::WhatsAppWeb => None,
            },
            status: s.status.as_str(),
            last_error: s.last_error.as_deref(),
            me: s.me.as_ref().map(|m| MeBody {
                id: &m.jid,
                push_name: m.push_name.as_deref(),
            }),
            webhook_url: crate::webhook_path(s),
            created_at: super::time(&s.created_at),
        }
    }
}

/// The answer to `GET /api/public/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList<'a> {
    /// The workspace's sessions.
    pub sessions: Vec<SessionBody<'a>>,
}

/// `POST /api/public/sessions` body: the list's field names, and the
/// provider's settings. Fields are optional here so that a missing one is
/// reported by name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(
    description = "A new session: its name, its provider and, for `cloud-api`, the provider's four settings.",
    example = json!({"sessionId": "session-123", "provider": "simulator"})
)]
pub struct CreateSessionRequest {
    /// The session's name: unique in the workspace.
    #[schema(required = true, value_type = String, example = "session-123")]
    session_id: Option<String>,
    /// `whatsapp-web` (linked by QR code: no settings), `cloud-api` or
    /// `simulator`.
    #[schema(required = true, value_type = String, example = "simulator")]
    provider: Option<String>,
    /// Cloud API only (required for it): the number's phone number id.
    #[schema(required = false, value_type = String)]
    phone_number_id: Option<String>,
    /// Cloud API only (required for it): the access token. Never returned.
    #[schema(required = false, value_type = String)]
    access_token: Option<String>,
    /// Cloud API only (required for it): the app secret that signs Meta's
    /// webhooks. Never returned.
    #[schema(required = false, value_type = String)]
    app_secret: Option<String>,
    /// Cloud API only (required for it): the token Meta's webhook
    /// verification must present. Never returned.
    #[schema(required = false, value_type = String)]
    verify_token: Option<String>,
}

impl CreateSessionRequest {
    /// The session's name and provider settings. A credential given to a
    /// provider that takes none is refused, not dropped.
    ///
    /// # Errors
    /// A [`ValidationError`] on `sessionId`, `provider` or a setting.
    pub fn try_into_domain(self) -> Result<(SessionName, ProviderSettings), ValidationError> {
        let name = SessionName::parse(
            "sessionId",
            self.session_id
                .as_deref()
                .ok_or_else(|| ValidationError::new("sessionId", "is required"))?,
        )?;
        let provider = self
            .provider
            .ok_or_else(|| ValidationError::new("provider", "is required"))?;
        let cloud = [
            ("phoneNumberId", self.phone_number_id),
            ("accessToken", self.access_token),
            ("appSecret", self.app_secret),
            ("verifyToken", self.verify_token),
        ];
        let settings = match provider.trim() {
            "simulator" => {
                if let Some((field, _)) = cloud.iter().find(|(_, v)| v.is_some()) {
                    return Err(ValidationError::new(
                        *field,
                        "is a cloud-api setting; a simulator session takes none",
                    ));
                }
                ProviderSettings::Simulator
            }
            "cloud-api" => {
                let [phone, access, secret, verify] = cloud.map(|(field, v)| {
                    v.ok_or_else(|| ValidationError::new(field, "is required for cloud-api"))
                });
                ProviderSettings::CloudApi(CloudApiSettings {
                    phone_number_id: phone?.trim().to_owned(),
                    access_token: SecretString::new(access?),
                    app_secret: SecretString::new(secret?),
                    verify_token: SecretString::new(verify?),
                })
            }
            "whatsapp-web" => {
                if let Some((field, _)) = cloud.iter().find(|(_, v)| v.is_some()) {
                    return Err(ValidationError::new(
                        *field,
                        "is a cloud-api setting; a whatsapp-web session takes none (it is linked by QR code)",
                    ));
                }
                ProviderSettings::WhatsAppWeb
            }
            _ => {
                return Err(ValidationError::new(
                    "provider",
                    "must be one of whatsapp-web, cloud-api, simulator",
                ));
            }
        };
        Ok((name, settings))
    }
}

/// `POST .../pair-code` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(description = "The number whose phone will enter the pairing code.", example = json!({"phoneNumber": "6281234567890"}))]
pub struct PairCodeRequest {
    /// The phone's number, with its country code.
    #[schema(required = true, value_type = String)]
    pub phone_number: Option<String>,
}

impl PairCodeRequest {
    /// The number.
    ///
    /// # Errors
    /// A [`ValidationError`] on `phoneNumber`.
    pub fn try_into_domain(self) -> Result<maveraa_domain::PhoneNumber, ValidationError> {
        maveraa_domain::PhoneNumber::parse(
            "phoneNumber",
            self.phone_number
                .as_deref()
                .ok_or_else(|| ValidationError::new("phoneNumber", "is required"))?,
        )
    }
}

/// A pairing code to enter on the phone.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "ABCD-EFGH"}))]
pub struct PairCodeBody {
    /// Enter it on the phone: WhatsApp > Linked devices > Link with phone
    /// number instead.
    pub code: String,
}

/// The QR code as JSON (`?format=json`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"code": "2@AbCd...,xyz...,abc...", "expiresAt": "2026-12-06T02:21:04.000000Z"}))]
pub struct QrBody {
    /// The text the QR code encodes; render it as a QR code to scan.
    pub code: String,
    /// When WhatsApp replaces it (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST .../simulate/inbound` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(description = "A simulated inbound text.", example = json!({"from": "6289876543210", "pushName": "Jane Smith", "message": "Hi! Is my order on its way?"}))]
pub struct SimulateInboundRequest {
    /// The sender: digits with the country code, or a JID.
    #[schema(required = true, value_type = String)]
    pub from: Option<String>,
    /// The sender's profile name.
    #[schema(required = false, value_type = String)]
    pub push_name: Option<String>,
    /// The text.
    #[schema(required = true, value_type = String)]
    pub message: Option<String>,
}

/// A validated simulated inbound text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedInbound {
    /// The sender.
    pub from: WaId,
    /// The sender's profile name, when given and not blank.
    pub push_name: Option<String>,
    /// The text, as sent.
    pub text: MessageText,
}

impl SimulateInboundRequest {
    /// Validates the body.
    ///
    /// # Errors
    /// A [`ValidationError`] on `from`, `pushName` or `message`.
    pub fn try_into_domain(self) -> Result<SimulatedInbound, ValidationError> {
        // A number as `targetNumber` takes it (a conversation that could
        // not be answered is no use), or its JID.
        let from = WaId::parse_number("from", self.from.as_deref().unwrap_or(""))?;
        let push_name = match self.push_name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(ContactName::parse("pushName", name)?.as_str().to_owned()),
        };
        let text = self
            .message
            .ok_or_else(|| ValidationError::new("message", "is required"))?;
        let text = MessageText::parse("message", &text)?;
        Ok(SimulatedInbound {
            from,
            push_name,
            text,
        })
    }
}

/// The `202` answer to a simulated inbound message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedAccepted {
    /// The id the simulated provider gave the message.
    pub provider_message_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        from: Option<&str>,
        push_name: Option<&str>,
        message: Option<&str>,
    ) -> SimulateInboundRequest {
        SimulateInboundRequest {
            from: from.map(Into::into),
            push_name: push_name.map(Into::into),
            message: message.map(Into::into),
        }
    }

    #[test]
    fn a_simulated_text() {
        let s = body(
            Some("6281234567890@s.whatsapp.net"),
            Some(" John "),
            Some("Hello!"),
        )
        .try_into_domain()
        .expect("valid");
        assert_eq!(s.from.as_str(), "6281234567890");
        assert_eq!(s.push_name.as_deref(), Some("John"));
        assert_eq!(s.text.as_str(), "Hello!");
        let s = body(Some("6281234567890"), Some("  "), Some("x"))
            .try_into_domain()
            .expect("valid");
        assert_eq!(s.push_name, None);
    }

    #[test]
    fn fields_are_named() {
        let field = |b: SimulateInboundRequest| {
            b.try_into_domain()
                .map_or_else(|e| e.field, |_| "ok".into())
        };
        assert_eq!(field(body(None, None, Some("x"))), "from");
        assert_eq!(field(body(Some("abc"), None, Some("x"))), "from");
        assert_eq!(field(body(Some("6281234567890"), None, None)), "message");
        assert_eq!(
            field(body(Some("6281234567890"), None, Some(" "))),
            "message"
        );
        let long = "x".repeat(MessageText::MAX_CHARS + 1);
        assert_eq!(
            field(body(Some("6281234567890"), None, Some(&long))),
            "message"
        );
        assert_eq!(
            field(body(Some("6281234567890"), Some("a\0"), Some("x"))),
            "pushName"
        );
    }
}
