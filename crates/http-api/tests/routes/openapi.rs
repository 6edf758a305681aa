//! The OpenAPI document against the routes it describes: the same routes,
//! the same methods, the same parameters and body fields, and every
//! documented input of the wrong type refused with a `400` naming it.
//! Nothing here is listed twice: the routes come from `configure`'s source
//! and from the running app, the operations from the document.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix_web::App;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use maveraa_http_api::{HttpSettings, configure};
use serde_json::{Value, json};

use crate::common::{KEY_A, World, world};

/// Routes `configure` registers that the document leaves out, and why.
const UNDOCUMENTED: &[(&str, &str)] = &[
    (
        "/webhooks/whatsapp/{sessionUuid}",
        "Meta calls it, not API users (the document says so)",
    ),
    ("/api/openapi.json", "the document itself"),
    ("/docs", "the document as a page"),
    ("/docs/style.css", "the page's style sheet"),
];

/// The routes `configure` registers, each path with the methods its
/// `Allow` lists, read from `src/lib.rs`.
///
/// actix cannot list an app's routes, so this reads the routing table where
/// it is written: every route is registered as `resource("<path>",
/// "<methods>")`, whose second argument is also what the route's `405`
/// answers in `Allow` (which the probes compare with the running app). A
/// small scanner finds those calls and the `web::scope(..)` each sits in
/// (a literal, or a `const NAME: &str`), skipping comments and the inside
/// of strings when it counts parentheses. It refuses a routing table it
/// cannot read whole: a `web::resource(` other than the helper's own, or a
/// route given by a path string elsewhere, fails the test rather than
/// being missed.
fn configured_routes() -> Vec<(String, Vec<String>)> {
    let src = include_str!("../../src/lib.rs");
    assert_eq!(
        src.matches("web::resource(").count(),
        1,
        "register routes with `resource(path, allow)`, which this test reads"
    );
    assert!(
        !src.contains(".route(\"") && !src.contains("web::resource(\""),
        "a route registered by its path string would be missed"
    );
    let consts: BTreeMap<&str, &str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("const "))
        .filter_map(|l| l.split_once(": &str = \""))
        .filter_map(|(name, rest)| Some((name, rest.split_once("\";")?.0)))
        .collect();

    #[derive(Debug, PartialEq)]
    enum Token<'a> {
        Word(&'a str),
        Str(&'a str),
        Open,
        Close,
    }
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                tokens.push(Token::Str(&src[start..i]));
                i += 1;
            }
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b':' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                tokens.push(Token::Word(&src[start..i]));
            }
            _ => i += 1,
        }
    }

    let mut routes = Vec::new();
    // The open scopes: their prefix, and the depth they were opened at.
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (k, token) in tokens.iter().enumerate() {
        match token {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                // The `.service(..)` holding a scope has closed.
                scopes.retain(|(_, d)| *d <= depth);
            }
            Token::Word("web::scope") if tokens.get(k + 1) == Some(&Token::Open) => {
                let prefix = match tokens.get(k + 2) {
                    Some(Token::Str(s)) => (*s).to_owned(),
                    Some(Token::Word(name)) => consts
                        .get(name)
                        .map(|s| (*s).to_owned())
                        .unwrap_or_else(|| panic!("scope {name}: not a const &str")),
                    other => panic!("a scope of {other:?}"),
                };
                let outer = scopes.last().map(|(p, _)| p.clone()).unwrap_or_default();
                scopes.push((format!("{outer}{prefix}"), depth));
            }
            Token::Word("resource") => {
                if let [
                    Token::Open,
                    Token::Str(path),
                    Token::Str(allow),
                    Token::Close,
                ] = tokens.get(k + 1..k + 5).unwrap_or_default()
                {
                    let prefix = scopes.last().map(|(p, _)| p.as_str()).unwrap_or_default();
                    let methods = allow.split(',').map(|m| m.trim().to_owned()).collect();
                    routes.push((format!("{prefix}{path}"), methods));
                }
            }
            _ => {}
        }
    }
    assert!(
        routes.len() >= 20,
        "the scanner lost the routes: {routes:?}"
    );
    routes
}

