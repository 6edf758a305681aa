//! `/api/public/sessions`: the workspace's WhatsApp sessions, and simulated
//! inbound messages for simulator sessions.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::SessionName;

use crate::error::{ApiError, ErrorBody};
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
#[utoipa::path(
    post,
    path = "/api/public/sessions",
    tag = "Sessions",
    operation_id = "createSession",
    summary = "Connect a WhatsApp number",
    description = "A `simulator` session needs nothing else; a `cloud-api` one needs its four \
        settings. Give Meta the answer's `webhookUrl` on your host, and the verify token.",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "The session", body = SessionBody,
            headers(("Location" = String, description = "The session's path"))),
        (status = 409, description = "`duplicate_session`: the `sessionId` is taken", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/public/sessions/{sessionId}",
    tag = "Sessions",
    operation_id = "getSession",
    summary = "One session",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    responses(
        (status = 200, description = "The session", body = SessionBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/stop",
    tag = "Sessions",
    operation_id = "stopSession",
    summary = "Pause a session's sending",
    description = "Its status turns `stopped`; sends are still accepted and wait, queued; what \
        the provider reports still comes in.",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    responses(
        (status = 200, description = "The session", body = SessionBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
pub async fn stop(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    set_stopped(auth, state, req, true).await
}

/// `POST /api/public/sessions/{sessionId}/start`: sending again.
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/start",
    tag = "Sessions",
    operation_id = "startSession",
    summary = "Start a session's sending again",
    description = "`connected` again, its `lastError` cleared; its queued messages leave in order.",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    responses(
        (status = 200, description = "The session", body = SessionBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/api/public/sessions/{sessionId}",
    tag = "Sessions",
    operation_id = "deleteSession",
    summary = "Delete a session",
    description = "With its messages, conversations and queued sends (which are not sent).",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/public/sessions",
    tag = "Sessions",
    operation_id = "listSessions",
    summary = "List sessions",
    responses(
        (status = 200, description = "The workspace's sessions and their status", body = SessionList),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/simulate/inbound",
    tag = "Sessions",
    operation_id = "simulateInbound",
    summary = "Simulate an inbound text (simulator sessions)",
    description = "A text \"from\" a contact, stored through the same path as a provider's webhook.",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    request_body = SimulateInboundRequest,
    responses(
        (status = 202, description = "Stored", body = SimulatedAccepted),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`not_a_simulator_session`: a real provider's session", body = ErrorBody),
    )
)]
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
