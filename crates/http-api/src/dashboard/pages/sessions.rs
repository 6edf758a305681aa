//! WhatsApp sessions: list with live status, connect, start, stop, delete.

use super::*;

struct SessionRow {
    name: String,
    provider: &'static str,
    status: &'static str,
    status_class: &'static str,
    last_error: Option<String>,
    webhook_url: Option<String>,
    stopped: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    owner: bool,
    sessions: Vec<SessionRow>,
    base_url: String,
}

#[derive(Template)]
#[template(path = "sessions_table.html")]
struct SessionsTable {
    csrf: String,
    owner: bool,
    sessions: Vec<SessionRow>,
    base_url: String,
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct PartQuery {
    part: Option<String>,
}

async fn session_rows(signed: &Signed, state: &ApiState) -> Result<Vec<SessionRow>, PageError> {
    Ok(state
        .sessions
        .list(signed.workspace())
        .await
        .map_err(internal)?
        .iter()
        .map(|s| SessionRow {
            name: s.name.as_str().to_owned(),
            provider: s.provider.kind().as_str(),
            status: s.status.as_str(),
            status_class: match s.status {
                SessionStatus::Connected => "ok",
                SessionStatus::Failed | SessionStatus::Disconnected => "bad",
                _ => "",
            },
            last_error: s.last_error.clone(),
            webhook_url: crate::webhook_path(s),
            stopped: s.status == SessionStatus::Stopped,
        })
        .collect())
}

fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

async fn sessions_page(
    req: &HttpRequest,
    signed: &Signed,
    state: &ApiState,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    render(
        &SessionsPage {
            nav: Some(Nav::of(signed, "sessions")),
            flash: flash(req),
            error,
            csrf: signed.0.session.csrf_token.clone(),
            owner: signed.owner(),
            sessions: session_rows(signed, state).await?,
            base_url: base_url(req),
        },
        status,
    )
}

/// `GET /sessions` (`?part=table`: the table alone, for the live refresh)
pub(in crate::dashboard) async fn sessions(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    query: web::Query<PartQuery>,
) -> Result<HttpResponse, PageError> {
    if query.part.as_deref() == Some("table") {
        return render(
            &SessionsTable {
                csrf: signed.0.session.csrf_token.clone(),
                owner: signed.owner(),
                sessions: session_rows(&signed, &state).await?,
                base_url: base_url(&req),
            },
            StatusCode::OK,
        );
    }
    sessions_page(&req, &signed, &state, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct NewSessionForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(rename = "sessionId")]
    session_id: String,
    provider: String,
    #[serde(rename = "phoneNumberId", default)]
    phone_number_id: String,
    #[serde(rename = "accessToken", default)]
    access_token: String,
    #[serde(rename = "appSecret", default)]
    app_secret: String,
    #[serde(rename = "verifyToken", default)]
    verify_token: String,
}

/// `POST /sessions`
pub(in crate::dashboard) async fn create_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<NewSessionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let form = form.into_inner();
    let made = async {
        let name = SessionName::parse("sessionId", &form.session_id)?;
        let settings = match form.provider.as_str() {
            "simulator" => ProviderSettings::Simulator,
            "cloud-api" => ProviderSettings::CloudApi(CloudApiSettings {
                phone_number_id: form.phone_number_id.trim().to_owned(),
                access_token: SecretString::new(form.access_token.trim()),
                app_secret: SecretString::new(form.app_secret.trim()),
                verify_token: SecretString::new(form.verify_token.trim()),
            }),
            _ => {
                return Err(SessionError::Validation(ValidationError::new(
                    "provider",
                    "must be cloud-api or simulator",
                )));
            }
        };
        state
            .sessions
            .create(signed.workspace(), name, settings)
            .await
    }
    .await;
    let error = match made {
        Ok(_) => return Ok(see_other("/sessions?done=session")),
        Err(SessionError::Validation(v)) => format!("{}: {}", v.field, v.message),
        Err(SessionError::Duplicate) => "A session with this id exists already.".to_owned(),
        Err(e) => return Err(internal(e)),
    };
    sessions_page(&req, &signed, &state, Some(error), StatusCode::BAD_REQUEST).await
}

fn session_name(path: &str) -> Result<SessionName, PageError> {
    SessionName::parse("sessionId", path).map_err(|_| PageError::NotFound)
}

async fn set_stopped(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    stopped: bool,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let name = session_name(&path)?;
    let done = if stopped {
        state.sessions.stop(signed.workspace(), &name).await
    } else {
        state.sessions.start(signed.workspace(), &name).await
    };
    match done {
        Ok(_) => Ok(see_other("/sessions?done=session")),
        Err(SessionError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(internal(e)),
    }
}

/// `POST /sessions/{name}/stop`
pub(in crate::dashboard) async fn stop_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_stopped(req, signed, state, path, form, true).await
}

/// `POST /sessions/{name}/start`
pub(in crate::dashboard) async fn start_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_stopped(req, signed, state, path, form, false).await
}

/// `GET /sessions/{name}/delete`: asks first.
pub(in crate::dashboard) async fn confirm_delete_session(
    signed: Signed,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require_owner()?;
    let name = session_name(&path)?;
    confirm(
        &signed,
        "sessions",
        "Delete session",
        format!(
            "Delete the session \u{201c}{name}\u{201d} with its conversations, messages and queued sends? This cannot be undone."
        ),
        format!("/sessions/{}/delete", urlencode(name.as_str())),
        "Delete",
        "/sessions",
    )
}

/// `POST /sessions/{name}/delete`
pub(in crate::dashboard) async fn delete_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let name = session_name(&path)?;
    match state.sessions.delete(signed.workspace(), &name).await {
        Ok(()) => Ok(see_other("/sessions?done=deleted")),
        Err(SessionError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(internal(e)),
    }
}
