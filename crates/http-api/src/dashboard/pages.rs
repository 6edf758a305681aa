//! The dashboard's pages: API keys, sessions, contacts, the inbox and
//! members. Each reads and changes through the same use cases as the
//! public API.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;
use maveraa_domain::messaging::{
    CloudApiSettings, Direction, MessageStatus, MessageText, ProviderSettings, SecretString,
    SendMessage, SessionName, SessionStatus, WaId,
};
use maveraa_domain::transport::OutboundContent;
use maveraa_domain::{
    ApiKeyId, ContactError, ContactId, ContactName, ContactPatch, Labels, NewContact, OnDuplicate,
    PageStart, PhoneNumber, Role, SessionError, UserId, ValidationError,
};
use serde::Deserialize;

use super::{Nav, PageError, Signed, flash, render, see_other, urlencode};
use crate::ApiState;
use crate::wire::contact_import::ImportFormat;
use crate::wire::contacts::{contact_batch_csv, contact_query, next_cursor};

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn internal(e: impl std::fmt::Display) -> PageError {
    PageError::internal(&e)
}

/// `GET /`: the inbox.
pub(super) async fn home(_signed: Signed) -> HttpResponse {
    see_other("/inbox")
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    heading: String,
    question: String,
    action: String,
    button: &'static str,
    back: &'static str,
}

fn confirm(
    signed: &Signed,
    active: &'static str,
    heading: &str,
    question: String,
    action: String,
    button: &'static str,
    back: &'static str,
) -> Result<HttpResponse, PageError> {
    render(
        &ConfirmPage {
            nav: Some(Nav::of(signed, active)),
            flash: None,
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            heading: heading.to_owned(),
            question,
            action,
            button,
            back,
        },
        StatusCode::OK,
    )
}

// ---- API keys ----

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    owner: bool,
    created: Option<String>,
    keys: Vec<KeyRow>,
}

async fn api_keys_page(
    signed: &Signed,
    state: &ApiState,
    flash: Option<String>,
    error: Option<String>,
    created: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let keys = state
        .api_keys
        .list(signed.workspace())
        .await
        .map_err(internal)?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created: time(&k.created_at),
            last_used: k.last_used_at.as_ref().map_or("never".to_owned(), time),
            revoked: k.revoked_at.is_some(),
        })
        .collect();
    render(
        &ApiKeysPage {
            nav: Some(Nav::of(signed, "api-keys")),
            flash,
            error,
            csrf: signed.0.session.csrf_token.clone(),
            owner: signed.owner(),
            created,
            keys,
        },
        status,
    )
}

