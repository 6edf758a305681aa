//! `/api/public/contacts`: the reference API's contacts, plus item routes.

use std::future::ready;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use maveraa_domain::{Contact, ContactId, RepositoryError};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::json_writer;
use crate::wire::contacts::{
    CONTACT_CSV_HEADER, CONTACT_LIST_TAIL, CreateContactRequest, UpdateContactRequest,
    contact_batch_csv, contact_batch_json, contact_json, contact_list_head, contact_page_json,
    contact_query,
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
    if query.limit.is_none() {
        // Everything: streamed, whatever the workspace's size.
        let stream = state.contacts.stream(auth.0.workspace_id, &query).await?;
        let mut first = true;
        let body = streamed_body(
            contact_list_head(stream.total),
            stream.batches,
            move |batch| {
                let json = contact_batch_json(batch, first);
                first = false;
                json
            },
            CONTACT_LIST_TAIL,
        );
        return Ok(HttpResponse::Ok()
            .content_type(header::ContentType::json())
            .streaming(body));
    }
    let page = state.contacts.list(auth.0.workspace_id, &query).await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        contact_page_json(page, &query),
    ))
}

/// `GET /api/public/contacts/export`: every contact (of the `search` and
/// `label` filters, when given) as CSV, streamed.
pub async fn export(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut query = contact_query(req.query_string())?;
    (query.limit, query.offset) = (None, 0);
    let stream = state.contacts.stream(auth.0.workspace_id, &query).await?;
    let body = streamed_body(
        CONTACT_CSV_HEADER.to_vec(),
        stream.batches,
        contact_batch_csv,
        b"",
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"contacts.csv\"",
        ))
        .streaming(body))
}

/// Why a streamed body stopped before its end.
#[derive(Debug)]
struct StreamAborted;

impl std::fmt::Display for StreamAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stream's source failed")
    }
}

impl std::error::Error for StreamAborted {}

/// A response body: `head`, each batch as `write` writes it, then `tail`,
/// sent as the batches come (chunked). Once the headers are out a failure
/// cannot be a status any more: it is logged and the body ends in an
/// error, which makes actix cut the connection without the chunked
/// encoding's last chunk, so the client sees a broken body, never a short
/// but well-formed one.
fn streamed_body(
    head: Vec<u8>,
    batches: BoxStream<'static, Result<Vec<Contact>, RepositoryError>>,
    mut write: impl FnMut(&[Contact]) -> Vec<u8> + 'static,
    tail: &'static [u8],
) -> impl Stream<Item = Result<Bytes, StreamAborted>> + 'static {
    let body = batches.map(move |batch| match batch {
        Ok(batch) => Ok(Bytes::from(write(&batch))),
        Err(e) => {
            tracing::error!(error = %e, "a streamed contact list failed midway; its connection is cut");
            Err(StreamAborted)
        }
    });
    stream::once(ready(Ok(Bytes::from(head))))
        .chain(body)
        .chain(stream::once(ready(Ok(Bytes::from_static(tail)))))
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
