//! Members: add, change a role, remove (owners only).

use super::*;

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
pub(in crate::dashboard) async fn members(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    members_page(&req, &signed, &state, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct MemberForm {
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
pub(in crate::dashboard) async fn add_member(
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
pub(in crate::dashboard) struct RoleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    role: String,
}

fn user_id(path: &str) -> Result<UserId, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

/// `POST /members/{id}/role`
pub(in crate::dashboard) async fn change_role(
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
pub(in crate::dashboard) async fn confirm_remove_member(
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
pub(in crate::dashboard) async fn remove_member(
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