/// The document as the server serves it.
fn document() -> Value {
    serde_json::to_value(maveraa_http_api::openapi::document()).expect("document")
}

/// Each documented operation: its method (upper case), path and object.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            ops.push((method.to_ascii_uppercase(), path.clone(), op.clone()));
        }
    }
    ops
}

/// What a reference names, or the value itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => {
            let mut target = doc;
            for part in r.trim_start_matches("#/").split('/') {
                target = &target[part];
            }
            resolve(doc, target)
        }
        None => value,
    }
}

fn example(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    schema
        .get("example")
        .or_else(|| schema["examples"].get(0))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The operation's parameters `in` a place.
fn params<'a>(op: &'a Value, place: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == place)
        .collect()
}

/// The path with its parameters' examples in place.
fn concrete_path(doc: &Value, path: &str, op: &Value) -> String {
    let mut out = path.to_owned();
    for p in params(op, "path") {
        let name = p["name"].as_str().unwrap_or_default();
        let value = p
            .get("example")
            .cloned()
            .unwrap_or_else(|| example(doc, &p["schema"]));
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

/// The operation's JSON body example, if it takes one.
fn json_body(doc: &Value, op: &Value) -> Option<Value> {
    let schema = op["requestBody"]["content"]["application/json"].get("schema")?;
    Some(example(doc, schema))
}

/// A request for the operation: the method, the path with examples, and
/// the example body of its first content type (the key is the caller's).
fn request(doc: &Value, method: &str, path: &str, op: &Value, query: &str) -> TestRequest {
    let mut uri = concrete_path(doc, path, op);
    if !query.is_empty() {
        uri = format!("{uri}?{query}");
    }
    let mut req = TestRequest::default()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(&uri);
    if let Some(content) = op["requestBody"]["content"].as_object()
        && let Some((content_type, media)) = content.iter().next()
    {
        let body = media
            .get("example")
            .cloned()
            .unwrap_or_else(|| example(doc, &media["schema"]));
        let bytes = match body {
            Value::String(text) => text.into_bytes(),
            other => other.to_string().into_bytes(),
        };
        req = req
            .insert_header(("Content-Type", content_type.as_str()))
            .set_payload(bytes);
    }
    req
}

fn with_key(req: TestRequest) -> TestRequest {
    req.insert_header(("X-API-Key", KEY_A))
}

#[derive(Debug)]
struct Probe {
    status: StatusCode,
    allow: Option<String>,
    content_type: Option<String>,
    csp: Option<String>,
    /// The body as JSON; `Null` when it did not end within a second (a
    /// stream) or is not JSON.
    json: Value,
    text: String,
}

/// One request through a freshly built app. A body that does not end (the
/// event stream) is not waited for.
async fn probe(w: &World, req: TestRequest) -> Probe {
    let state = w.state.clone();
    let app = init_service(
        App::new().configure(move |cfg| configure(cfg, state, HttpSettings::default())),
    )
    .await;
    let res = call_service(&app, req.to_request()).await;
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, allow, content_type, csp) = (
        res.status(),
        header("Allow"),
        header("Content-Type"),
        header("Content-Security-Policy"),
    );
    let body = actix_web::rt::time::timeout(Duration::from_secs(1), read_body(res))
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    Probe {
        status,
        allow,
        content_type,
        csp,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        text,
    }
}

/// The routing table and the document name the same routes and methods.
/// `HEAD` is left out of the comparison: every `GET` route also answers
/// it, as the document says once in its description.
#[actix_web::test]
async fn the_document_names_every_route_and_only_those() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let mut configured = BTreeSet::new();
    for (path, methods) in configured_routes() {
        if UNDOCUMENTED.iter().any(|(p, _)| *p == path) {
            continue;
        }
        for method in methods.into_iter().filter(|m| m != "HEAD") {
            configured.insert((method, path.clone()));
        }
    }
    let missing: Vec<_> = configured.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&configured).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "configured but not documented: {missing:?}; documented but not configured: {extra:?}"
    );
}

