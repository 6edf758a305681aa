//! The rows of `POST /api/public/contacts/import` (CSV or NDJSON) as they
//! arrive, each checked as a create's body is, and the import's report.

use maveraa_domain::{ImportRow, ImportTally, ValidationError};

use crate::error::ApiError;
use crate::json_writer;
use crate::wire::contacts::{CreateContactRequest, LabelsInput};
use crate::wire::csv_reader::{CsvError, CsvReader, MAX_FIELD_BYTES, Record};

/// Row errors given in full in the report; the rest are counted.
pub const ERRORS_KEPT: usize = 100;

/// The body's format, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// `text/csv`: a header row naming `name`, `phone` and `labels`.
    Csv,
    /// `application/x-ndjson`: a JSON object per line, as a create's body.
    Ndjson,
}

impl ImportFormat {
    /// The format a `Content-Type` names, UTF-8 (the default, or said).
    ///
    /// # Errors
    /// `415` for another type or charset, or none.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let unsupported = || {
            ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the contacts as CSV (Content-Type: text/csv) or NDJSON \
                 (Content-Type: application/x-ndjson), in UTF-8",
            )
        };
        let ct = content_type.ok_or_else(unsupported)?;
        let mut parts = ct.split(';');
        let format = match parts
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "text/csv" => Self::Csv,
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Self::Ndjson,
            _ => return Err(unsupported()),
        };
        if crate::extract::declares_other_charset(parts) {
            return Err(unsupported());
        }
        Ok(format)
    }
}

/// A row the import could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Its row: the line it starts on (a CSV's header is line 1).
    pub row: u64,
    /// The field at fault, as a create names it (`body` for a row that
    /// cannot be read at all).
    pub field: String,
    /// `validation_failed`, `malformed_row` or `duplicate_contact`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

/// What reading the body found besides the rows it handed on.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// The first [`ERRORS_KEPT`] row errors, in row order.
    pub errors: Vec<RowError>,
    /// Every row refused while reading.
    pub failed: u64,
    /// The header's columns that are not contact fields, ignored.
    pub ignored_columns: Vec<String>,
}

impl ReadReport {
    fn refuse(&mut self, row: u64, field: &str, code: &'static str, message: String) {
        self.failed += 1;
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(RowError {
                row,
                field: field.to_owned(),
                code,
                message,
            });
        }
    }

    fn invalid(&mut self, row: u64, e: ValidationError) {
        self.refuse(row, &e.field, "validation_failed", e.message);
    }
}

/// Turns the body's bytes into rows, whatever its format.
#[derive(Debug)]
pub enum RowReader {
    /// CSV, and the header's column of each contact field once read.
    Csv {
        /// The record reader.
        reader: CsvReader,
        /// The columns of `name`, `phone` and `labels`, once the header
        /// has been read.
        columns: Option<Columns>,
    },
    /// NDJSON: the current line's bytes and the lines seen.
    Ndjson {
        /// The line being read.
        line: Vec<u8>,
        /// Lines completed so far.
        lines: u64,
    },
}

/// Where each contact field is in a CSV's records.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    name: usize,
    phone: usize,
    labels: Option<usize>,
    count: usize,
}

impl RowReader {
    /// A reader for `format`.
    pub fn new(format: ImportFormat) -> Self {
        match format {
            ImportFormat::Csv => Self::Csv {
                reader: CsvReader::default(),
                columns: None,
            },
            ImportFormat::Ndjson => Self::Ndjson {
                line: Vec::new(),
                lines: 0,
            },
        }
    }

