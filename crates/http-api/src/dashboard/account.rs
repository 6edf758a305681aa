//! Signing in and out, the first account, and the user's password.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use maveraa_domain::usecases::AccountError;
use serde::Deserialize;

use super::{Nav, PageError, Signed, render, same_origin, see_other, session_cookie};
use crate::ApiState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    email: String,
    next: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// Only a path of ours: never another site (an open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/inbox".to_owned(),
    }
}

/// `GET /login`
pub(super) async fn login_form(
    query: web::Query<NextQuery>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    // No account yet: say how to make the first one.
    let error = match state.accounts.setup_needed().await {
        Ok(true) => Some(
            "No account exists yet: open the setup link the server printed at its start, or \
             run `maveraa user create`."
                .to_owned(),
        ),
        _ => None,
    };
    render(
        &LoginPage {
            nav: None,
            flash: None,
            error,
            email: String::new(),
            next: safe_next(query.next.as_deref()),
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// The client's address as the connection (or a proxy's `Forwarded`)
/// says, for counting failed sign-ins.
fn client_address(req: &HttpRequest) -> String {
    req.connection_info()
        .realip_remote_addr()
        .unwrap_or("unknown")
        .to_owned()
}

/// `POST /login`
pub(super) async fn login(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&req)?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let failed = |error: String, status: StatusCode, retry: Option<u64>| {
        let mut res = render(
            &LoginPage {
                nav: None,
                flash: None,
                error: Some(error),
                email: form.email.clone(),
                next: next.clone(),
            },
            status,
        )?;
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        Ok(res)
    };
    match state
        .accounts
        .login(&form.email, &form.password, &client_address(&req))
        .await
    {
        Ok((signed, token)) => Ok(signed_in(&req, &signed, &token, &next)),
        Err(AccountError::Throttled { retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            failed(
                format!(
                    "Too many failed attempts. Try again in {} minute(s).",
                    secs.div_ceil(60)
                ),
                StatusCode::TOO_MANY_REQUESTS,
                Some(secs),
            )
        }
        Err(AccountError::InvalidCredentials) => failed(
            "The email or the password is wrong.".to_owned(),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        Err(e) => Err(PageError::internal(&e)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /logout`
pub(super) async fn logout(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    state
        .accounts
        .logout(&signed.0.session)
        .await
        .map_err(|e| PageError::internal(&e))?;
    Ok(signed_out(&req))
}

/// `POST /logout/everywhere`
pub(super) async fn logout_everywhere(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    state
        .accounts
        .logout_everywhere(signed.0.user.id)
        .await
        .map_err(|e| PageError::internal(&e))?;
    Ok(signed_out(&req))
}

/// To `to`, with the new session's cookie (living as long as the session).
fn signed_in(
    req: &HttpRequest,
    signed: &maveraa_domain::SignedIn,
    token: &str,
    to: &str,
) -> HttpResponse {
    let max_age = (signed.session.expires_at - signed.session.created_at).num_seconds();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((
            header::SET_COOKIE,
            session_cookie(req, Some(token), u64::try_from(max_age).unwrap_or(0)),
        ))
        .finish()
}

fn signed_out(req: &HttpRequest) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((header::SET_COOKIE, session_cookie(req, None, 0)))
        .finish()
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    valid: bool,
    token: String,
    email: String,
    workspace_name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

/// `GET /setup?token=...`: the first account's form, from the link the
/// server printed.
pub(super) async fn setup_form(
    query: web::Query<TokenQuery>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    let token = query.token.clone().unwrap_or_default();
    let valid = !token.is_empty()
        && state
            .accounts
            .setup_token_valid(&token)
            .await
            .map_err(|e| PageError::internal(&e))?;
    render(
        &SetupPage {
            nav: None,
            flash: None,
            error: None,
            valid,
            token,
            email: String::new(),
            workspace_name: "My business".to_owned(),
        },
        if valid {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct SetupForm {
    token: String,
    email: String,
    password: String,
    #[serde(rename = "workspaceName")]
    workspace_name: String,
}

/// `POST /setup`
pub(super) async fn setup(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&req)?;
    let form = form.into_inner();
    match state
        .accounts
        .setup(
            &form.token,
            &form.email,
            &form.password,
            &form.workspace_name,
        )
        .await
    {
        Ok((signed, token)) => Ok(signed_in(&req, &signed, &token, "/settings/api-keys")),
        Err(AccountError::Validation(v)) => render(
            &SetupPage {
                nav: None,
                flash: None,
                error: Some(format!("{}: {}", v.field, v.message)),
                valid: true,
                token: form.token,
                email: form.email,
                workspace_name: form.workspace_name,
            },
            StatusCode::BAD_REQUEST,
        ),
        Err(AccountError::SetupUnavailable) => render(
            &SetupPage {
                nav: None,
                flash: None,
                error: None,
                valid: false,
                token: String::new(),
                email: String::new(),
                workspace_name: String::new(),
            },
            StatusCode::GONE,
        ),
        Err(e) => Err(PageError::internal(&e)),
    }
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
}

/// `GET /settings/password`
pub(super) async fn password_form(
    req: HttpRequest,
    signed: Signed,
) -> Result<HttpResponse, PageError> {
    render(
        &PasswordPage {
            nav: Some(Nav::of(&signed, "account")),
            flash: super::flash(&req),
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(rename = "currentPassword")]
    current: String,
    #[serde(rename = "newPassword")]
    new: String,
}

/// `POST /settings/password`
pub(super) async fn change_password(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let error = match state
        .accounts
        .change_password(&signed.0, &form.current, &form.new)
        .await
    {
        Ok(()) => return Ok(see_other("/settings/password?done=password")),
        Err(AccountError::InvalidCredentials) => "The current password is wrong.".to_owned(),
        Err(AccountError::Validation(v)) => format!("New password: {}", v.message),
        Err(e) => return Err(PageError::internal(&e)),
    };
    render(
        &PasswordPage {
            nav: Some(Nav::of(&signed, "account")),
            flash: None,
            error: Some(error),
            csrf: signed.0.session.csrf_token.clone(),
        },
        StatusCode::BAD_REQUEST,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct WorkspaceForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    workspace: String,
}

/// `POST /workspace`: shows another of the user's workspaces.
pub(super) async fn switch_workspace(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    form: web::Form<WorkspaceForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let id: maveraa_domain::WorkspaceId =
        form.workspace.parse().map_err(|_| PageError::NotFound)?;
    match state.accounts.switch_workspace(&signed.0, id).await {
        Ok(()) => Ok(see_other("/inbox")),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::internal(&e)),
    }
}
