//! `/api/public/contacts`: the reference API's contacts, plus item routes.

use std::future::ready;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use maveraa_domain::{
    Contact, ContactId, ImportAborted, ImportRow, ImportRows, OnDuplicate, RepositoryError,
};
use tokio::sync::mpsc;

use crate::ApiState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authenticated, encoded};
use crate::json_writer;
use crate::query;
use crate::wire::contact_import::{
    ImportFormat, ImportReportDoc, OnDuplicateDoc, ReadReport, RowReader, report_json,
};
use crate::wire::contacts::{
    CONTACT_CSV_HEADER, CONTACT_LIST_TAIL, ContactDoc, ContactListDoc, CreateContactRequest,
    UpdateContactRequest, contact_batch_csv, contact_batch_json, contact_json, contact_list_head,
    contact_page_json, contact_query,
};

/// An id from the path; one that is not an id of ours is simply not found.
fn contact_id(req: &HttpRequest) -> Result<ContactId, ApiError> {
    req.match_info()
        .get("id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("contact"))
}

/// `GET /api/public/contacts`
#[utoipa::path(
    get,
    path = "/api/public/contacts",
    tag = "Contacts",
    operation_id = "listContacts",
    summary = "List contacts",
    description = "Newest first. Without `limit`: every contact of the workspace that matches \
        the filters, streamed as it is read. With `limit`: one page, and `next`, the cursor of \
        the following page (send it back as `after` with the same `search` and `label`).",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "Page size, 1 to 1000; without it, every contact"),
        ("after" = Option<String>, Query,
            description = "The `next` of the previous page (needs `limit`; not with `offset`)"),
        ("offset" = Option<u64>, Query, description = "Contacts to skip (`after` is steadier)"),
        ("search" = Option<String>, Query, max_length = 200,
            description = "Case-insensitive part of the name; written like a number, part of the phone too"),
        ("label" = Option<String>, Query, description = "Case-insensitive exact label"),
    ),
    responses(
        (status = 200, description = "The contacts", body = ContactListDoc),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/public/contacts/export",
    tag = "Contacts",
    operation_id = "exportContacts",
    summary = "Export contacts as CSV",
    description = "Every contact (of the filters, when given), newest first, as RFC 4180 CSV \
        with a `name,phone,labels` header row, streamed; the import reads it back unchanged.",
    params(
        ("search" = Option<String>, Query, max_length = 200,
            description = "Case-insensitive part of the name (or of the phone)"),
        ("label" = Option<String>, Query, description = "Case-insensitive exact label"),
    ),
    responses(
        (status = 200, description = "The contacts as CSV", body = String,
            content_type = "text/csv",
            example = json!("name,phone,labels\r\nJane Smith,6289876543210,\"Lead, Website\"\r\n")),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/public/contacts",
    tag = "Contacts",
    operation_id = "createContact",
    summary = "Create a contact",
    request_body = CreateContactRequest,
    responses(
        (status = 201, description = "The contact", body = ContactDoc,
            headers(("Location" = String, description = "The contact's path"))),
        (status = 409, description = "`duplicate_contact`: the phone is another contact's; \
            `existingId` is that contact's `_id`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/public/contacts/{id}",
    tag = "Contacts",
    operation_id = "getContact",
    summary = "One contact",
    params(("id" = String, Path, description = "The contact's `_id`", example = "01a24927-5822-74d4-8e2d-67b255afb35c")),
    responses(
        (status = 200, description = "The contact", body = ContactDoc),
        (status = 404, description = "`not_found`: no such contact in your workspace", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    patch,
    path = "/api/public/contacts/{id}",
    tag = "Contacts",
    operation_id = "updateContact",
    summary = "Change a contact",
    description = "Any of `name`, `phone` and `labels`; a field not sent keeps its value.",
    params(("id" = String, Path, description = "The contact's `_id`", example = "01a24927-5822-74d4-8e2d-67b255afb35c")),
    request_body = UpdateContactRequest,
    responses(
        (status = 200, description = "The contact, changed", body = ContactDoc),
        (status = 404, description = "`not_found`: no such contact in your workspace", body = ErrorBody),
        (status = 409, description = "`duplicate_contact`: the phone is another contact's", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/api/public/contacts/{id}",
    tag = "Contacts",
    operation_id = "deleteContact",
    summary = "Delete a contact",
    params(("id" = String, Path, description = "The contact's `_id`", example = "01a24927-5822-74d4-8e2d-67b255afb35c")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such contact in your workspace", body = ErrorBody),
    )
)]
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

/// Rows handed to storage at a time: one statement each.
const IMPORT_BATCH_ROWS: usize = 5000;

/// Most rows one import takes (an import is one transaction).
const MAX_IMPORT_ROWS: u64 = 2_000_000;

/// How long an import waits for the client's next bytes.
const IMPORT_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// `POST /api/public/contacts/import?onDuplicate=skip|update|error`: CSV or
/// NDJSON read as it arrives and written in batches, in one transaction.
/// Invalid rows are reported and skipped; a body that breaks off or cannot
/// be read on writes nothing.
#[utoipa::path(
    post,
    path = "/api/public/contacts/import",
    tag = "Contacts",
    operation_id = "importContacts",
    summary = "Import contacts from CSV or NDJSON",
    description = "Any size, read as it arrives, in one transaction. CSV: a header row naming \
        `name`, `phone` and optionally `labels` (any order and case; other columns are ignored \
        and named in `ignoredColumns`). NDJSON: one `createContact` body per line. Each row is \
        checked as `createContact` checks a body; a row that fails is reported and left out.",
    params(
        ("onDuplicate" = Option<OnDuplicateDoc>, Query,
            description = "What a row whose phone the workspace has does: `skip` (the default), \
                `update` (the stored contact takes the row's name and labels) or `error`"),
    ),
    request_body(
        description = "UTF-8; a spreadsheet's byte order mark is skipped",
        content(
            (String = "text/csv",
                example = json!("name,phone,labels\nJane Smith,6289876543210,\"Lead, Website\"\nJohn Doe,6281234567890,VIP\n")),
            (String = "application/x-ndjson",
                example = json!("{\"name\": \"Jane Smith\", \"phone\": \"6289876543210\", \"labels\": \"Lead, Website\"}\n{\"name\": \"John Doe\", \"phone\": \"6281234567890\"}\n")),
        )
    ),
    responses(
        (status = 200, description = "What the import did", body = ImportReportDoc),
        (status = 400, description = "`validation_failed` on `body`: the body cannot be read on \
            (a quote never closed, a field over 64 KiB, a CSV without a header or without its \
            `name` or `phone` column), nothing written; or on `onDuplicate`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body stopped arriving for 30 s; \
            nothing written", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: more than 2,000,000 rows; split the \
            file. Nothing written", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither CSV nor NDJSON, another \
            charset than UTF-8, or compressed", body = ErrorBody),
    )
)]
pub async fn import(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(refused) = encoded(&req) {
        return Err(refused);
    }
    let format = ImportFormat::from_content_type(
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let mut on_duplicate = OnDuplicate::default();
    for (key, value) in query::pairs(req.query_string())? {
        if key == "onDuplicate" {
            on_duplicate = OnDuplicate::parse("onDuplicate", &value)?;
        }
    }
    let (tally, report) =
        run_import(&state, auth.0.workspace_id, format, on_duplicate, payload).await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        report_json(&tally, report),
    ))
}

/// Imports the rows of `body` (in `format`) into `workspace`: the body is
/// read in batches while storage writes the last, in one transaction;
/// nothing is written when either fails. The dashboard's import uses it
/// too, with a form's file.
///
/// # Errors
/// The reading's or the storage's failure.
pub(crate) async fn run_import<S, E>(
    state: &ApiState,
    workspace: maveraa_domain::WorkspaceId,
    format: ImportFormat,
    on_duplicate: OnDuplicate,
    body: S,
) -> Result<(maveraa_domain::ImportTally, ReadReport), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // Two batches in flight: the body is read while the last is written.
    let (tx, rx) = mpsc::channel(2);
    let rows: ImportRows = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    })
    .boxed();
    let reading = std::pin::pin!(read_import(format, body, tx));
    let writing = std::pin::pin!(state.contacts.import(workspace, on_duplicate, rows));
    let (read, written) = match futures_util::future::select(reading, writing).await {
        futures_util::future::Either::Left((read, writing)) => (read, writing.await),
        // Storage ended first: it failed (the reading is dropped with the
        // rest of the body), or took the last batch as the reading ended.
        futures_util::future::Either::Right((written, reading)) => match written {
            Err(e) => return Err(e.into()),
            Ok(written) => (reading.await, Ok(written)),
        },
    };
    let tally = written?;
    let report = read?;
    let tally = tally.ok_or_else(|| ApiError::internal(&"the import's rows broke off"))?;
    Ok((tally, report))
}
/// Reads the body into batches of rows for storage. On a failure it sends
/// [`ImportAborted`], so that storage rolls back, and answers the error.
async fn read_import<S, E>(
    format: ImportFormat,
    mut payload: S,
    tx: mpsc::Sender<Result<Vec<ImportRow>, ImportAborted>>,
) -> Result<ReadReport, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut reader = RowReader::new(format);
    let mut report = ReadReport::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH_ROWS);
    let mut rows = 0u64;
    let result = async {
        loop {
            let chunk = match actix_web::rt::time::timeout(IMPORT_IDLE, payload.next()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        actix_web::http::StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the body stalled for {} s; nothing was imported",
                            IMPORT_IDLE.as_secs()
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ApiError::new(
                        actix_web::http::StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("cannot read the body ({e}); nothing was imported"),
                    ));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            reader.feed(&chunk, &mut batch, &mut report)?;
            if batch.len() >= IMPORT_BATCH_ROWS {
                rows += batch.len() as u64;
                send(&tx, &mut batch, rows).await?;
            }
        }
        reader.finish(&mut batch, &mut report)?;
        rows += batch.len() as u64;
        send(&tx, &mut batch, rows).await
    }
    .await;
    if result.is_err() {
        // Storage may be gone already; then there is nothing to roll back.
        let _ = tx.send(Err(ImportAborted)).await;
    }
    result.map(|()| report)
}

/// Hands `batch` to storage (emptying it), unless past the row limit.
async fn send(
    tx: &mpsc::Sender<Result<Vec<ImportRow>, ImportAborted>>,
    batch: &mut Vec<ImportRow>,
    rows: u64,
) -> Result<(), ApiError> {
    if rows > MAX_IMPORT_ROWS {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("an import takes at most {MAX_IMPORT_ROWS} rows; split the file"),
        ));
    }
    if batch.is_empty() {
        return Ok(());
    }
    let full = std::mem::replace(batch, Vec::with_capacity(IMPORT_BATCH_ROWS));
    // Storage stopped taking rows: it failed, and says why itself.
    tx.send(Ok(full))
        .await
        .map_err(|_| ApiError::unavailable(&"storage stopped the import"))
}
