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
use crate::rate_limit::Class;

/// The header the reference API authenticates with.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// A request authenticated by an API key; holds the workspace it acts in.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub AuthContext);

/// The key presented: `X-API-Key`, or `Authorization: Bearer <key>`.
fn presented_key(req: &HttpRequest) -> Option<String> {
    // An empty X-API-Key (a client template's placeholder) does not hide
    // a key sent as a Bearer token.
    if let Some(v) = req
        .headers()
        .get(API_KEY_HEADER)
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
    {
        return Some(v.to_str().unwrap_or_default().to_owned());
    }
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.to_owned())
}

/// The query parameters each method of a resource takes, set on the
/// resource (`GET` also covers `HEAD`). A parameter not listed is a `400`
/// naming it, as Stripe answers an unknown parameter, rather than a typo
/// that silently changes nothing; a resource without this takes none.
#[derive(Debug, Clone, Copy)]
pub struct QueryParams(pub &'static [(&'static str, &'static [&'static str])]);

/// The routes whose requests draw from the sends' bucket.
const SEND_ROUTES: [&str; 3] = [
    "/api/public/inbox/send",
    "/api/public/messages/{messageId}/retry",
    "/api/public/sessions/{sessionId}/messages/retry",
];

fn is_send(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::POST
        && req
            .match_pattern()
            .is_some_and(|p| SEND_ROUTES.contains(&p.as_str()))
}

/// Refuses a query parameter the operation does not take, or one given
/// more than once.
fn check_query(req: &HttpRequest) -> Result<(), ApiError> {
    if req.query_string().is_empty() {
        return Ok(());
    }
    let method = match req.method().as_str() {
        "HEAD" => "GET",
        other => other,
    };
    let taken: &[&str] = req
        .app_data::<QueryParams>()
        .and_then(|q| q.0.iter().find(|(m, _)| *m == method))
        .map_or(&[], |(_, names)| names);
    let pairs = crate::query::pairs(req.query_string())?;
    for (i, (key, _)) in pairs.iter().enumerate() {
        if !taken.contains(&key.as_str()) {
            let takes = if taken.is_empty() {
                "this operation takes no query parameters".to_owned()
            } else {
                format!("this operation takes {}", taken.join(", "))
            };
            return Err(ApiError::validation(
                key.clone(),
                format!("unknown query parameter {key}: {takes}"),
            ));
        }
        // Every parameter takes one value: handlers read the last one, so a
        // list (`limit=5&limit=500`, `types=a&types=b`) would lose values
        // without a word.
        if pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(ApiError::validation(
                key.clone(),
                format!(
                    "{key} is given more than once: it takes one value \
                     (a list of event types is comma-separated, types=a,b)"
                ),
            ));
        }
    }
    Ok(())
}

/// A request's key check, made once however many of its extractors ask
/// (`Authenticated` and `ApiJson` both do; see `ApiJson`).
#[derive(Clone, Default)]
struct KeyCheck(std::rc::Rc<tokio::sync::OnceCell<Result<AuthContext, ApiError>>>);

/// Verifies the request's key alone, once per request.
fn verify_key(req: &HttpRequest) -> impl Future<Output = Result<AuthContext, ApiError>> + 'static {
    let check = {
        let mut extensions = req.extensions_mut();
        if let Some(check) = extensions.get::<KeyCheck>() {
            check.clone()
        } else {
            let check = KeyCheck::default();
            extensions.insert(check.clone());
            check
        }
    };
    let state = req.app_data::<web::Data<ApiState>>().cloned();
    let key = presented_key(req);
    async move {
        check
            .0
            .get_or_init(|| async move {
                let state = state.ok_or_else(|| ApiError::internal(&"ApiState not configured"))?;
                let key = key.ok_or(ApiError::from(AuthError::Missing))?;
                Ok(state.api_keys.authenticate(&key).await?)
            })
            .await
            .clone()
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let verify = verify_key(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"ApiState not configured"))?;
            let ctx = verify.await?;
            req.extensions_mut().insert(ctx);
            // After the key: a stranger learns nothing about parameters.
            check_query(&req)?;
            let class = if is_send(&req) {
                Class::Sends
            } else {
                Class::Requests
            };
            if let Some(d) = state
                .rate_limits
                .take(ctx.api_key_id, ctx.rate_limits, class)
            {
                req.extensions_mut().insert(d);
                if !d.allowed {
                    return Err(ApiError::rate_limited(d.retry_after_secs));
                }
            }
            Ok(Self(ctx))
        })
    }
}

/// The largest request body a route accepts, in bytes. Set on the app, and
/// again on a scope that needs another limit (the innermost one applies).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a request body may take to arrive, in all; `408` after it.
/// actix times out only the headers: without this, a client that stops
/// sending mid-body would hold its connection forever.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(std::time::Duration::from_secs(30))
    }
}

/// A JSON request body. Unlike actix's `Json`, every failure answers in the
/// API's error shape: `415` for another content type, `413` over the body
/// limit, `400` for malformed JSON, and `400` naming the field for a value
/// of the wrong type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Why the body's `Content-Type` is not JSON in UTF-8, if it is not.
fn not_json(req: &HttpRequest) -> Option<&'static str> {
    const SEND_JSON: &str = "send the body as JSON with Content-Type: application/json";
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(SEND_JSON);
    };
    let mut parts = ct.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !(mime == "application/json"
        || (mime.starts_with("application/") && mime.ends_with("+json")))
    {
        return Some(SEND_JSON);
    }
    // JSON is UTF-8 (RFC 8259); a body declared in another charset would be
    // misread, not converted.
    declares_other_charset(parts)
        .then_some("JSON bodies are read as UTF-8: send charset=utf-8 or no charset")
}

