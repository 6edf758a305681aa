//! Contacts: search, paging, create, edit, delete, CSV import and export.

use super::*;

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
pub(in crate::dashboard) struct ContactsQuery {
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
pub(in crate::dashboard) async fn contacts(
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
pub(in crate::dashboard) struct ContactForm {
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
pub(in crate::dashboard) async fn create_contact(
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
pub(in crate::dashboard) async fn contact(
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
pub(in crate::dashboard) async fn update_contact(
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
pub(in crate::dashboard) async fn confirm_delete_contact(
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
pub(in crate::dashboard) async fn delete_contact(
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
pub(in crate::dashboard) async fn export_contacts(
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
pub(in crate::dashboard) async fn import_contacts(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    mut form: actix_multipart::Multipart,
) -> Result<HttpResponse, PageError> {
    crate::dashboard::same_origin(&req)?;
    let mut csrf = String::new();
    let mut on_duplicate = OnDuplicate::default();
    let mut file: Option<Vec<u8>> = None;
    let mut on_duplicate_invalid = false;
    // Fields in the form's order: the CSRF token and the choice come first.
    let mut unreadable = false;
    'fields: while let Some(field) = form.next().await {
        let Ok(mut field) = field else {
            unreadable = true;
            break;
        };
        let name = field.name().unwrap_or_default().to_owned();
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                unreadable = true;
                break 'fields;
            };
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
                match OnDuplicate::parse("onDuplicate", &String::from_utf8_lossy(&value)) {
                    Ok(choice) => on_duplicate = choice,
                    Err(_) => on_duplicate_invalid = true,
                }
            }
            "file" => file = Some(value),
            _ => {}
        }
    }
    // A body that is not a readable form (cut short, malformed) is the
    // sender's mistake, said as such; nothing was imported.
    let refuse = |why: &str| {
        let why = why.to_owned();
        async {
            contacts_page(
                &signed,
                &state,
                &ContactsQuery::default(),
                None,
                Some(why),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    if unreadable {
        return refuse("The upload could not be read; choose the file and import it again.").await;
    }
    signed.check(&req, &csrf)?;
    if on_duplicate_invalid {
        return refuse("Choose what to do with contacts that exist already.").await;
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return refuse("Choose a CSV file to import.").await;
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