/// Each documented operation reaches a handler of the running app (not the
/// `404 no such endpoint` fallback, nor a `405`), and each documented path
/// answers exactly the documented methods (with `HEAD` beside `GET`) in
/// its `405`'s `Allow`.
#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let w = world().await;
    let doc = document();
    let mut methods: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path, op) in operations(&doc) {
        let a = probe(&w, request(&doc, &method, &path, &op, "")).await;
        assert!(
            a.status != StatusCode::METHOD_NOT_ALLOWED
                && !(a.status == StatusCode::NOT_FOUND
                    && a.json["error"]["message"] == "no such endpoint"),
            "{method} {path}: {} {}",
            a.status,
            a.json
        );
        if op.get("security").is_some() {
            assert_eq!(
                a.json["error"]["code"], "missing_api_key",
                "{method} {path}"
            );
        } else {
            assert_eq!(a.status, StatusCode::OK, "{method} {path}");
        }
        let set = methods.entry(path.clone()).or_default();
        set.insert(method.clone());
        if method == "GET" && path != "/api/public/events/stream" {
            set.insert("HEAD".into());
        }
    }
    for (path, documented) in methods {
        let op = &doc["paths"][path.as_str()]
            .as_object()
            .and_then(|m| m.values().next().cloned())
            .unwrap_or_default();
        let a = probe(&w, request(&doc, "TRACE", &path, op, "")).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "TRACE {path}");
        let allowed: BTreeSet<String> = a
            .allow
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert_eq!(allowed, documented, "{path}: Allow against the document");
    }
}

/// The names in backquotes after `marker` in an error message: what an
/// unknown field's or parameter's `400` says the operation takes.
fn listed_after(message: &str, marker: &str) -> BTreeSet<String> {
    let Some((_, list)) = message.split_once(marker) else {
        return BTreeSet::new();
    };
    if list.contains('`') {
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    } else {
        list.split(',').map(|s| s.trim().to_owned()).collect()
    }
}

/// The query parameters and JSON body fields each operation takes are the
/// documented ones. The running app says what it takes: an unknown
/// parameter's or field's `400` lists them.
#[actix_web::test]
async fn documented_parameters_and_fields_are_the_handlers() {
    let w = world().await;
    let doc = document();
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if op.get("security").is_none() {
            continue;
        }
        let documented: BTreeSet<String> = params(&op, "query")
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let a = probe(
            &w,
            with_key(request(&doc, &method, &path, &op, "zzNotAParameter=1")),
        )
        .await;
        assert_eq!(
            a.json["error"]["field"], "zzNotAParameter",
            "{method} {path}: {}",
            a.json
        );
        let message = a.json["error"]["message"].as_str().unwrap_or_default();
        let taken = if message.contains("takes no query parameters") {
            BTreeSet::new()
        } else {
            listed_after(message, "this operation takes ")
        };
        assert_eq!(taken, documented, "{method} {path}: query parameters");

        // The body's fields, and those of each object field within it.
        let Some(body) = json_body(&doc, &op) else {
            continue;
        };
        let schema = resolve(
            &doc,
            &op["requestBody"]["content"]["application/json"]["schema"],
        );
        let mut objects = vec![(String::new(), schema.clone(), body.clone())];
        while let Some((prefix, schema, value)) = objects.pop() {
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let documented: BTreeSet<String> = props.keys().cloned().collect();
            let mut sent = body.clone();
            let mut target = &mut sent;
            for part in prefix.split('.').filter(|p| !p.is_empty()) {
                target = &mut target[part];
            }
            *target = value.clone();
            target["zzNotAField"] = json!(1);
            let mut req = with_key(request(&doc, &method, &path, &op, ""));
            req = req.set_json(&sent);
            let a = probe(&w, req).await;
            let field = format!(
                "{prefix}{}zzNotAField",
                if prefix.is_empty() { "" } else { "." }
            );
            assert_eq!(
                a.json["error"]["field"],
                field.as_str(),
                "{method} {path}: {}",
                a.json
            );
            let message = a.json["error"]["message"].as_str().unwrap_or_default();
            // serde lists the fields ("expected one of `a`, `b`"), or names
            // the only one ("expected `a`").
            let listed = match listed_after(message, "expected one of ") {
                none if none.is_empty() => listed_after(message, "expected "),
                some => some,
            };
            assert_eq!(
                listed,
                documented,
                "{method} {path}: the fields of {}",
                if prefix.is_empty() {
                    "the body"
                } else {
                    &prefix
                }
            );
            checked += 1;
            for (name, prop) in props {
                let prop = resolve(&doc, &prop);
                if prop["properties"].is_object() {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    objects.push((path, prop.clone(), example(&doc, prop)));
                }
            }
        }
    }
    assert!(checked >= 6, "{checked} bodies checked");
}