/// `GET /settings/api-keys`
pub(super) async fn api_keys(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    api_keys_page(&signed, &state, flash(&req), None, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct NewKeyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: Option<String>,
}

/// `POST /settings/api-keys`: the page with the new key, shown once (not
/// a redirect: the key never travels in a URL).
pub(super) async fn create_api_key(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<NewKeyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    match state
        .api_keys
        .create(signed.workspace(), form.name.as_deref())
        .await
    {
        Ok((_, secret)) => {
            api_keys_page(
                &signed,
                &state,
                None,
                None,
                Some(secret.expose().to_owned()),
                StatusCode::CREATED,
            )
            .await
        }
        Err(maveraa_domain::ApiKeyError::Validation(v)) => {
            api_keys_page(
                &signed,
                &state,
                None,
                Some(format!("{}: {}", v.field, v.message)),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(internal(e)),
    }
}

/// The key `id` of the signed-in workspace.
async fn own_key(
    signed: &Signed,
    state: &ApiState,
    id: &str,
) -> Result<maveraa_domain::ApiKey, PageError> {
    let id: ApiKeyId = id.parse().map_err(|_| PageError::NotFound)?;
    state
        .api_keys
        .list(signed.workspace())
        .await
        .map_err(internal)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or(PageError::NotFound)
}

/// `GET /settings/api-keys/{id}/revoke`: asks first.
pub(super) async fn confirm_revoke(
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require_owner()?;
    let key = own_key(&signed, &state, &path).await?;
    confirm(
        &signed,
        "api-keys",
        "Revoke API key",
        format!(
            "Revoke \u{201c}{}\u{201d} ({}…)? Every request with it is refused from then on; this cannot be undone.",
            key.name, key.prefix
        ),
        format!("/settings/api-keys/{}/revoke", key.id),
        "Revoke",
        "/settings/api-keys",
    )
}

/// `POST /settings/api-keys/{id}/revoke`
pub(super) async fn revoke_api_key(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let key = own_key(&signed, &state, &path).await?;
    state.api_keys.revoke(key.id).await.map_err(internal)?;
    Ok(see_other("/settings/api-keys?done=revoked"))
}

// ---- Sessions ----

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
pub(super) struct PartQuery {
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
pub(super) async fn sessions(
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
pub(super) struct NewSessionForm {
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
pub(super) async fn create_session(
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
pub(super) async fn stop_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_stopped(req, signed, state, path, form, true).await
}

/// `POST /sessions/{name}/start`
pub(super) async fn start_session(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_stopped(req, signed, state, path, form, false).await
}

/// `GET /sessions/{name}/delete`: asks first.
pub(super) async fn confirm_delete_session(
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
pub(super) async fn delete_session(
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

// ---- Contacts ----

struct ContactRow {
    id: String,
    name: String,
    phone: String,
    labels: String,
    created: String,
}

struct ImportErrorRow {
    row: u64,
    field: String,
    message: String,
}

struct ImportView {
    created: u64,
    updated: u64,
    skipped: u64,
    failed: u64,
    errors: Vec<ImportErrorRow>,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    total: u64,
    search: String,
    label: String,
    contacts: Vec<ContactRow>,
    next: Option<String>,
    report: Option<ImportView>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContactsQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    after: String,
}

/// Rows of a page of contacts.
const CONTACTS_PER_PAGE: u32 = 50;

async fn contacts_page(
    signed: &Signed,
    state: &ApiState,
    q: &ContactsQuery,
    flash: Option<String>,
    error: Option<String>,
    report: Option<ImportView>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let mut qs = format!("limit={CONTACTS_PER_PAGE}");
    for (k, v) in [
        ("search", &q.search),
        ("label", &q.label),
        ("after", &q.after),
    ] {
        if !v.trim().is_empty() {
            qs.push_str(&format!("&{k}={}", urlencode(v.trim())));
        }
    }
    let (query, error) = match contact_query(&qs) {
        Ok(query) => (query, error),
        Err(e) => (
            contact_query(&format!("limit={CONTACTS_PER_PAGE}")).map_err(internal)?,
            Some(e.to_string()),
        ),
    };
    let page = state
        .contacts
        .list(signed.workspace(), &query)
        .await
        .map_err(internal)?;
    let next = next_cursor(&query, &page);
    render(
        &ContactsPage {
            nav: Some(Nav::of(signed, "contacts")),
            flash,
            error,
            csrf: signed.0.session.csrf_token.clone(),
            total: page.total,
            search: q.search.clone(),
            label: q.label.clone(),
            contacts: page
                .contacts
                .iter()
                .map(|c| ContactRow {
                    id: c.id.to_string(),
                    name: c.name.as_str().to_owned(),
                    phone: c.phone.as_str().to_owned(),
                    labels: c.labels.iter().collect::<Vec<_>>().join(", "),
                    created: time(&c.created_at),
                })
                .collect(),
            next,
            report,
        },
        status,
    )
}

/// `GET /contacts` (`search`, `label`, `after`)
pub(super) async fn contacts(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    query: web::Query<ContactsQuery>,
) -> Result<HttpResponse, PageError> {
    contacts_page(
        &signed,
        &state,
        &query,
        flash(&req),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ContactForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: String,
    phone: String,
    #[serde(default)]
    labels: String,
}

fn contact_error(e: ContactError) -> Result<String, PageError> {
    match e {
        ContactError::Validation(v) => Ok(format!("{}: {}", v.field, v.message)),
        ContactError::Duplicate { .. } => {
            Ok("phone: a contact with this phone number exists already".to_owned())
        }
        ContactError::NotFound => Err(PageError::NotFound),
        e => Err(internal(e)),
    }
}

/// `POST /contacts`
pub(super) async fn create_contact(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<ContactForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let made = async {
        let new = NewContact {
            name: ContactName::parse("name", &form.name)?,
            phone: PhoneNumber::parse("phone", &form.phone)?,
            labels: Labels::parse_csv("labels", &form.labels)?,
        };
        state.contacts.create(signed.workspace(), new).await
    }
    .await;
    let error = match made {
        Ok(_) => return Ok(see_other("/contacts?done=contact")),
        Err(e) => contact_error(e)?,
    };
    contacts_page(
        &signed,
        &state,
        &ContactsQuery::default(),
        None,
        Some(error),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await
}

#[derive(Template)]
#[template(path = "contact_edit.html")]
struct ContactEditPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    id: String,
    name: String,
    phone: String,
    labels: String,
}

fn contact_id(path: &str) -> Result<ContactId, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

/// `GET /contacts/{id}`
pub(super) async fn contact(
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let c = match state
        .contacts
        .get(signed.workspace(), contact_id(&path)?)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            contact_error(e)?;
            return Err(PageError::NotFound);
        }
    };
    render(
        &ContactEditPage {
            nav: Some(Nav::of(&signed, "contacts")),
            flash: None,
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            id: c.id.to_string(),
            name: c.name.as_str().to_owned(),
            phone: c.phone.as_str().to_owned(),
            labels: c.labels.iter().collect::<Vec<_>>().join(", "),
        },
        StatusCode::OK,
    )
}

/// `POST /contacts/{id}`
pub(super) async fn update_contact(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<ContactForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let id = contact_id(&path)?;
    let changed = async {
        let patch = ContactPatch {
            name: Some(ContactName::parse("name", &form.name)?),
            phone: Some(PhoneNumber::parse("phone", &form.phone)?),
            labels: Some(Labels::parse_csv("labels", &form.labels)?),
        };
        state.contacts.update(signed.workspace(), id, patch).await
    }
    .await;
    let error = match changed {
        Ok(_) => return Ok(see_other("/contacts?done=contact")),
        Err(e) => contact_error(e)?,
    };
    render(
        &ContactEditPage {
            nav: Some(Nav::of(&signed, "contacts")),
            flash: None,
            error: Some(error),
            csrf: signed.0.session.csrf_token.clone(),
            id: id.to_string(),
            name: form.name.clone(),
            phone: form.phone.clone(),
            labels: form.labels.clone(),
        },
        StatusCode::BAD_REQUEST,
    )
}

/// `GET /contacts/{id}/delete`: asks first.
pub(super) async fn confirm_delete_contact(
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let c = state
        .contacts
        .get(signed.workspace(), contact_id(&path)?)
        .await
        .map_err(|_| PageError::NotFound)?;
    confirm(
        &signed,
        "contacts",
        "Delete contact",
        format!("Delete {} ({})?", c.name.as_str(), c.phone.as_str()),
        format!("/contacts/{}/delete", c.id),
        "Delete",
        "/contacts",
    )
}

/// `POST /contacts/{id}/delete`
pub(super) async fn delete_contact(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    match state
        .contacts
        .delete(signed.workspace(), contact_id(&path)?)
        .await
    {
        Ok(()) => Ok(see_other("/contacts?done=deleted")),
        Err(e) => {
            contact_error(e)?;
            Err(PageError::NotFound)
        }
    }
}

/// `GET /contacts/export` (`search`, `label`): CSV the import reads back.
pub(super) async fn export_contacts(
    signed: Signed,
    state: web::Data<ApiState>,
    query: web::Query<ContactsQuery>,
) -> Result<HttpResponse, PageError> {
    let mut qs = String::new();
    for (k, v) in [("search", &query.search), ("label", &query.label)] {
        if !v.trim().is_empty() {
            qs.push_str(&format!("{k}={}&", urlencode(v.trim())));
        }
    }
    let q = contact_query(qs.trim_end_matches('&')).map_err(|_| PageError::NotFound)?;
    let stream = state
        .contacts
        .stream(signed.workspace(), &q)
        .await
        .map_err(internal)?;
    let head = futures_util::stream::once(async {
        Ok::<_, actix_web::Error>(Bytes::from_static(
            crate::wire::contacts::CONTACT_CSV_HEADER,
        ))
    });
    let rows = stream.batches.map(|batch| match batch {
        Ok(batch) => Ok(Bytes::from(contact_batch_csv(&batch))),
        Err(e) => Err(actix_web::error::ErrorInternalServerError(e.to_string())),
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"contacts.csv\"",
        ))
        .streaming(head.chain(rows)))
}

/// Largest CSV file the dashboard's import takes (larger: the API).
const IMPORT_FILE_LIMIT: usize = 20 * 1024 * 1024;

/// `POST /contacts/import`: a form with `_csrf`, `onDuplicate` and `file`
/// (multipart); the page with the import's report.
pub(super) async fn import_contacts(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    mut form: actix_multipart::Multipart,
) -> Result<HttpResponse, PageError> {
    super::same_origin(&req)?;
    let mut csrf = String::new();
    let mut on_duplicate = OnDuplicate::default();
    let mut file: Option<Vec<u8>> = None;
    // Fields in the form's order: the CSRF token and the choice come first.
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| PageError::Forged)?;
        let name = field.name().unwrap_or_default().to_owned();
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| PageError::Forged)?;
            if value.len() + chunk.len() > IMPORT_FILE_LIMIT {
                return contacts_page(
                    &signed,
                    &state,
                    &ContactsQuery::default(),
                    None,
                    Some("The file is over 20 MB: import it through the API instead.".into()),
                    None,
                    StatusCode::PAYLOAD_TOO_LARGE,
                )
                .await;
            }
            value.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "_csrf" => csrf = String::from_utf8_lossy(&value).into_owned(),
            "onDuplicate" => {
                on_duplicate = OnDuplicate::parse("onDuplicate", &String::from_utf8_lossy(&value))
                    .unwrap_or_default();
            }
            "file" => file = Some(value),
            _ => {}
        }
    }
    signed.check(&req, &csrf)?;
    let Some(file) = file else {
        return Err(PageError::NotFound);
    };
    let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(file))]);
    let (report, error) = match crate::contacts::run_import(
        &state,
        signed.workspace(),
        ImportFormat::Csv,
        on_duplicate,
        body,
    )
    .await
    {
        Ok((tally, read)) => (
            Some(ImportView {
                created: tally.created,
                updated: tally.updated,
                skipped: tally.skipped,
                failed: read.failed + tally.duplicates,
                errors: read
                    .errors
                    .iter()
                    .map(|e| ImportErrorRow {
                        row: e.row,
                        field: e.field.clone(),
                        message: e.message.clone(),
                    })
                    .chain(tally.duplicate_rows.iter().map(|row| ImportErrorRow {
                        row: *row,
                        field: "phone".into(),
                        message: "a contact with this phone exists already".into(),
                    }))
                    .collect(),
            }),
            None,
        ),
        Err(e) => (None, Some(format!("Nothing was imported: {e}"))),
    };
    contacts_page(
        &signed,
        &state,
        &ContactsQuery::default(),
        None,
        error,
        report,
        StatusCode::OK,
    )
    .await
}