    /// Reads `chunk`: each valid row goes to `rows`, each invalid one to
    /// `report`.
    ///
    /// # Errors
    /// `400` when the body cannot be read on.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        rows: &mut Vec<ImportRow>,
        report: &mut ReadReport,
    ) -> Result<(), ApiError> {
        match self {
            Self::Csv { reader, columns } => {
                let mut fatal = None;
                reader
                    .feed(chunk, |r| take_record(r, columns, rows, report, &mut fatal))
                    .map_err(csv_fatal)?;
                fatal.map_or(Ok(()), Err)
            }
            Self::Ndjson { line, lines } => {
                for part in chunk.split_inclusive(|b| *b == b'\n') {
                    line.extend_from_slice(part);
                    if part.ends_with(b"\n") {
                        *lines += 1;
                        ndjson_line(*lines, line, rows, report);
                        line.clear();
                    } else if line.len() > MAX_FIELD_BYTES {
                        return Err(ApiError::validation(
                            "body",
                            format!("line {} is longer than {MAX_FIELD_BYTES} bytes", *lines + 1),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Ends the body: reads a last row without a line break, and checks
    /// that a CSV had its header.
    ///
    /// # Errors
    /// `400` when the body ends inside a quoted field or, for a CSV,
    /// before its header.
    pub fn finish(
        &mut self,
        rows: &mut Vec<ImportRow>,
        report: &mut ReadReport,
    ) -> Result<(), ApiError> {
        match self {
            Self::Csv { reader, columns } => {
                let mut fatal = None;
                reader
                    .finish(|r| take_record(r, columns, rows, report, &mut fatal))
                    .map_err(csv_fatal)?;
                if let Some(e) = fatal {
                    return Err(e);
                }
                if columns.is_none() {
                    return Err(ApiError::validation(
                        "body",
                        "the CSV is empty: it needs a header row (name,phone,labels)",
                    ));
                }
                Ok(())
            }
            Self::Ndjson { line, lines } => {
                if !line.is_empty() {
                    *lines += 1;
                    ndjson_line(*lines, line, rows, report);
                    line.clear();
                }
                Ok(())
            }
        }
    }
}

/// Reads a CSV record unless an earlier one stopped the reading; keeps
/// the first error that does.
fn take_record(
    r: Record<'_>,
    columns: &mut Option<Columns>,
    rows: &mut Vec<ImportRow>,
    report: &mut ReadReport,
    fatal: &mut Option<ApiError>,
) {
    if fatal.is_none()
        && let Err(e) = csv_record(r, columns, rows, report)
    {
        *fatal = Some(e);
    }
}

fn csv_fatal(e: CsvError) -> ApiError {
    ApiError::validation("body", e.to_string())
}

/// A CSV record: the header when none has been read, a row otherwise.
fn csv_record(
    r: Record<'_>,
    columns: &mut Option<Columns>,
    rows: &mut Vec<ImportRow>,
    report: &mut ReadReport,
) -> Result<(), ApiError> {
    let Some(cols) = *columns else {
        *columns = Some(header(r, report)?);
        return Ok(());
    };
    if r.len() > cols.count {
        report.refuse(
            r.line,
            "body",
            "malformed_row",
            format!("the row has {} fields, the header {}", r.len(), cols.count),
        );
        return Ok(());
    }
    // A missing trailing cell reads as empty.
    let mut cell = |i: usize, field: &str| -> Result<Option<String>, ()> {
        match r.field(i) {
            None | Some(b"") => Ok(None),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) if s.trim().is_empty() => Ok(None),
                Ok(s) => Ok(Some(s.to_owned())),
                Err(_) => {
                    report.refuse(
                        r.line,
                        field,
                        "malformed_row",
                        "is not valid UTF-8".to_owned(),
                    );
                    Err(())
                }
            },
        }
    };
    let (Ok(name), Ok(phone), Ok(labels)) = (
        cell(cols.name, "name"),
        cell(cols.phone, "phone"),
        cols.labels.map_or(Ok(None), |i| cell(i, "labels")),
    ) else {
        return Ok(());
    };
    let request = CreateContactRequest::new(name, phone, labels.map(LabelsInput::Text));
    match request.try_into_domain() {
        Ok(contact) => rows.push(ImportRow {
            row: r.line,
            contact,
        }),
        Err(e) => report.invalid(r.line, e),
    }
    Ok(())
}

/// The header row: where `name`, `phone` and `labels` are (any order, any
/// case; a UTF-8 byte order mark, as spreadsheets write, is skipped).
fn header(r: Record<'_>, report: &mut ReadReport) -> Result<Columns, ApiError> {
    let (mut name, mut phone, mut labels) = (None, None, None);
    for i in 0..r.len() {
        let raw = r.field(i).unwrap_or_default();
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let title = String::from_utf8_lossy(raw).trim().to_owned();
        let slot = match title.to_ascii_lowercase().as_str() {
            "name" => &mut name,
            "phone" => &mut phone,
            "labels" => &mut labels,
            _ => {
                report.ignored_columns.push(title);
                continue;
            }
        };
        if slot.replace(i).is_some() {
            return Err(ApiError::validation(
                "body",
                format!("the header row names the column {title} twice"),
            ));
        }
    }
    let missing = |what: &str| {
        ApiError::validation(
            "body",
            format!(
                "the header row has no {what} column: the first row must name the columns, name,phone,labels"
            ),
        )
    };
    Ok(Columns {
        name: name.ok_or_else(|| missing("name"))?,
        phone: phone.ok_or_else(|| missing("phone"))?,
        labels,
        count: r.len(),
    })
}

/// An NDJSON line: a create's JSON body. Blank lines are skipped.
fn ndjson_line(row: u64, line: &[u8], rows: &mut Vec<ImportRow>, report: &mut ReadReport) {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return,
        // serde would read an array into the fields by position.
        Some(b'{') => {}
        Some(_) => {
            report.refuse(
                row,
                "body",
                "malformed_row",
                "is not a JSON object".to_owned(),
            );
            return;
        }
    }
    let request: CreateContactRequest = match serde_json::from_slice(line) {
        Ok(request) => request,
        Err(e) => {
            let why = e.to_string();
            let why = why.split(" at line ").next().unwrap_or(&why).to_owned();
            // As a create's body: a field it does not take is named.
            if let Some(rest) = why.strip_prefix("unknown field `")
                && let Some((name, expected)) = rest.split_once('`')
            {
                let expected = expected.trim_start_matches(", ");
                report.refuse(
                    row,
                    name,
                    "validation_failed",
                    format!("unknown field {name}: {expected}"),
                );
                return;
            }
            report.refuse(
                row,
                "body",
                "malformed_row",
                format!("not a JSON object of name, phone and labels: {why}"),
            );
            return;
        }
    };
    match request.try_into_domain() {
        Ok(contact) => rows.push(ImportRow { row, contact }),
        Err(e) => report.invalid(row, e),
    }
}

/// The import's answer as [`report_json`] writes it, for the OpenAPI
/// document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ImportReport, rename_all = "camelCase", description = "What an import did.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `report_json`'s JSON"
)]
pub(crate) struct ImportReportDoc {
    /// Contacts created.
    created: u64,
    /// Stored contacts given a row's name and labels (`onDuplicate=update`).
    updated: u64,
    /// Rows whose phone the workspace had (`onDuplicate=skip`), or
    /// identical to the stored contact.
    skipped: u64,
    /// Rows refused, all of them (`errors` holds the first 100).
    failed: u64,
    /// The first 100 refused rows, in row order.
    errors: Vec<ImportRowErrorDoc>,
    /// Whether `errors` leaves some of the `failed` rows out.
    errors_truncated: bool,
    /// The header's columns that are not contact fields, ignored.
    ignored_columns: Vec<String>,
}

/// `onDuplicate`'s values, for the OpenAPI document only (the domain's
/// `OnDuplicate::parse` reads them).
#[derive(Debug, utoipa::ToSchema)]
#[schema(
    as = OnDuplicate,
    rename_all = "lowercase",
    description = "What an import's row whose phone the workspace has does."
)]
#[expect(
    dead_code,
    reason = "documentation only: describes `OnDuplicate::parse`'s values"
)]
pub(crate) enum OnDuplicateDoc {
    Skip,
    Update,
    Error,
}

