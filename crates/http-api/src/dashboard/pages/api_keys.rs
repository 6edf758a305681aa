//! API keys: list, create (shown once), revoke after a confirmation.

use super::*;

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
pub(in crate::dashboard) async fn api_keys(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, PageError> {
    api_keys_page(&signed, &state, flash(&req), None, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct NewKeyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: Option<String>,
}

/// `POST /settings/api-keys`: the page with the new key, shown once (not
/// a redirect: the key never travels in a URL).
pub(in crate::dashboard) async fn create_api_key(
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
pub(in crate::dashboard) async fn confirm_revoke(
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
pub(in crate::dashboard) async fn revoke_api_key(
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
