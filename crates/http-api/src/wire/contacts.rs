//! Contacts as the reference API shows them (written by hand: a full list
//! is the API's largest body), their request bodies and list parameters.

use std::fmt;

use maveraa_domain::{
    Contact, ContactName, ContactPage, ContactPatch, ContactQuery, Label, Labels, NewContact,
    PhoneNumber, ValidationError,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use utoipa::ToSchema;

use crate::cursor::{self, Scope};
use crate::error::ApiError;
use crate::json_writer;
use crate::query;
use crate::timefmt::Rfc3339;

/// Appends a contact as the reference shows it on the wire:
/// `{"_id", "name", "phone", "labels", "createdAt"}` (`createdAt` RFC 3339
/// in UTC, whole seconds).
fn write_contact(out: &mut Vec<u8>, c: &Contact) {
    let mut id = uuid::Uuid::encode_buffer();
    out.extend_from_slice(b"{\"_id\":\"");
    out.extend_from_slice(
        c.id.as_uuid()
            .as_hyphenated()
            .encode_lower(&mut id)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",");
    json_writer::key(out, "name");
    json_writer::string(out, c.name.as_str());
    out.push(b',');
    json_writer::key(out, "phone");
    json_writer::string(out, c.phone.as_str());
    out.push(b',');
    json_writer::key(out, "labels");
    json_writer::array(out, c.labels.iter(), json_writer::string);
    out.push(b',');
    json_writer::key(out, "createdAt");
    json_writer::string(out, Rfc3339::secs(&c.created_at).as_str());
    out.push(b'}');
}

/// A contact as [`write_contact`] writes it, for the OpenAPI document only
/// (the answers are written by hand, for speed).
#[derive(Debug, ToSchema)]
#[schema(as = Contact, description = "A contact.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `write_contact`'s JSON"
)]
pub(crate) struct ContactDoc {
    /// The contact's id.
    #[schema(rename = "_id", example = "01a24927-5822-74d4-8e2d-67b255afb35c")]
    id: String,
    /// Full name.
    #[schema(example = "Jane Smith")]
    name: String,
    /// Digits with the country code.
    #[schema(example = "6289876543210")]
    phone: String,
    /// Labels, in the order given.
    #[schema(example = json!(["Lead", "Website"]))]
    labels: Vec<String>,
    /// When it was created: RFC 3339 in UTC, whole seconds.
    #[schema(rename = "createdAt", format = DateTime, example = "2026-12-06T02:20:44Z")]
    created_at: String,
}

/// The answer of `GET /api/public/contacts` as [`contact_page_json`] and
/// the streamed list write it, for the OpenAPI document only.
#[derive(Debug, ToSchema)]
#[schema(as = ContactList, description = "Contacts: every one, or a page (`next` comes only with `limit`).")]
#[expect(
    dead_code,
    reason = "documentation only: describes `contact_page_json`'s JSON"
)]
pub(crate) struct ContactListDoc {
    /// Every contact matching the filters, not only this page's.
    total: u64,
    /// Newest first.
    #[schema(value_type = Vec<ContactDoc>)]
    contacts: Vec<ContactDoc>,
    /// Only with `limit`: the cursor of the next page (send it as `after`),
    /// `null` on the last page.
    #[schema(required = false, value_type = Option<String>, example = "AWNH0n")]
    next: Option<String>,
}

/// One contact's JSON, the answer of the item routes and of `POST`.
pub fn contact_json(c: &Contact) -> Vec<u8> {
    let mut body = Vec::with_capacity(CONTACT_JSON_BYTES);
    write_contact(&mut body, c);
    body
}

/// The answer to `GET /api/public/contacts`: `{"total", "contacts"}`, and
/// for a page asked for with `limit`, `"next"`: the cursor of the next page
/// or `null` on the last. Takes the page to free it as soon as its JSON is
/// written.
pub fn contact_page_json(page: ContactPage, query: &ContactQuery) -> Vec<u8> {
    // Sized up front: growing by doubling would hold up to three copies of
    // a 10,000-contact body at once.
    let mut body = Vec::with_capacity(64 + page.contacts.len() * CONTACT_JSON_BYTES);
    body.extend_from_slice(b"{");
    json_writer::key(&mut body, "total");
    json_writer::uint(&mut body, page.total);
    body.push(b',');
    json_writer::key(&mut body, "contacts");
    json_writer::array(&mut body, &page.contacts, write_contact);
    // The whole list (no `limit`) has no next page, and keeps the
    // reference's two fields.
    if query.limit.is_some() {
        body.push(b',');
        json_writer::key(&mut body, "next");
        match &page.next {
            Some(next) => {
                json_writer::string(&mut body, &contact_scope(query).encode_contact(next))
            }
            None => body.extend_from_slice(b"null"),
        }
    }
    body.push(b'}');
    body
}