/// A row the import refused, for the OpenAPI document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ImportRowError, description = "A row the import refused.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `report_json`'s JSON"
)]
pub(crate) struct ImportRowErrorDoc {
    /// The line the row starts on (a CSV's header is line 1).
    #[schema(example = 1207)]
    row: u64,
    /// The field at fault (`body` for a row that cannot be read).
    #[schema(example = "phone")]
    field: String,
    /// `validation_failed`, `malformed_row` or `duplicate_contact`.
    #[schema(example = "validation_failed")]
    code: String,
    /// What is wrong, for a person.
    message: String,
}

/// The import's answer: `{"created", "updated", "skipped", "failed",
/// "errors": [{"row", "field", "code", "message"}], "errorsTruncated",
/// "ignoredColumns"}`, the errors of reading and of storage merged in row
/// order.
pub fn report_json(tally: &ImportTally, report: ReadReport) -> Vec<u8> {
    let duplicates = tally.duplicate_rows.iter().map(|&row| RowError {
        row,
        field: "phone".to_owned(),
        code: "duplicate_contact",
        message: "a contact with this phone number already exists".to_owned(),
    });
    let mut errors: Vec<RowError> = report.errors.into_iter().chain(duplicates).collect();
    errors.sort_by_key(|e| e.row);
    errors.truncate(ERRORS_KEPT);
    let failed = report.failed + tally.duplicates;
    let mut out = Vec::with_capacity(256 + errors.len() * 128);
    out.push(b'{');
    for (key, value) in [
        ("created", tally.created),
        ("updated", tally.updated),
        ("skipped", tally.skipped),
        ("failed", failed),
    ] {
        json_writer::key(&mut out, key);
        json_writer::uint(&mut out, value);
        out.push(b',');
    }
    json_writer::key(&mut out, "errors");
    json_writer::array(&mut out, &errors, |out, e| {
        out.push(b'{');
        json_writer::key(out, "row");
        json_writer::uint(out, e.row);
        out.push(b',');
        json_writer::key(out, "field");
        json_writer::string(out, &e.field);
        out.push(b',');
        json_writer::key(out, "code");
        json_writer::string(out, e.code);
        out.push(b',');
        json_writer::key(out, "message");
        json_writer::string(out, &e.message);
        out.push(b'}');
    });
    out.push(b',');
    json_writer::key(&mut out, "errorsTruncated");
    out.extend_from_slice(if failed > errors.len() as u64 {
        b"true"
    } else {
        b"false"
    });
    out.push(b',');
    json_writer::key(&mut out, "ignoredColumns");
    json_writer::array(&mut out, &report.ignored_columns, |out, c| {
        json_writer::string(out, c)
    });
    out.push(b'}');
    out
}
