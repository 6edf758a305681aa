//! `/api/public/sessions`: the workspace's WhatsApp sessions, and simulated
//! inbound messages for simulator sessions.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::SessionName;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authenticated};
use crate::wire::sessions::{
    CreateSessionRequest, PairCodeBody, PairCodeRequest, QrBody, SessionBody, SessionList,
    SimulateInboundRequest, SimulatedAccepted,
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

/// How long a pairing-code request waits for the server holding the
/// session to answer.
const PAIR_CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `GET /api/public/sessions/{sessionId}/qr`: the QR code that links a
/// `whatsapp-web` session, as a PNG (or `?format=json`).
#[utoipa::path(
    get,
    path = "/api/public/sessions/{sessionId}/qr",
    tag = "Sessions",
    operation_id = "getSessionQr",
    summary = "The QR code to scan (whatsapp-web)",
    description = "While the session is `qr_required`: scan it with WhatsApp > Linked devices > \
        Link a device. WhatsApp replaces it about every 20 s (a `session.qr` event says so); \
        fetch it again then. A PNG by default; `?format=json` gives the code to render yourself.",
    params(
        ("sessionId" = String, Path, description = "The session's name", example = "session-123"),
        ("format" = Option<String>, Query, description = "`png` (the default) or `json`"),
    ),
    responses(
        (status = 200, description = "The QR code: a PNG image, or with `?format=json` its code",
            content(
                (Vec<u8> = "image/png"),
                (QrBody = "application/json"),
            )),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`session_state`: not waiting for a scan, or not a whatsapp-web session", body = ErrorBody),
    )
)]
pub async fn qr(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut json = false;
    for (key, value) in crate::query::pairs(req.query_string())? {
        if key == "format" {
            json = match value.as_str() {
                "json" => true,
                "png" | "" => false,
                _ => {
                    return Err(maveraa_domain::ValidationError::new(
                        "format",
                        "must be png or json",
                    )
                    .into());
                }
            };
        }
    }
    let code = state
        .sessions
        .qr(auth.0.workspace_id, &session_name(&req)?)
        .await?;
    // The code links a device to this workspace's number: never cached.
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if json {
        return Ok(response.json(QrBody {
            code: code.code,
            expires_at: crate::wire::time(&code.expires_at),
        }));
    }
    let png = crate::qr_png::render(&code.code).map_err(|e| ApiError::internal(&e))?;
    Ok(response.content_type("image/png").body(png))
}

/// `POST /api/public/sessions/{sessionId}/pair-code`: a code to link a
/// `whatsapp-web` session from the phone without a camera.
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/pair-code",
    tag = "Sessions",
    operation_id = "requestPairCode",
    summary = "A pairing code instead of a QR scan (whatsapp-web)",
    description = "On the phone of `phoneNumber`: WhatsApp > Linked devices > Link a device > \
        Link with phone number instead, and enter the code. The session must be `qr_required`.",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    request_body = PairCodeRequest,
    responses(
        (status = 200, description = "The code", body = PairCodeBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`session_state`: not waiting to be linked, or not a whatsapp-web session", body = ErrorBody),
        (status = 502, description = "`pair_code_failed`: WhatsApp gave no code", body = ErrorBody),
        (status = 504, description = "`pair_code_timeout`: the session's server did not answer in time", body = ErrorBody),
    )
)]
pub async fn pair_code(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<PairCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    use actix_web::http::StatusCode;
    let phone = body.0.try_into_domain()?;
    let session = state
        .sessions
        .request_pair_code(auth.0.workspace_id, &session_name(&req)?, &phone)
        .await?;
    match wait_for_pair_code(&state, &session).await? {
        Some(maveraa_domain::messaging::PairOutcome::Code(code)) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(PairCodeBody { code })),
        Some(maveraa_domain::messaging::PairOutcome::Failed(why)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "pair_code_failed",
            why,
        )),
        None => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "pair_code_timeout",
            "the server running the session did not answer in time; try again",
        )),
    }
}

/// The answer to `session`'s pairing-code request, which the server
/// holding it gives through the database; `None` when none came within
/// [`PAIR_CODE_WAIT`] (checked every 100 ms).
pub(crate) async fn wait_for_pair_code(
    state: &ApiState,
    session: &maveraa_domain::messaging::Session,
) -> Result<Option<maveraa_domain::messaging::PairOutcome>, maveraa_domain::SessionError> {
    let deadline = tokio::time::Instant::now() + PAIR_CODE_WAIT;
    loop {
        if let Some(outcome) = state.sessions.pair_code_answer(session).await? {
            return Ok(Some(outcome));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `POST /api/public/sessions/{sessionId}/logout`: unlinks a
/// `whatsapp-web` session's device and deletes its keys; its messages stay.
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/logout",
    tag = "Sessions",
    operation_id = "logoutSession",
    summary = "Unlink a session's device (whatsapp-web)",
    description = "WhatsApp is told, the device's keys are deleted and the status turns \
        `logged_out`; the session's messages stay. `start` shows a new QR code to link it again. \
        `202` while the server running the session tells WhatsApp.",
    params(("sessionId" = String, Path, description = "The session's name", example = "session-123")),
    responses(
        (status = 200, description = "Logged out", body = SessionBody),
        (status = 202, description = "Being logged out by the server running it", body = SessionBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`session_state`: not a whatsapp-web session", body = ErrorBody),
    )
)]
pub async fn logout(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    use maveraa_domain::messaging::SessionStatus;
    let (workspace, name) = (auth.0.workspace_id, session_name(&req)?);
    let requested = state.sessions.logout(workspace, &name).await?;
    // A bounded wait for the holder to do it, so a caller usually gets
    // the final state at once.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let session = state.sessions.get(workspace, &name).await?;
        if session.status == SessionStatus::LoggedOut {
            return Ok(HttpResponse::Ok().json(SessionBody::from(&session)));
        }
        if !requested || tokio::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Accepted().json(SessionBody::from(&session)));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
