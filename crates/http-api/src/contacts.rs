//! `/api/public/contacts`: the reference API's contacts, plus item routes.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::ContactId;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::json_writer;
use crate::wire::contacts::{
    CreateContactRequest, UpdateContactRequest, contact_json, contact_page_json, contact_query,
};

/// An id from the path; one that is not an id of ours is simply not found.
fn contact_id(req: &HttpRequest) -> Result<ContactId, ApiError> {
    req.match_info()
        .get("id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("contact"))
}

/// `GET /api/public/contacts`
pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = contact_query(req.query_string())?;
    let page = state.contacts.list(auth.0.workspace_id, &query).await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        contact_page_json(page, &query),
    ))
}

/// `POST /api/public/contacts`
pub async fn create(
    auth: Authenticated,
    state: web::Data<ApiState>,
    body: ApiJson<CreateContactRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.0.try_into_domain()?;
    let contact = state.contacts.create(auth.0.workspace_id, new).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/public/contacts/{}", contact.id),
    ));
    Ok(json_writer::response(response, contact_json(&contact)))
}

/// `GET /api/public/contacts/{id}`
pub async fn get(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let contact = state
        .contacts
        .get(auth.0.workspace_id, contact_id(&req)?)
        .await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        contact_json(&contact),
    ))
}

/// `PATCH /api/public/contacts/{id}`
pub async fn update(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<UpdateContactRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = contact_id(&req)?;
    let patch = body.0.try_into_domain()?;
    let contact = state
        .contacts
        .update(auth.0.workspace_id, id, patch)
        .await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        contact_json(&contact),
    ))
}

/// `DELETE /api/public/contacts/{id}`
pub async fn delete(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .contacts
        .delete(auth.0.workspace_id, contact_id(&req)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
