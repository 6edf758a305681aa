//! The dashboard: server-rendered pages at `/` of the server's port, for a
//! business's staff. Pages use the same use cases as the public API; they
//! sign in with a password (an `HttpOnly` session cookie, checked in
//! PostgreSQL on every request), and every change is a `POST` carrying
//! the session's CSRF token, from this origin.
//!
//! Templates (`templates/`, askama: checked when the crate compiles) and
//! assets (`assets/`, embedded in the binary) hold no inline script; every
//! page is served with a Content-Security-Policy that forbids it, and with
//! `X-Frame-Options: DENY` and a `Referrer-Policy`.

mod account;
mod pages;

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use maveraa_domain::{Role, SignedIn};

use crate::ApiState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "maveraa_session";

/// Whether the session cookie is `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecureCookies {
    /// When the request came over HTTPS (as the connection, or a proxy's
    /// `X-Forwarded-Proto` / `Forwarded`, says).
    #[default]
    Auto,
    /// Always (a TLS proxy in front that does not say so).
    Always,
    /// Never.
    Never,
}

/// The dashboard's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct DashboardSettings {
    /// The session cookie's `Secure` flag.
    pub secure_cookies: SecureCookies,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every dashboard answer.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// A dashboard resource, with the security headers.
macro_rules! page {
    ($path:expr) => {
        web::resource($path).wrap(from_fn(security_headers))
    };
}

/// Registers the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig, settings: DashboardSettings) {
    cfg.app_data(web::Data::new(settings))
        .app_data(web::FormConfig::default().limit(64 * 1024))
        .service(page!("/").route(web::get().to(pages::home)))
        .service(
            page!("/login")
                .route(web::get().to(account::login_form))
                .route(web::post().to(account::login)),
        )
        .service(page!("/logout").route(web::post().to(account::logout)))
        .service(page!("/workspace").route(web::post().to(account::switch_workspace)))
        .service(page!("/logout/everywhere").route(web::post().to(account::logout_everywhere)))
        .service(
            page!("/setup")
                .route(web::get().to(account::setup_form))
                .route(web::post().to(account::setup)),
        )
        .service(
            page!("/settings/password")
                .route(web::get().to(account::password_form))
                .route(web::post().to(account::change_password)),
        )
        .service(
            page!("/settings/api-keys")
                .route(web::get().to(pages::api_keys))
                .route(web::post().to(pages::create_api_key)),
        )
        .service(
            page!("/settings/api-keys/{id}/revoke")
                .route(web::get().to(pages::confirm_revoke))
                .route(web::post().to(pages::revoke_api_key)),
        )
        .service(
            page!("/sessions")
                .route(web::get().to(pages::sessions))
                .route(web::post().to(pages::create_session)),
        )
        .service(page!("/sessions/{name}/start").route(web::post().to(pages::start_session)))
        .service(page!("/sessions/{name}/stop").route(web::post().to(pages::stop_session)))
        .service(page!("/sessions/{name}/link").route(web::get().to(pages::link_session)))
        .service(page!("/sessions/{name}/pair-code").route(web::post().to(pages::pair_session)))
        .service(
            page!("/sessions/{name}/logout")
                .route(web::get().to(pages::confirm_logout_session))
                .route(web::post().to(pages::logout_session)),
        )
        .service(
            page!("/sessions/{name}/delete")
                .route(web::get().to(pages::confirm_delete_session))
                .route(web::post().to(pages::delete_session)),
        )
        .service(
            page!("/contacts")
                .route(web::get().to(pages::contacts))
                .route(web::post().to(pages::create_contact)),
        )
        .service(page!("/contacts/export").route(web::get().to(pages::export_contacts)))
        .service(page!("/contacts/import").route(web::post().to(pages::import_contacts)))
        .service(
            page!("/contacts/{id}")
                .route(web::get().to(pages::contact))
                .route(web::post().to(pages::update_contact)),
        )
        .service(
            page!("/contacts/{id}/delete")
                .route(web::get().to(pages::confirm_delete_contact))
                .route(web::post().to(pages::delete_contact)),
        )
        .service(page!("/inbox").route(web::get().to(pages::inbox)))
        .service(page!("/messages/{id}/media").route(web::get().to(pages::message_media)))
        .service(
            page!("/inbox/{session}/{remote}")
                .route(web::get().to(pages::conversation))
                .route(web::post().to(pages::reply)),
        )
        .service(
            page!("/members")
                .route(web::get().to(pages::members))
                .route(web::post().to(pages::add_member)),
        )
        .service(page!("/members/{id}/role").route(web::post().to(pages::change_role)))
        .service(
            page!("/members/{id}/remove")
                .route(web::get().to(pages::confirm_remove_member))
                .route(web::post().to(pages::remove_member)),
        )
        .service(page!("/assets/app.css").route(web::get().to(asset_css)))
        .service(page!("/assets/app.js").route(web::get().to(asset_js)));
}

async fn asset_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../../assets/app.css"))
}

async fn asset_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../../assets/app.js"))
}

/// What a page answers instead of itself.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in: to the login page, then back to `next`.
    #[error("sign in first")]
    Login {
        /// Where to go after signing in.
        next: String,
    },
    /// The change did not come from one of our pages (CSRF).
    #[error("this form is stale or did not come from this site; reload the page and try again")]
    Forged,
    /// Only owners may do this.
    #[error("only the workspace's owners may do this")]
    NotOwner,
    /// No such thing.
    #[error("not found")]
    NotFound,
    /// A received file its provider does not give (now, or any more).
    #[error("{0}")]
    MediaUnavailable(String),
    /// Something failed on our side (logged, not shown).
    #[error("something went wrong on our side; try again")]
    Internal,
}

