//! `/api/public/sessions`: the workspace's WhatsApp sessions, and simulated
//! inbound messages for simulator sessions.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::SessionName;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::wire::sessions::{
    CreateSessionRequest, SessionBody, SessionList, SimulateInboundRequest, SimulatedAccepted,
};
use crate::{ApiState, path_param};

/// The session named in the path; a name no session can have is simply
/// not found.
fn session_name(req: &HttpRequest) -> Result<SessionName, ApiError> {
    SessionName::parse("sessionId", path_param(req, "sessionId"))
        .map_err(|_| ApiError::session_not_found())
}

/// `POST /api/public/sessions`: `201` with the session as the list shows
/// it (a Cloud API session's `webhookUrl` is what to give Meta).
pub async fn create(
    auth: Authenticated,
    state: web::Data<ApiState>,
    body: ApiJson<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let (name, settings) = body.0.try_into_domain()?;
    let session = state
        .sessions
        .create(auth.0.workspace_id, name, settings)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/public/sessions/{}", session.name.as_str()),
        ))
        .json(SessionBody::from(&session)))
}

/// `GET /api/public/sessions/{sessionId}`
pub async fn get(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = state
        .sessions
        .get(auth.0.workspace_id, &session_name(&req)?)
        .await?;
    Ok(HttpResponse::Ok().json(SessionBody::from(&session)))
}

/// `POST /api/public/sessions/{sessionId}/stop`: its messages wait, queued.
pub async fn stop(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    set_stopped(auth, state, req, true).await
}

/// `POST /api/public/sessions/{sessionId}/start`: sending again.
pub async fn start(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    set_stopped(auth, state, req, false).await
}

/// Stops or starts the session named in the path; answers it.
async fn set_stopped(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    stopped: bool,
) -> Result<HttpResponse, ApiError> {
    let (workspace, name) = (auth.0.workspace_id, session_name(&req)?);
    let session = if stopped {
        state.sessions.stop(workspace, &name).await?
    } else {
        state.sessions.start(workspace, &name).await?
    };
    Ok(HttpResponse::Ok().json(SessionBody::from(&session)))
}

/// `DELETE /api/public/sessions/{sessionId}`: the session with its
/// messages, conversations and queued sends.
pub async fn delete(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .delete(auth.0.workspace_id, &session_name(&req)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
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

/// `POST /api/public/sessions/{sessionId}/simulate/inbound`: a text "from"
/// a contact, stored through the same path as a provider's webhook.
pub async fn simulate_inbound(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<SimulateInboundRequest>,
) -> Result<HttpResponse, ApiError> {
    let session = session_name(&req)?;
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