/// The start of the streamed list, `{"total":N,"contacts":[`: the same
/// bytes as [`contact_page_json`] writes before the first contact.
pub fn contact_list_head(total: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(b"{");
    json_writer::key(&mut head, "total");
    json_writer::uint(&mut head, total);
    head.push(b',');
    json_writer::key(&mut head, "contacts");
    head.push(b'[');
    head
}

/// The end of the streamed list.
pub const CONTACT_LIST_TAIL: &[u8] = b"]}";

/// A batch of the streamed list: its contacts, comma-separated, with a
/// comma before the first unless it is the list's `first`.
pub fn contact_batch_json(batch: &[Contact], first: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * CONTACT_JSON_BYTES);
    for (i, c) in batch.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        write_contact(&mut out, c);
    }
    out
}

/// The export's header row. Lines end in CRLF, as RFC 4180 writes them.
pub const CONTACT_CSV_HEADER: &[u8] = b"name,phone,labels\r\n";

/// A batch of the export: a CSV row per contact, `name,phone,labels`, the
/// labels in one cell as the reference writes them (`Lead, Website`).
pub fn contact_batch_csv(batch: &[Contact]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * 64);
    let mut labels = String::new();
    for c in batch {
        csv_field(&mut out, c.name.as_str());
        out.push(b',');
        csv_field(&mut out, c.phone.as_str());
        out.push(b',');
        labels.clear();
        for (i, label) in c.labels.iter().enumerate() {
            if i > 0 {
                labels.push_str(", ");
            }
            labels.push_str(label);
        }
        csv_field(&mut out, &labels);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Appends `s` as an RFC 4180 field: in quotes, its quotes doubled, when it
/// holds a comma, quote or line break, or starts or ends with a space (which
/// some readers trim); as it is otherwise. Values are written as stored: a
/// name starting with `=` or `+` is not escaped against spreadsheet formula
/// injection, since the export must read back unchanged.
fn csv_field(out: &mut Vec<u8>, s: &str) {
    let quote = s.starts_with(' ')
        || s.ends_with(' ')
        || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if !quote {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for part in s.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// The cursor of the page after `page` (read with `query`), if any.
pub fn next_cursor(query: &ContactQuery, page: &maveraa_domain::ContactPage) -> Option<String> {
    page.next
        .as_ref()
        .map(|next| contact_scope(query).encode_contact(next))
}

/// The scope of the contact list's cursors: its filters.
fn contact_scope(query: &ContactQuery) -> Scope {
    Scope::contacts(query.search.as_deref(), query.label.as_deref())
}

/// About the size of one contact's JSON, to size bodies up front.
const CONTACT_JSON_BYTES: usize = 160;

/// `labels` as the reference sends it (`"Lead, Website"`) or as an array.
#[derive(Debug)]
pub enum LabelsInput {
    /// Comma-separated.
    Text(String),
    /// One label per element.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for LabelsInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelsInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comma-separated string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LabelsInput, E> {
                Ok(LabelsInput::Text(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LabelsInput, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(LabelsInput::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl utoipa::PartialSchema for LabelsInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        OneOfBuilder::new()
            .item(string().description(Some("comma-separated, as the reference sends it")))
            .item(ArrayBuilder::new().items(string()))
            .description(Some(
                "Labels: trimmed, empty ones dropped, duplicates (ignoring case) removed; \
                 at most 50 of at most 50 characters.",
            ))
            .examples(["Lead, Website"])
            .into()
    }
}

impl ToSchema for LabelsInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "Labels".into()
    }
}

impl LabelsInput {
    fn parse(&self) -> Result<Labels, ValidationError> {
        match self {
            Self::Text(t) => Labels::parse_csv("labels", t),
            Self::List(parts) => {
                // Name the label at fault by its place in the array.
                for (i, part) in parts.iter().enumerate() {
                    if !part.trim().is_empty() {
                        Label::parse(&format!("labels[{i}]"), part)?;
                    }
                }
                Labels::from_parts("labels", parts.iter().map(String::as_str))
            }
        }
    }
}

/// `POST` body. Fields are optional here so that a missing one is reported
/// by name, not as a parse failure.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A new contact.", example = json!({"name": "Jane Smith", "phone": "6289876543210", "labels": "Lead, Website"}))]
pub struct CreateContactRequest {
    /// Full name: trimmed, 1 to 200 characters.
    #[schema(required = true, value_type = String)]
    name: Option<String>,
    /// Phone number with its country code (`6289876543210`,
    /// `+62 898-7654-3210`); stored as digits, unique in the workspace.
    #[schema(required = true, value_type = String)]
    phone: Option<String>,
    labels: Option<LabelsInput>,
}

impl CreateContactRequest {
    /// A body of these fields, as an import's row gives them.
    pub fn new(name: Option<String>, phone: Option<String>, labels: Option<LabelsInput>) -> Self {
        Self {
            name,
            phone,
            labels,
        }
    }

    /// The domain's new contact.
    ///
    /// # Errors
    /// A [`ValidationError`] on `name`, `phone` or `labels` (`labels[i]`
    /// for an element of an array).
    pub fn try_into_domain(self) -> Result<NewContact, ValidationError> {
        let name = self
            .name
            .ok_or_else(|| ValidationError::new("name", "is required"))?;
        let phone = self
            .phone
            .ok_or_else(|| ValidationError::new("phone", "is required"))?;
        Ok(NewContact {
            name: ContactName::parse("name", &name)?,
            phone: PhoneNumber::parse("phone", &phone)?,
            labels: self
                .labels
                .as_ref()
                .map(LabelsInput::parse)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH` body: every field optional; `labels: null` clears the labels.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A change of a contact: any of its fields; a field not sent keeps its value.", example = json!({"name": "Jane S.", "labels": ["VIP"]}))]
pub struct UpdateContactRequest {
    /// Full name: trimmed, 1 to 200 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    name: Option<Option<String>>,
    /// Phone number with its country code.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    phone: Option<Option<String>>,
    /// `null` clears the labels.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<LabelsInput>)]
    labels: Option<Option<LabelsInput>>,
}

impl UpdateContactRequest {
    /// The domain's change of a contact.
    ///
    /// # Errors
    /// A [`ValidationError`] on `name`, `phone` or `labels`; `null` is
    /// refused for `name` and `phone`.
    pub fn try_into_domain(self) -> Result<ContactPatch, ValidationError> {
        let not_null = |field: &str| ValidationError::new(field, "must not be null");
        Ok(ContactPatch {
            name: match self.name {
                None => None,
                Some(None) => return Err(not_null("name")),
                Some(Some(n)) => Some(ContactName::parse("name", &n)?),
            },
            phone: match self.phone {
                None => None,
                Some(None) => return Err(not_null("phone")),
                Some(Some(p)) => Some(PhoneNumber::parse("phone", &p)?),
            },
            labels: match self.labels {
                None => None,
                Some(None) => Some(Labels::default()),
                Some(Some(l)) => Some(l.parse()?),
            },
        })
    }
}

/// Longest `search` accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// Reads `limit`, `offset`, `after`, `search` and `label` from a query
/// string (`Authenticated` has refused any other parameter the route does
/// not take).
///
/// # Errors
/// `400 validation_failed` on the parameter at fault: on `after` when it
/// is not a cursor of the contact list with these filters, or comes with
/// `offset` or without `limit`.
pub fn contact_query(query_string: &str) -> Result<ContactQuery, ApiError> {
    let mut query = ContactQuery::default();
    let mut after = None;
    let mut offset_given = false;
    for (key, value) in query::pairs(query_string)? {
        match key.as_str() {
            // Blank counts as absent: `after=${next ?? ""}` reads the
            // first page.
            "after" if value.trim().is_empty() => after = None,
            "after" => after = Some(value),
            "limit" => query.limit = Some(query::limit(&value, ContactQuery::MAX_LIMIT)?),
            "offset" => {
                offset_given = true;
                query.offset = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|o| i64::try_from(*o).is_ok())
                    .ok_or_else(|| {
                        ApiError::validation("offset", "offset must be a non-negative integer")
                    })?;
            }
            "search" => {
                let s = value.trim();
                if s.chars().count() > MAX_SEARCH_CHARS {
                    return Err(ApiError::validation(
                        "search",
                        format!("search must be at most {MAX_SEARCH_CHARS} characters"),
                    ));
                }
                query.search = (!s.is_empty()).then(|| s.to_owned());
            }
            "label" => {
                let l = value.trim();
                query.label = (!l.is_empty()).then(|| l.to_owned());
            }
            // Refused before, by the route's `QueryParams`.
            _ => {}
        }
    }
    if let Some(after) = after {
        // Even `offset=0`: a request that names both is confused.
        if offset_given {
            return Err(ApiError::validation(
                cursor::FIELD,
                "after cannot be combined with offset: page with one or the other",
            ));
        }
        if query.limit.is_none() {
            return Err(ApiError::validation(
                cursor::FIELD,
                "after needs limit (the whole list has no pages)",
            ));
        }
        query.after = Some(contact_scope(&query).decode_contact(&after)?);
    }
    Ok(query)
}
