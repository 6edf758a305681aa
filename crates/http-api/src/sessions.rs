//! `/api/public/sessions`: the workspace's WhatsApp sessions, and simulated
//! inbound messages for simulator sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::SessionName;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::wire::sessions::{SessionBody, SessionList, SimulateInboundRequest, SimulatedAccepted};
use crate::{ApiState, path_param};

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
