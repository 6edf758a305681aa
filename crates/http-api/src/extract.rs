//! Extractors: the API key, and JSON bodies with errors in the API's shape.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use maveraa_domain::{AuthContext, AuthError};
use serde::de::DeserializeOwned;

use crate::ApiState;
use crate::error::ApiError;

/// The header the reference API authenticates with.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// A request authenticated by an API key; holds the workspace it acts in.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub AuthContext);

/// The key presented: `X-API-Key`, or `Authorization: Bearer <key>`.
fn presented_key(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req.headers().get(API_KEY_HEADER) {
        return Some(v.to_str().unwrap_or_default().to_owned());
    }
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.to_owned())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let key = presented_key(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"ApiState not configured"))?;
            let key = key.ok_or(ApiError::from(AuthError::Missing))?;
            let ctx = state.api_keys.authenticate(&key).await?;
            req.extensions_mut().insert(ctx);
            Ok(Self(ctx))
        })
    }
}

/// The largest request body a route accepts, in bytes. Set on the app, and
/// again on a scope that needs another limit (the innermost one applies).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Unlike actix's `Json`, every failure answers in the
/// API's error shape: `415` for another content type, `413` over the body
/// limit, `400` for malformed JSON, and `400` naming the field for a value
/// of the wrong type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Turns a deserialisation failure into the API's error, naming the field.
fn json_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    let path = err.path().to_string();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {inner}"),
        );
    }
    // serde_json appends " at line L column C": useful for syntax, noise here.
    let text = inner.to_string();
    let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if path == "." {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("the request body must be a JSON object: {reason}"),
        );
    }
    ApiError::validation(path.clone(), format!("{path} has the wrong type: {reason}"))
}

/// Reads the whole body, answering `413` as soon as it is known to be over
/// `limit` (from `Content-Length`, or while reading a chunked body).
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let limit = req.app_data::<BodyLimit>().map_or(64 * 1024, |l| l.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("cannot read the body: {e}"),
                )
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = read_body(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            let body = body.await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    "the request body is empty; send a JSON object",
                ));
            }
            let mut de = serde_json::Deserializer::from_slice(&body);
            let value = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
            de.end().map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the request body is not valid JSON: {e}"),
                )
            })?;
            Ok(Self(value))
        })
    }
}

/// The request body as sent, whatever its content type, within the
/// [`BodyLimit`] of the route (`413` over it). For bodies whose exact bytes
/// matter, such as signed webhook deliveries.
#[derive(Debug)]
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { body.await.map(Self) })
    }
}
