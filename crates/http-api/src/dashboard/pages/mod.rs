//! The dashboard's pages, a module per section: API keys, sessions,
//! contacts, the inbox and members. Each reads and changes through the
//! same use cases as the public API. What they share is here.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;
use maveraa_domain::messaging::{
    CloudApiSettings, Direction, MessageStatus, MessageText, ProviderSettings, SecretString,
    SendMessage, SessionName, SessionStatus, WaId,
};
use maveraa_domain::transport::OutboundContent;
use maveraa_domain::{
    ApiKeyId, ContactError, ContactId, ContactName, ContactPatch, Labels, NewContact, OnDuplicate,
    PageStart, PhoneNumber, Role, SessionError, UserId, ValidationError,
};
use serde::Deserialize;

use super::{Nav, PageError, Signed, flash, render, see_other, urlencode};
use crate::ApiState;
use crate::wire::contact_import::ImportFormat;
use crate::wire::contacts::{contact_batch_csv, contact_query, next_cursor};

pub(super) fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

pub(super) fn internal(e: impl std::fmt::Display) -> PageError {
    PageError::internal(&e)
}

/// `GET /`: the inbox.
pub(super) async fn home(_signed: Signed) -> HttpResponse {
    see_other("/inbox")
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    pub(super) csrf: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    heading: String,
    question: String,
    action: String,
    button: &'static str,
    back: &'static str,
}

pub(super) fn confirm(
    signed: &Signed,
    active: &'static str,
    heading: &str,
    question: String,
    action: String,
    button: &'static str,
    back: &'static str,
) -> Result<HttpResponse, PageError> {
    render(
        &ConfirmPage {
            nav: Some(Nav::of(signed, active)),
            flash: None,
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            heading: heading.to_owned(),
            question,
            action,
            button,
            back,
        },
        StatusCode::OK,
    )
}

mod api_keys;
mod contacts;
mod inbox;
mod members;
mod sessions;

pub(super) use api_keys::*;
pub(super) use contacts::*;
pub(super) use inbox::*;
pub(super) use members::*;
pub(super) use sessions::*;
