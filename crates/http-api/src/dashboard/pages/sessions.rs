//! WhatsApp sessions: list with live status, connect, start, stop, delete;
//! WhatsApp Web sessions linked by QR code or pairing code, and logged out.

use super::*;

struct SessionRow {
    name: String,
    provider: &'static str,
    status: &'static str,
    status_class: &'static str,
    last_error: Option<String>,
    webhook_url: Option<String>,
    stopped: bool,
    /// A WhatsApp Web session: linked by QR code, and logged out.
    web: bool,
    /// The number it is linked as.
    me: Option<String>,
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
            web: s.provider.kind().holds_connection(),
            me: s.me.as_ref().map(linked_as),
        })
        .collect())
}

/// "+6281234567890 (Acme Sales)": the linked number and its profile name.
fn linked_as(me: &maveraa_domain::messaging::LinkedAccount) -> String {
    let number = me.jid.split('@').next().unwrap_or(&me.jid);
    match &me.push_name {
        Some(name) => format!("+{number} ({name})"),
        None => format!("+{number}"),
    }
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
            "whatsapp-web" => ProviderSettings::WhatsAppWeb,
            "cloud-api" => ProviderSettings::CloudApi(CloudApiSettings {
                phone_number_id: form.phone_number_id.trim().to_owned(),
                access_token: SecretString::new(form.access_token.trim()),
                app_secret: SecretString::new(form.app_secret.trim()),
                verify_token: SecretString::new(form.verify_token.trim()),
            }),
            _ => {
                return Err(SessionError::Validation(ValidationError::new(
                    "provider",
                    "must be whatsapp-web, cloud-api or simulator",
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
        // A WhatsApp Web session is linked next: its QR code.
        Ok(s) if s.provider.kind().holds_connection() => {
            return Ok(see_other(&format!(
                "/sessions/{}/link",
                urlencode(s.name.as_str())
            )));
        }
        Ok(_) => return Ok(see_other("/sessions?done=session")),
        Err(SessionError::Validation(v)) => format!("{}: {}", v.field, v.message),
        Err(SessionError::Duplicate) => "A session with this id exists already.".to_owned(),
        Err(SessionError::WrongState(why)) => why,
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

/// The link page's live part: the status, and while waiting for a scan
/// the QR code (inline, as a `data:` image: the part is fetched again as
/// the code rotates) and the pairing-code form.
#[derive(Template)]
#[template(path = "session_link_status.html")]
struct LinkStatus {
    csrf: String,
    status: &'static str,
    last_error: Option<String>,
    me: Option<String>,
    qr_png: Option<String>,
    waiting: bool,
}

#[derive(Template)]
#[template(path = "session_link.html")]
struct LinkPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    name: String,
    pair_code: Option<String>,
    part: LinkStatus,
}

async fn link_status(
    signed: &Signed,
    state: &ApiState,
    name: &SessionName,
) -> Result<LinkStatus, PageError> {
    let session = match state.sessions.get(signed.workspace(), name).await {
        Ok(s) if s.provider.kind().holds_connection() => s,
        Ok(_) | Err(SessionError::NotFound) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    let waiting = session.status == SessionStatus::QrRequired;
    let qr_png = if waiting {
        match state.sessions.qr(signed.workspace(), name).await {
            Ok(code) => {
                use base64::Engine;
                let png = crate::qr_png::render(&code.code).map_err(internal)?;
                Some(format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(png)
                ))
            }
            // Between two codes: the next refresh shows the new one.
            Err(SessionError::WrongState(_)) => None,
            Err(e) => return Err(internal(e)),
        }
    } else {
        None
    };
    Ok(LinkStatus {
        csrf: signed.0.session.csrf_token.clone(),
        status: session.status.as_str(),
        last_error: session.last_error.clone(),
        me: session.me.as_ref().map(linked_as),
        qr_png,
        waiting,
    })
}

async fn link_page(
    req: &HttpRequest,
    signed: &Signed,
    state: &ApiState,
    name: &SessionName,
    pair_code: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    render(
        &LinkPage {
            nav: Some(Nav::of(signed, "sessions")),
            flash: flash(req),
            error,
            name: name.as_str().to_owned(),
            pair_code,
            part: link_status(signed, state, name).await?,
        },
        status,
    )
}

/// `GET /sessions/{name}/link` (`?part=status`: the live part alone): the
/// QR code to scan, or a pairing code, until the session is linked.
pub(in crate::dashboard) async fn link_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<PartQuery>,
) -> Result<HttpResponse, PageError> {
    signed.require_owner()?;
    let name = session_name(&path)?;
    if query.part.as_deref() == Some("status") {
        return render(&link_status(&signed, &state, &name).await?, StatusCode::OK);
    }
    link_page(&req, &signed, &state, &name, None, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct PairCodeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(rename = "phoneNumber", default)]
    phone_number: String,
}

/// `POST /sessions/{name}/pair-code`: a code to enter on the phone.
pub(in crate::dashboard) async fn pair_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<PairCodeForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let name = session_name(&path)?;
    let asked = async {
        let phone = PhoneNumber::parse("phoneNumber", &form.phone_number)?;
        let session = state
            .sessions
            .request_pair_code(signed.workspace(), &name, &phone)
            .await?;
        crate::sessions::wait_for_pair_code(&state, &session).await
    }
    .await;
    use maveraa_domain::messaging::PairOutcome;
    let (code, error) = match asked {
        Ok(Some(PairOutcome::Code(code))) => (Some(code), None),
        Ok(Some(PairOutcome::Failed(why))) => (None, Some(format!("WhatsApp gave no code: {why}"))),
        Ok(None) => (
            None,
            Some("The server running the session did not answer in time; try again.".to_owned()),
        ),
        Err(SessionError::Validation(v)) => (None, Some(format!("{}: {}", v.field, v.message))),
        Err(SessionError::WrongState(why)) => (None, Some(why)),
        Err(SessionError::NotFound) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    link_page(&req, &signed, &state, &name, code, error, status).await
}

/// `GET /sessions/{name}/logout`: asks first.
pub(in crate::dashboard) async fn confirm_logout_session(
    signed: Signed,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require_owner()?;
    let name = session_name(&path)?;
    confirm(
        &signed,
        "sessions",
        "Log out",
        format!(
            "Unlink the phone from the session \u{201c}{name}\u{201d}? Its conversations and messages stay; linking it again needs a new scan."
        ),
        format!("/sessions/{}/logout", urlencode(name.as_str())),
        "Log out",
        "/sessions",
    )
}

/// `POST /sessions/{name}/logout`
pub(in crate::dashboard) async fn logout_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let name = session_name(&path)?;
    match state.sessions.logout(signed.workspace(), &name).await {
        Ok(_) => Ok(see_other("/sessions?done=logout")),
        Err(SessionError::NotFound | SessionError::WrongState(_)) => Err(PageError::NotFound),
        Err(e) => Err(internal(e)),
    }
}