// ---- Inbox ----

struct ConversationRow {
    session: String,
    remote: String,
    title: String,
    unread: u32,
    when: String,
    last: String,
    open: bool,
}

struct OpenConversation {
    title: String,
    session: String,
    remote: String,
}

struct MessageRow {
    text: String,
    when: String,
    outbound: bool,
    status: &'static str,
    tick: &'static str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    sessions: Vec<String>,
    session: String,
    conversations: Vec<ConversationRow>,
    open: Option<OpenConversation>,
    messages: Vec<MessageRow>,
}

#[derive(Template)]
#[template(path = "inbox_list.html")]
struct InboxList {
    conversations: Vec<ConversationRow>,
}

#[derive(Template)]
#[template(path = "inbox_messages.html")]
struct InboxMessages {
    messages: Vec<MessageRow>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct InboxQuery {
    #[serde(default)]
    session: String,
    part: Option<String>,
}

/// Conversations shown at once.
const CONVERSATIONS: u32 = 50;
/// Messages of a conversation shown at once (the newest).
const MESSAGES: u32 = 100;

async fn conversation_rows(
    signed: &Signed,
    state: &ApiState,
    session: &str,
    open: Option<(&str, &str)>,
) -> Result<Vec<ConversationRow>, PageError> {
    let filter = match session {
        "" => None,
        s => Some(SessionName::parse("session", s).map_err(|_| PageError::NotFound)?),
    };
    let page = state
        .inbox
        .conversations(
            signed.workspace(),
            filter.as_ref(),
            PageStart::Newest,
            CONVERSATIONS,
        )
        .await;
    let page = match page {
        Ok(p) => p,
        Err(maveraa_domain::InboxError::SessionNotFound) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    Ok(page
        .items
        .into_iter()
        .map(|c| {
            let session = c.session_name.as_str().to_owned();
            let remote = c.remote.as_str().to_owned();
            ConversationRow {
                open: open == Some((session.as_str(), remote.as_str())),
                title: c
                    .push_name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("+{remote}")),
                session,
                remote,
                unread: c.unread_count,
                when: time(&c.last_message_at),
                last: c.last_message.chars().take(80).collect(),
            }
        })
        .collect())
}

async fn session_names(signed: &Signed, state: &ApiState) -> Result<Vec<String>, PageError> {
    Ok(state
        .sessions
        .list(signed.workspace())
        .await
        .map_err(internal)?
        .iter()
        .map(|s| s.name.as_str().to_owned())
        .collect())
}

/// `GET /inbox` (`session`; `part=list`: the list alone)
pub(super) async fn inbox(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, PageError> {
    let conversations = conversation_rows(&signed, &state, &query.session, None).await?;
    if query.part.as_deref() == Some("list") {
        return render(&InboxList { conversations }, StatusCode::OK);
    }
    render(
        &InboxPage {
            nav: Some(Nav::of(&signed, "inbox")),
            flash: flash(&req),
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            sessions: session_names(&signed, &state).await?,
            session: query.session.clone(),
            conversations,
            open: None,
            messages: Vec::new(),
        },
        StatusCode::OK,
    )
}

fn conversation_key(path: &(String, String)) -> Result<(SessionName, WaId), PageError> {
    let session = SessionName::parse("session", &path.0).map_err(|_| PageError::NotFound)?;
    let remote = WaId::parse("remote", &path.1).map_err(|_| PageError::NotFound)?;
    Ok((session, remote))
}

async fn message_rows(
    signed: &Signed,
    state: &ApiState,
    session: &SessionName,
    remote: &WaId,
) -> Result<Vec<MessageRow>, PageError> {
    let page = match state
        .inbox
        .conversation_messages(
            signed.workspace(),
            session,
            remote,
            PageStart::Newest,
            MESSAGES,
        )
        .await
    {
        Ok(p) => p,
        Err(
            maveraa_domain::InboxError::SessionNotFound
            | maveraa_domain::InboxError::ConversationNotFound,
        ) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    // Oldest first on the page, as a chat reads.
    Ok(page
        .items
        .iter()
        .rev()
        .map(|m| {
            let outbound = m.direction == Direction::Outbound;
            let (status, tick) = match m.status {
                MessageStatus::Queued => ("queued", "\u{1f552}"),
                MessageStatus::Sent => ("sent", "\u{2713}"),
                MessageStatus::Delivered => ("delivered", "\u{2713}\u{2713}"),
                MessageStatus::Read => ("read", "\u{2713}\u{2713}"),
                MessageStatus::Failed => ("failed", "\u{2717}"),
                MessageStatus::Received => ("received", ""),
            };
            MessageRow {
                text: m.content.preview(),
                when: time(&m.provider_timestamp.unwrap_or(m.created_at)),
                outbound,
                status,
                tick,
                error: m.error.as_ref().map(|e| e.message.clone()),
            }
        })
        .collect())
}

/// `GET /inbox/{session}/{remote}` (`part=messages`: the messages alone).
/// Opening a conversation marks it read.
pub(super) async fn conversation(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, PageError> {
    let (session, remote) = conversation_key(&path)?;
    let messages = message_rows(&signed, &state, &session, &remote).await?;
    // Read while open: new inbound messages too, as they appear.
    match state
        .inbox
        .mark_read(signed.workspace(), &session, &remote)
        .await
    {
        Ok(_) | Err(maveraa_domain::InboxError::ConversationNotFound) => {}
        Err(e) => tracing::warn!(error = %e, "dashboard: could not mark a conversation read"),
    }
    if query.part.as_deref() == Some("messages") {
        return render(&InboxMessages { messages }, StatusCode::OK);
    }
    let conversations = conversation_rows(
        &signed,
        &state,
        &query.session,
        Some((session.as_str(), remote.as_str())),
    )
    .await?;
    let title = conversations
        .iter()
        .find(|c| c.open)
        .map_or_else(|| format!("+{}", remote.as_str()), |c| c.title.clone());
    render(
        &InboxPage {
            nav: Some(Nav::of(&signed, "inbox")),
            flash: flash(&req),
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            sessions: session_names(&signed, &state).await?,
            session: query.session.clone(),
            conversations,
            open: Some(OpenConversation {
                title,
                session: session.as_str().to_owned(),
                remote: remote.as_str().to_owned(),
            }),
            messages,
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    text: String,
}

/// `POST /inbox/{session}/{remote}`: a text reply, queued like an API send.
pub(super) async fn reply(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    form: web::Form<ReplyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let (session, remote) = conversation_key(&path)?;
    let back = format!(
        "/inbox/{}/{}",
        urlencode(session.as_str()),
        urlencode(remote.as_str())
    );
    let sent = async {
        let request = SendMessage {
            session: session.clone(),
            to: PhoneNumber::parse("targetNumber", remote.as_str())?,
            content: OutboundContent::Text {
                body: MessageText::parse_without_media("message", &form.text)?,
            },
        };
        Ok::<_, ValidationError>(request)
    }
    .await;
    let request = match sent {
        Ok(r) => r,
        Err(_) => return Ok(see_other(&back)),
    };
    match state
        .messaging
        .send(signed.workspace(), request, None)
        .await
    {
        Ok(_) => Ok(see_other(&back)),
        Err(maveraa_domain::MessagingError::SessionNotFound) => Err(PageError::NotFound),
        Err(e) => Err(internal(e)),
    }
}

// ---- Members ----

struct MemberRow {
    id: String,
    email: String,
    role: &'static str,
    owner: bool,
    me: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    owner: bool,
    members: Vec<MemberRow>,
}

async fn members_page(
    req: &HttpRequest,
    signed: &Signed,
    state: &ApiState,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let members = state
        .accounts
        .members(&signed.0)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(u, role)| MemberRow {
            me: u.id == signed.0.user.id,
            id: u.id.to_string(),
            email: u.email.as_str().to_owned(),
            role: role.as_str(),
            owner: role == Role::Owner,
        })
        .collect();
    render(
        &MembersPage {
            nav: Some(Nav::of(signed, "members")),
            flash: flash(req),
            error,
            csrf: signed.0.session.csrf_token.clone(),
            owner: signed.owner(),
            members,
        },
        status,
    )
}

/// `GET /members`
pub(super) async fn members(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    members_page(&req, &signed, &state, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct MemberForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    email: String,
    #[serde(default)]
    password: String,
    role: String,
}

fn account_error(e: maveraa_domain::usecases::AccountError) -> Result<String, PageError> {
    use maveraa_domain::usecases::AccountError as E;
    match e {
        E::Validation(v) => Ok(format!("{}: {}", v.field, v.message)),
        E::Duplicate => Ok("This user is a member already.".into()),
        E::LastOwner => Ok("The workspace needs at least one owner.".into()),
        E::NotOwner => Err(PageError::NotOwner),
        E::NotFound => Err(PageError::NotFound),
        e => Err(internal(e)),
    }
}

/// `POST /members`
pub(super) async fn add_member(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<MemberForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    signed.require_owner()?;
    let role = Role::parse("role", &form.role).map_err(|_| PageError::NotFound)?;
    let error = match state
        .accounts
        .add_member(&signed.0, &form.email, &form.password, role)
        .await
    {
        Ok(()) => return Ok(see_other("/members?done=member")),
        Err(e) => account_error(e)?,
    };
    members_page(&req, &signed, &state, Some(error), StatusCode::BAD_REQUEST).await
}

#[derive(Debug, Deserialize)]
pub(super) struct RoleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    role: String,
}

fn user_id(path: &str) -> Result<UserId, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

/// `POST /members/{id}/role`
pub(super) async fn change_role(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let role = Role::parse("role", &form.role).map_err(|_| PageError::NotFound)?;
    let error = match state
        .accounts
        .change_member(&signed.0, user_id(&path)?, Some(role))
        .await
    {
        Ok(()) => return Ok(see_other("/members?done=member")),
        Err(e) => account_error(e)?,
    };
    members_page(&req, &signed, &state, Some(error), StatusCode::BAD_REQUEST).await
}

/// `GET /members/{id}/remove`: asks first.
pub(super) async fn confirm_remove_member(
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require_owner()?;
    let id = user_id(&path)?;
    let (user, _) = state
        .accounts
        .members(&signed.0)
        .await
        .map_err(internal)?
        .into_iter()
        .find(|(u, _)| u.id == id)
        .ok_or(PageError::NotFound)?;
    confirm(
        &signed,
        "members",
        "Remove member",
        format!(
            "Remove {} from this workspace? Their account stays; they lose access here.",
            user.email.as_str()
        ),
        format!("/members/{id}/remove"),
        "Remove",
        "/members",
    )
}

/// `POST /members/{id}/remove`
pub(super) async fn remove_member(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let error = match state
        .accounts
        .change_member(&signed.0, user_id(&path)?, None)
        .await
    {
        Ok(()) => return Ok(see_other("/members?done=member")),
        Err(e) => account_error(e)?,
    };
    members_page(&req, &signed, &state, Some(error), StatusCode::BAD_REQUEST).await
}