/// Whether a `Content-Type`'s parameters (after its type) declare a
/// charset other than UTF-8.
pub(crate) fn declares_other_charset<'a>(mut params: impl Iterator<Item = &'a str>) -> bool {
    params.any(|param| {
        param.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("charset")
                && !matches!(
                    value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                    "utf-8" | "utf8"
                )
        })
    })
}

/// Refuses a compressed body: none is decompressed, and reading one as it
/// is would answer a misleading `400`.
pub(crate) fn encoded(req: &HttpRequest) -> Option<ApiError> {
    let encoding = req.headers().get(header::CONTENT_ENCODING)?;
    let identity = encoding
        .to_str()
        .is_ok_and(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
    (!identity).then(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies are not accepted compressed: send them without Content-Encoding",
        )
    })
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
    // serde_json appends " at line L column C": useful for syntax, noise
    // here; and it names our Rust types, which mean nothing to a caller.
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    // `deny_unknown_fields`: "unknown field `label`, expected one of ...".
    if let Some(rest) = text.strip_prefix("unknown field `")
        && let Some((name, expected)) = rest.split_once('`')
    {
        // serde_path_to_error's path ends at the unknown key itself.
        let field = if path == "." {
            name.to_owned()
        } else {
            path.clone()
        };
        let expected = expected.trim_start_matches(", ");
        return ApiError::validation(field.clone(), format!("unknown field {field}: {expected}"));
    }
    let reason = plain_expectation(text);
    if path == "." {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("the request body must be a JSON object: {reason}"),
        );
    }
    ApiError::validation(path.clone(), format!("{path} has the wrong type: {reason}"))
}

/// serde's expectation in a caller's words: "expected struct MediaRequest"
/// (or "... with 3 elements") becomes "expected a JSON object", and Rust's
/// integer types "an integer".
fn plain_expectation(reason: &str) -> String {
    let Some((head, expected)) = reason.split_once("expected ") else {
        return reason.to_owned();
    };
    let plain = if expected.starts_with("struct ") || expected.starts_with("a map") {
        "a JSON object"
    } else if matches!(
        expected,
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
    ) {
        "an integer"
    } else {
        expected
    };
    format!("{head}expected {plain}")
}

/// Reads the whole body, answering `413` as soon as it is known to be over
/// `limit` (from `Content-Length`, or while reading a chunked body), `415`
/// when it is compressed, and `408` when it takes longer than the route's
/// [`BodyTimeout`].
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let refused = encoded(req);
    let timeout = req.app_data::<BodyTimeout>().copied().unwrap_or_default();
    let limit = req.app_data::<BodyLimit>().map_or(64 * 1024, |l| l.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if let Some(refused) = refused {
            return Err(refused);
        }
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let read = async {
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
        };
        actix_web::rt::time::timeout(timeout.0, read)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        timeout.0.as_secs_f64()
                    ),
                ))
            })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let not_json = not_json(req);
        let body = read_body(req, payload);
        // actix polls a handler's extractors together and answers the first
        // error: a body error must not answer before a key error (a stranger
        // learns nothing of the body's rules), so the body waits for the
        // request's one key check, which `Authenticated` shares.
        let verify = verify_key(req);
        Box::pin(async move {
            verify.await?;
            if let Some(why) = not_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    why,
                ));
            }
            let body = body.await?;
            match body.iter().find(|b| !b.is_ascii_whitespace()) {
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        "the request body is empty; send a JSON object",
                    ));
                }
                // serde would read an array into a struct field by field,
                // by position: `["sim-1", "628...", "hi"]` must not send.
                Some(b'{') => {}
                Some(_) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "validation_failed",
                        "the request body must be a JSON object",
                    ));
                }
            }
            // Syntax first: a body cut short must read as malformed JSON,
            // not as whatever field the typed reading met before the cut
            // (an unknown one, say).
            serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the request body is not valid JSON: {e}"),
                )
            })?;
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

impl RawBody {
    /// Reads the body of `req` from `payload`, as the extractor does; for
    /// handlers that decide whether to read it at all from the headers.
    ///
    /// # Errors
    /// As the extractor: `413` over the limit, `408` when it is too slow.
    pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Self, ApiError> {
        read_body(req, &mut payload.into_inner()).await.map(Self)
    }
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { body.await.map(Self) })
    }
}

/// A JSON body that may be left out: an empty body reads as
/// `T::default()`; any other is read exactly as [`ApiJson`] reads it.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let empty = match headers.get(actix_web::http::header::CONTENT_LENGTH) {
            Some(len) => len.as_bytes() == b"0",
            None => !headers.contains_key(actix_web::http::header::TRANSFER_ENCODING),
        };
        if empty {
            let verify = verify_key(req);
            return Box::pin(async move {
                verify.await?;
                Ok(Self(T::default()))
            });
        }
        let json = ApiJson::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|j| Self(j.0)) })
    }
}