/// A value of another JSON type than `schema`'s (`None` when every type
/// is taken).
fn wrong_json(doc: &Value, schema: &Value) -> Option<Value> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        // A number is neither of the API's unions (a string or an array).
        let types: Vec<&Value> = options.iter().map(|o| &resolve(doc, o)["type"]).collect();
        return (!types.iter().any(|t| *t == "number" || *t == "integer")).then_some(json!(42));
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        t => t.as_str().unwrap_or_default().to_owned(),
    };
    match kind.as_str() {
        "string" => Some(json!(12345)),
        "integer" | "number" | "boolean" => Some(json!("not a number")),
        "array" => Some(json!({"an": "object"})),
        "object" => Some(json!(["an", "array"])),
        _ => None,
    }
}

/// Query values of the wrong type for the parameter. A query string is
/// text, so the wrong types are: a word where a number or a timestamp is
/// expected, a value outside an enumeration, and for every parameter a
/// list (`name=a&name=b`) where one value is expected.
fn wrong_query(doc: &Value, param: &Value) -> Vec<String> {
    let name = param["name"].as_str().unwrap_or_default();
    let schema = resolve(doc, &param["schema"]);
    // A valid value, so that only its repetition is wrong.
    let ex = match param
        .get("example")
        .cloned()
        .unwrap_or_else(|| example(doc, schema))
    {
        Value::String(s) => s,
        Value::Null if schema["enum"].is_array() => {
            schema["enum"][0].as_str().unwrap_or_default().to_owned()
        }
        Value::Null if schema["type"] == "integer" => schema["minimum"]
            .as_u64()
            .map_or_else(|| "1".to_owned(), |m| m.max(1).to_string()),
        Value::Null if schema["format"] == "date-time" => "2026-01-01T00:00:00Z".to_owned(),
        Value::Null => "x".to_owned(),
        other => other.to_string(),
    };
    let mut out = vec![format!("{name}={ex}&{name}={ex}")];
    if schema["type"] == "integer" || schema["type"] == "number" {
        out.push(format!("{name}=ten"));
    }
    if schema["format"] == "date-time" {
        out.push(format!("{name}=yesterday"));
    }
    if schema["enum"].is_array() {
        out.push(format!("{name}=42"));
    }
    out
}