impl PageError {
    /// Logs `cause` and answers a 500 page.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "dashboard: internal error");
        Self::Internal
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Login { .. } => StatusCode::SEE_OTHER,
            Self::Forged | Self::NotOwner => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MediaUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Login { next } = self {
            let to = if next.is_empty() || next == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", urlencode(next))
            };
            return see_other(&to);
        }
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><meta charset=utf-8><title>Maveraa</title>\
                 <link rel=stylesheet href=/assets/app.css><main><p class=error>{}</p>\
                 <p><a href=/>Back to the dashboard</a></p></main>",
                escape(&self.to_string())
            ))
    }
}

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `303 See Other` to `to` (after a form: the browser gets it).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url_encode(s)
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The session cookie's token, if the request carries one.
fn session_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that gives the browser `token` (or clears it).
fn session_cookie(req: &HttpRequest, token: Option<&str>, max_age_secs: u64) -> String {
    let settings = req
        .app_data::<web::Data<DashboardSettings>>()
        .map(|s| s.secure_cookies)
        .unwrap_or_default();
    let secure = match settings {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => req.connection_info().scheme() == "https",
    };
    let (value, age) = match token {
        Some(t) => (t, max_age_secs),
        None => ("", 0),
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A request from a signed-in browser, and the user's workspaces (id,
/// name) for the header's switcher.
#[derive(Debug, Clone)]
pub struct Signed(pub SignedIn, pub Vec<(maveraa_domain::WorkspaceId, String)>);

impl Signed {
    /// Whether the user owns the workspace shown.
    pub fn owner(&self) -> bool {
        self.0.role == Role::Owner
    }

    /// Refuses a non-owner.
    ///
    /// # Errors
    /// [`PageError::NotOwner`].
    pub fn require_owner(&self) -> Result<(), PageError> {
        if self.owner() {
            Ok(())
        } else {
            Err(PageError::NotOwner)
        }
    }

    /// The workspace shown.
    pub fn workspace(&self) -> maveraa_domain::WorkspaceId {
        self.0.session.workspace_id
    }

    /// Checks a change's CSRF token and origin.
    ///
    /// # Errors
    /// [`PageError::Forged`].
    pub fn check(&self, req: &HttpRequest, token: &str) -> Result<(), PageError> {
        same_origin(req)?;
        if constant_time_eq(token.as_bytes(), self.0.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::Forged)
        }
    }
}

/// Refuses a change whose `Origin` (or, without one, `Referer`) names
/// another site.
///
/// # Errors
/// [`PageError::Forged`].
pub fn same_origin(req: &HttpRequest) -> Result<(), PageError> {
    let info = req.connection_info();
    let ours = format!("{}://{}", info.scheme(), info.host());
    let claimed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            req.headers()
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| url::Url::parse(r).ok())
                .map(|u| u.origin().ascii_serialization())
        });
    match claimed {
        Some(origin) if origin != ours => Err(PageError::Forged),
        _ => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequest for Signed {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = session_token(req);
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let next = if req.method() == actix_web::http::Method::GET {
            match req.query_string() {
                "" => req.path().to_owned(),
                q => format!("{}?{q}", req.path()),
            }
        } else {
            String::new()
        };
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(PageError::Login { next });
            };
            let signed = match state.accounts.authenticate(&token).await {
                Ok(Some(signed)) => signed,
                Ok(None) => return Err(PageError::Login { next }),
                Err(e) => return Err(PageError::internal(&e)),
            };
            let workspaces = state
                .accounts
                .workspaces(&signed)
                .await
                .map_err(|e| PageError::internal(&e))?
                .into_iter()
                .map(|(w, _)| (w.id, w.name.as_str().to_owned()))
                .collect();
            Ok(Self(signed, workspaces))
        })
    }
}

/// What every signed-in page shows in its header.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The user's email.
    pub email: String,
    /// The CSRF token for the header's forms.
    pub csrf: String,
    /// The section shown.
    pub active: &'static str,
    /// The user's workspaces (id, name, shown now), when there are several.
    pub workspaces: Vec<(String, String, bool)>,
}

impl Nav {
    fn of(signed: &Signed, active: &'static str) -> Self {
        let current = signed.workspace();
        Self {
            email: signed.0.user.email.as_str().to_owned(),
            csrf: signed.0.session.csrf_token.clone(),
            active,
            workspaces: if signed.1.len() > 1 {
                signed
                    .1
                    .iter()
                    .map(|(id, name)| (id.to_string(), name.clone(), *id == current))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// Renders a template into a `200` page (or `status`).
fn render(t: &impl askama::Template, status: StatusCode) -> Result<HttpResponse, PageError> {
    let html = t.render().map_err(|e| PageError::internal(&e))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A flash message carried in the query string after a redirect
/// (`?done=...`): only known texts, so a link cannot make us say anything.
fn flash(req: &HttpRequest) -> Option<String> {
    let done =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()?
            .get("done")?
            .clone();
    let text = match done.as_str() {
        "revoked" => "The key is revoked: requests with it are refused from now on.",
        "session" => "Session saved.",
        "logout" => "Logged out: the phone is unlinked and the device's keys are deleted.",
        "deleted" => "Deleted.",
        "contact" => "Contact saved.",
        "password" => "Password changed; your other browsers are signed out.",
        "member" => "Members updated.",
        "sent" => "Sent.",
        _ => return None,
    };
    Some(text.to_owned())
}
