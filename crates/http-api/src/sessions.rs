//! `/api/public/sessions`: the workspace's WhatsApp sessions, and simulated
//! inbound messages for simulator sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::{MessageText, ProviderSettings, Session, SessionName, WaId};
use maveraa_domain::{ContactName, PhoneNumber, ValidationError};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::{ApiState, path_param, wire_time};

/// A session on the wire. Never carries a credential: only the Cloud API's
/// phone number id, which is not secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody<'a> {
    session_id: &'a str,
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
    status: &'static str,
    last_error: Option<&'a str>,
    webhook_url: Option<String>,
    created_at: String,
}

impl<'a> From<&'a Session> for SessionBody<'a> {
    fn from(s: &'a Session) -> Self {
        Self {
            session_id: s.name.as_str(),
            provider: s.provider.kind().as_str(),
            phone_number_id: match &s.provider {
                ProviderSettings::CloudApi(c) => Some(c.phone_number_id.as_str()),
                ProviderSettings::Simulator => None,
            },
            status: s.status.as_str(),
            last_error: s.last_error.as_deref(),
            webhook_url: s.webhook_path(),
            created_at: wire_time(&s.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct SessionList<'a> {
    sessions: Vec<SessionBody<'a>>,
}

/// `GET /api/public/sessions`
pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.sessions.list(auth.0.workspace_id).await?;
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: sessions.iter().map(SessionBody::from).collect(),
    }))
}

/// `POST .../simulate/inbound` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulateInboundRequest {
    /// The sender: digits with the country code, or a JID.
    pub from: Option<String>,
    /// The sender's profile name.
    pub push_name: Option<String>,
    /// The text.
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
        let from = self.from.as_deref().unwrap_or("").trim();
        // A JID's number is read as WaId reads one (a user's JIDs only).
        let jid_number;
        let from = if from.contains('@') {
            jid_number = WaId::parse("from", from)?;
            jid_number.as_str()
        } else {
            from
        };
        let from = WaId::from_trusted_str(PhoneNumber::parse("from", from)?.as_str());
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SimulatedAccepted {
    provider_message_id: String,
}

/// `POST /api/public/sessions/{sessionId}/simulate/inbound`: a text "from"
/// a contact, stored through the same path as a provider's webhook.
pub async fn simulate_inbound(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<SimulateInboundRequest>,
) -> Result<HttpResponse, ApiError> {
    // A name no session can have is simply not found.
    let session = SessionName::parse("sessionId", path_param(&req, "sessionId"))
        .map_err(|_| ApiError::session_not_found())?;
    let inbound = body.0.try_into_domain()?;
    let provider_message_id = state
        .inbox
        .simulate_inbound(
            auth.0.workspace_id,
            &session,
            inbound.from,
            inbound.push_name,
            inbound.text.into_string(),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(SimulatedAccepted {
        provider_message_id,
    }))
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