/// Every documented query parameter and JSON body field, given a value of
/// the wrong type, is a `400` in the API's error shape naming it.
#[actix_web::test]
async fn wrong_types_are_400_naming_the_field() {
    let w = world().await;
    let doc = document();
    let mut cases = 0;
    let mut failures = Vec::new();
    for (method, path, op) in operations(&doc) {
        for param in params(&op, "query") {
            let name = param["name"].as_str().unwrap_or_default();
            // The other required parameters, with their examples.
            let required: Vec<String> = params(&op, "query")
                .iter()
                .filter(|p| p["required"] == true && p["name"] != name)
                .map(|p| {
                    let ex = p.get("example").cloned().unwrap_or(Value::Null);
                    format!(
                        "{}={}",
                        p["name"].as_str().unwrap_or_default(),
                        ex.as_str().unwrap_or("x")
                    )
                })
                .collect();
            for wrong in wrong_query(&doc, param) {
                let query = required
                    .iter()
                    .cloned()
                    .chain([wrong.clone()])
                    .collect::<Vec<_>>()
                    .join("&");
                let a = probe(&w, with_key(request(&doc, &method, &path, &op, &query))).await;
                cases += 1;
                check(&a, name, &format!("{method} {path}?{query}"), &mut failures);
            }
        }
        let Some(body) = json_body(&doc, &op) else {
            continue;
        };
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        // Every field, nested ones by their path (`media.url`), in a body
        // otherwise as the example has it.
        let mut fields = vec![(String::new(), schema.clone(), body.clone())];
        while let Some((prefix, schema, base)) = fields.pop() {
            let schema = resolve(&doc, &schema).clone();
            for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                let field = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                let Some(wrong) = wrong_json(&doc, prop) else {
                    continue;
                };
                let mut sent = base.clone();
                set(&mut sent, &field, wrong.clone());
                let mut req = with_key(request(&doc, &method, &path, &op, ""));
                req = req.set_json(&sent);
                let a = probe(&w, req).await;
                cases += 1;
                check(
                    &a,
                    &field,
                    &format!("{method} {path} {sent}"),
                    &mut failures,
                );
                let resolved = resolve(&doc, prop);
                if resolved["properties"].is_object() {
                    let mut nested = base.clone();
                    set(&mut nested, &field, example(&doc, resolved));
                    fields.push((field.clone(), resolved.clone(), nested));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases >= 40, "{cases} cases");
}

/// Sets the field at a dotted path of `value`.
fn set(value: &mut Value, path: &str, to: Value) {
    let mut target = value;
    for part in path.split('.') {
        target = &mut target[part];
    }
    *target = to;
}

fn check(a: &Probe, field: &str, what: &str, failures: &mut Vec<String>) {
    let e = &a.json["error"];
    let shaped = e["code"] == "validation_failed"
        && e["message"].is_string()
        && e["field"] == field
        && !e["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unknown");
    if a.status != StatusCode::BAD_REQUEST || !shaped {
        failures.push(format!("{what}: {} {} {}", a.status, a.json, a.text));
    }
}

/// The document and its page are served to everyone, the page under a
/// policy that allows no script and nothing from elsewhere.
#[actix_web::test]
async fn the_document_and_its_page_are_served() {
    let w = world().await;
    let a = probe(&w, TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json, document(), "served as built");
    assert!(
        a.json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );

    let page = probe(&w, TestRequest::get().uri("/docs")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.csp.unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(!page.text.to_ascii_lowercase().contains("<script"));
    assert!(!page.text.contains("http://") || !page.text.contains("src=\"http"));
    for (method, path, op) in operations(&document()) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            page.text.contains(&format!("id=\"{id}\"")),
            "{method} {path}"
        );
    }
    assert!(
        page.text
            .contains("-H &quot;X-API-Key: $MAVERAA_API_KEY&quot;")
    );

    let css = probe(&w, TestRequest::get().uri("/docs/style.css")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.content_type.unwrap_or_default().starts_with("text/css"));
    let head = probe(&w, TestRequest::default().method(Method::HEAD).uri("/docs")).await;
    assert_eq!(head.status, StatusCode::OK);
}

/// Whether `value` is of `schema`'s shape: its type, its required
/// properties, no property the schema does not name (unless it takes any),
/// each item and property in turn. Pushes what is not to `errors`.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        let fits = options.iter().any(|o| {
            let mut e = Vec::new();
            conforms(doc, o, value, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: {value} is none of {schema}"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types
        .iter()
        .any(|t| *t == kind || (*t == "number" && kind == "integer"))
    {
        errors.push(format!("{at}: {value} is not {types:?}"));
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            let Some(props) = schema["properties"].as_object() else {
                return; // any object
            };
            for name in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(name.as_str().unwrap_or_default()) {
                    errors.push(format!("{at}: {name} is missing"));
                }
            }
            for (name, v) in map {
                match props.get(name) {
                    Some(s) => conforms(doc, s, v, &format!("{at}.{name}"), errors),
                    None => errors.push(format!("{at}.{name} is not documented")),
                }
            }
        }
        _ => {}
    }
}

/// Every operation, called as its documentation's example shows it, answers
/// a documented status with a body of the documented shape: the answers
/// written by hand (lists, the import's report) included. A session named
/// as the examples name it is created first, so that most examples
/// succeed; the deletes go last.
#[actix_web::test]
async fn answers_are_as_documented() {
    let w = world().await;
    let doc = document();
    let mut ops = operations(&doc);
    // What makes data first (so that the lists have some to show), the
    // deletes last.
    const FIRST: [&str; 5] = [
        "createSession",
        "createContact",
        "importContacts",
        "simulateInbound",
        "sendMessage",
    ];
    ops.sort_by_key(|(method, _, op)| {
        let id = op["operationId"].as_str().unwrap_or_default();
        match FIRST.iter().position(|f| *f == id) {
            Some(i) => i,
            None if method == "DELETE" => FIRST.len() + 1,
            None => FIRST.len(),
        }
    });
    let mut errors = Vec::new();
    let mut statuses = BTreeMap::new();
    for (method, path, op) in ops {
        // The server's sequencer places committed events in the log.
        w.state.events.sequence(1000).await.expect("sequence");
        let req = request(&doc, &method, &path, &op, &required_query(&op));
        let req = if op.get("security").is_some() {
            with_key(req)
        } else {
            req
        };
        let a = probe(&w, req).await;
        let what = format!("{method} {path} -> {}", a.status.as_u16());
        statuses.insert(what.clone(), a.json.clone());
        let Some(answer) = op["responses"].get(a.status.as_str()) else {
            errors.push(format!("{what}: status not documented: {}", a.json));
            continue;
        };
        let answer = resolve(&doc, answer);
        let Some(content) = answer["content"].as_object() else {
            if !a.text.is_empty() {
                errors.push(format!("{what}: a body where none is documented"));
            }
            continue;
        };
        let content_type = a.content_type.clone().unwrap_or_default();
        let Some((_, media)) = content
            .iter()
            .find(|(ct, _)| content_type.starts_with(ct.as_str()))
        else {
            errors.push(format!("{what}: {content_type} is not documented"));
            continue;
        };
        if content_type.starts_with("application/json") {
            conforms(&doc, &media["schema"], &a.json, &what, &mut errors);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The examples do reach the handlers' successes, not only their errors.
    let successes = statuses.keys().filter(|k| k.contains("-> 2")).count();
    assert!(successes >= 20, "{successes} successes: {statuses:#?}");
    for list in [
        "GET /api/public/contacts -> 200",
        "GET /api/public/inbox/conversations -> 200",
        "GET /api/public/events -> 200",
    ] {
        let items = statuses[list]
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_array))
            .map_or(0, Vec::len);
        assert!(
            items > 0,
            "{list} showed nothing to check: {}",
            statuses[list]
        );
    }
}

/// The operation's required query parameters, with their examples.
fn required_query(op: &Value) -> String {
    params(op, "query")
        .iter()
        .filter(|p| p["required"] == true)
        .map(|p| {
            format!(
                "{}={}",
                p["name"].as_str().unwrap_or_default(),
                p["example"].as_str().unwrap_or("x")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}
