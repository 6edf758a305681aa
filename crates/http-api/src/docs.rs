//! `GET /docs`: the OpenAPI document as one HTML page, rendered once at
//! start-up from the document itself, so that the page cannot say other
//! than the document. No script, nothing fetched from elsewhere (the page
//! is served under a policy that allows neither), every text escaped.

use std::fmt::Write as _;

use serde_json::Value;

/// The page's style sheet, served as `/docs/style.css`.
pub(crate) const STYLE: &str = "\
body{font:15px/1.5 system-ui,sans-serif;color:#1d1f21;max-width:72rem;margin:0 auto;padding:0 1rem 4rem}
h1{margin-top:2rem}h2{border-bottom:2px solid #ddd;margin-top:3rem}
section.op{border:1px solid #ddd;border-radius:6px;padding:0 1rem 1rem;margin:1.5rem 0}
h3{font-size:1.05rem;margin:1rem 0 .25rem}h4{margin:1rem 0 .25rem}
.method{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;color:#fff;font:bold 13px monospace;padding:2px 6px;margin-right:.5rem;background:#555}
.get{background:#2f6fb0}.post{background:#2e8b57}.patch{background:#b8860b}.delete{background:#b03a2e}
code,pre{font:13px/1.4 ui-monospace,monospace}pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:.6rem;overflow:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;border-bottom:1px solid #eee;padding:.3rem .5rem}
nav ul{columns:2;list-style:none;padding:0}nav li{margin:.1rem 0}.muted{color:#666}
nav code,h3 code{overflow-wrap:anywhere}
@media (max-width:40rem){nav ul{columns:1}table{display:block;overflow-x:auto}td:last-child{min-width:12rem}}
";

/// Where the examples send their requests.
const BASE_URL: &str = "http://localhost:8080";

/// Methods in the order the page lists them.
const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// `s` with the characters HTML gives a meaning escaped.
fn esc(s: &str) -> String {
    crate::dashboard::escape(s)
}

/// A description: paragraphs at blank lines, `code` in backticks; the
/// rest escaped.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        out.push_str("<p>");
        for (i, part) in esc(para.trim()).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(out, "<code>{part}</code>");
            } else {
                out.push_str(part);
            }
        }
        out.push_str("</p>\n");
    }
    out
}

/// The component a `$ref` names, if it is one of the document's.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let Some(r) = value.get("$ref").and_then(Value::as_str) else {
        return value;
    };
    let mut target = doc;
    for part in r.trim_start_matches("#/").split('/') {
        target = &target[part];
    }
    if target.is_null() { value } else { target }
}

/// `schema` with its references replaced by what they name, `depth` deep
/// (a recursive schema stops there, as a reference).
fn inline(doc: &Value, schema: &Value, depth: u8) -> Value {
    match schema {
        Value::Object(map) if map.contains_key("$ref") && depth > 0 => {
            let target = deref(doc, schema);
            if std::ptr::eq(target, schema) {
                schema.clone()
            } else {
                inline(doc, target, depth - 1)
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), inline(doc, v, depth)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(doc, v, depth)).collect()),
        other => other.clone(),
    }
}

/// The example of a (resolved) schema: its `example`, its first
/// `examples`, else one made of its properties' examples.
fn example_of(schema: &Value) -> Option<Value> {
    if let Some(e) = schema.get("example") {
        return Some(e.clone());
    }
    if let Some(e) = schema.get("examples").and_then(|e| e.get(0)) {
        return Some(e.clone());
    }
    let props = schema.get("properties")?.as_object()?;
    let made: serde_json::Map<String, Value> = props
        .iter()
        .filter_map(|(k, v)| example_of(v).map(|e| (k.clone(), e)))
        .collect();
    (!made.is_empty()).then_some(Value::Object(made))
}

/// A parameter's example: its own, else its schema's.
fn param_example(doc: &Value, param: &Value) -> Option<Value> {
    param
        .get("example")
        .cloned()
        .or_else(|| example_of(&inline(doc, &param["schema"], 4)))
}

/// `s` as one shell word in single quotes.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value as it goes into a URL: strings as they are, the rest as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes what a URL's query or path cannot hold as it is.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@:,".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A `curl` command for the operation, with `content_type`'s example body
/// when it has a body.
fn curl(doc: &Value, method: &str, path: &str, op: &Value, body: Option<(&str, Value)>) -> String {
    let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
    let mut url = path.to_owned();
    let mut query = Vec::new();
    for p in &params {
        let name = p["name"].as_str().unwrap_or_default();
        let example = param_example(doc, p).map_or_else(|| name.to_owned(), |e| plain(&e));
        match p["in"].as_str() {
            Some("path") => url = url.replace(&format!("{{{name}}}"), &url_encode(&example)),
            Some("query") if p["required"] == Value::Bool(true) => {
                query.push(format!("{name}={}", url_encode(&example)));
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let mut lines = vec![match method {
        "get" => format!("curl -sS {}", shell_quote(&format!("{BASE_URL}{url}"))),
        m => format!(
            "curl -sS -X {} {}",
            m.to_ascii_uppercase(),
            shell_quote(&format!("{BASE_URL}{url}"))
        ),
    }];
    if op.get("security").is_some() {
        lines.push(format!(
            "-H \"{}: $MAVERAA_API_KEY\"",
            crate::API_KEY_HEADER
        ));
    }
    if let Some((content_type, example)) = body {
        lines.push(format!(
            "-H {}",
            shell_quote(&format!("Content-Type: {content_type}"))
        ));
        let data = match &example {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        lines.push(format!("--data-binary {}", shell_quote(&data)));
    }
    lines.join(" \\\n  ")
}

/// A schema's type in a word or two: `string (date-time)`, `integer`,
/// `array of Contact`, a component's name.
fn type_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(items) = schema.get("oneOf").and_then(Value::as_array) {
        return items.iter().map(type_name).collect::<Vec<_>>().join(" or ");
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    if kind.starts_with("array") {
        return format!("{kind} of {}", type_name(&schema["items"]));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{kind} ({format})"),
        None => kind,
    }
}

fn parameters(doc: &Value, op: &Value, out: &mut String) {
    let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) else {
        return;
    };
    out.push_str("<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
    for p in params {
        let example = param_example(doc, p)
            .map(|e| {
                format!(
                    " <span class=\"muted\">e.g. <code>{}</code></span>",
                    esc(&plain(&e))
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}{example}</td></tr>",
            esc(p["name"].as_str().unwrap_or_default()),
            esc(p["in"].as_str().unwrap_or_default()),
            esc(&type_name(&p["schema"])),
            if p["required"] == Value::Bool(true) {
                "yes"
            } else {
                "no"
            },
            prose(p["description"].as_str().unwrap_or_default()),
        );
    }
    out.push_str("</table>\n");
}

/// The request body's content types, each with its schema and example.
fn bodies(doc: &Value, op: &Value) -> Vec<(String, Value, Option<Value>)> {
    let Some(content) = op["requestBody"]["content"].as_object() else {
        return Vec::new();
    };
    content
        .iter()
        .map(|(content_type, media)| {
            let schema = inline(doc, &media["schema"], 8);
            let example = media
                .get("example")
                .cloned()
                .or_else(|| example_of(&schema));
            (content_type.clone(), schema, example)
        })
        .collect()
}

fn answers(doc: &Value, op: &Value, out: &mut String) {
    out.push_str(
        "<h4>Answers</h4>\n<table><tr><th>status</th><th>meaning</th><th>body</th></tr>\n",
    );
    for (status, answer) in op["responses"].as_object().into_iter().flatten() {
        let answer = deref(doc, answer);
        let body = answer["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(content_type, media)| {
                let name = type_name(&media["schema"]);
                let link = if media["schema"].get("$ref").is_some() {
                    format!("<a href=\"#schema-{0}\">{0}</a>", esc(&name))
                } else {
                    esc(&name)
                };
                format!("<code>{}</code> {link}", esc(content_type))
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{body}</td></tr>",
            esc(status),
            prose(answer["description"].as_str().unwrap_or_default()),
        );
    }
    out.push_str("</table>\n");
}

fn operation(doc: &Value, method: &str, path: &str, op: &Value, out: &mut String) {
    let id = op["operationId"].as_str().unwrap_or_default();
    let _ = writeln!(
        out,
        "<section class=\"op\" id=\"{}\">\n<h3><span class=\"method {method}\">{}</span><code>{}</code></h3>",
        esc(id),
        esc(&method.to_ascii_uppercase()),
        esc(path),
    );
    if let Some(summary) = op["summary"].as_str() {
        let _ = writeln!(out, "<p><strong>{}</strong></p>", esc(summary));
    }
    out.push_str(&prose(op["description"].as_str().unwrap_or_default()));
    if op.get("security").is_none() {
        out.push_str("<p class=\"muted\">No API key needed.</p>\n");
    }
    parameters(doc, op, out);
    let bodies = bodies(doc, op);
    for (content_type, schema, _) in &bodies {
        let _ = writeln!(
            out,
            "<h4>Request body: <code>{}</code></h4>",
            esc(content_type)
        );
        if let Some(description) = op["requestBody"]["description"].as_str() {
            out.push_str(&prose(description));
        }
        let json = serde_json::to_string_pretty(schema).unwrap_or_default();
        let _ = writeln!(out, "<pre>{}</pre>", esc(&json));
    }
    answers(doc, op, out);
    out.push_str("<h4>Example</h4>\n");
    if bodies.is_empty() {
        let _ = writeln!(
            out,
            "<pre>{}</pre>",
            esc(&curl(doc, method, path, op, None))
        );
    }
    for (content_type, _, example) in bodies {
        let example = example.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        let _ = writeln!(
            out,
            "<pre>{}</pre>",
            esc(&curl(doc, method, path, op, Some((&content_type, example))))
        );
    }
    out.push_str("</section>\n");
}

/// The page. `paths` gives the order of the document's paths (a JSON
/// object's keys come sorted).
pub(crate) fn render(doc: &Value, paths: &[String]) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let version = doc["info"]["version"].as_str().unwrap_or_default();
    let mut ops: Vec<(&str, &str, &Value)> = Vec::new();
    for path in paths {
        for method in METHODS {
            let op = &doc["paths"][path.as_str()][method];
            if op.is_object() {
                ops.push((method, path, op));
            }
        }
    }
    let tag_of = |op: &Value| op["tags"][0].as_str().unwrap_or_default().to_owned();
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();

    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{0}</title>\n<link rel=\"stylesheet\" href=\"/docs/style.css\">\n</head>\n<body>\n\
         <h1>{0} <small class=\"muted\">{1}</small></h1>\n",
        esc(title),
        esc(version)
    );
    out.push_str(&prose(
        doc["info"]["description"].as_str().unwrap_or_default(),
    ));
    out.push_str(
        "<p>This page is rendered from the OpenAPI 3.1 document at \
         <a href=\"/api/openapi.json\"><code>/api/openapi.json</code></a>. \
         The examples read the key from <code>$MAVERAA_API_KEY</code>.</p>\n<nav>\n<ul>\n",
    );
    for (method, path, op) in &ops {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\"><span class=\"method {method}\">{}</span><code>{}</code></a></li>",
            esc(op["operationId"].as_str().unwrap_or_default()),
            esc(&method.to_ascii_uppercase()),
            esc(path),
        );
    }
    out.push_str("</ul>\n</nav>\n");
    for (tag, description) in &tags {
        let _ = writeln!(out, "<h2>{}</h2>", esc(tag));
        out.push_str(&prose(description));
        for (method, path, op) in ops.iter().filter(|(_, _, op)| tag_of(op) == *tag) {
            operation(doc, method, path, op, &mut out);
        }
    }
    // Operations of a tag the document does not describe still appear.
    let untagged: Vec<_> = ops
        .iter()
        .filter(|(_, _, op)| !tags.iter().any(|(t, _)| *t == tag_of(op)))
        .collect();
    if !untagged.is_empty() {
        out.push_str("<h2>Other</h2>\n");
        for (method, path, op) in untagged {
            operation(doc, method, path, op, &mut out);
        }
    }
    out.push_str("<h2>Schemas</h2>\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "<section class=\"op\" id=\"schema-{0}\">\n<h3>{0}</h3>\n{1}<pre>{2}</pre>\n</section>",
            esc(name),
            prose(schema["description"].as_str().unwrap_or_default()),
            esc(&serde_json::to_string_pretty(schema).unwrap_or_default()),
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(
            prose("a `<b>` c\n\nd"),
            "<p>a <code>&lt;b&gt;</code> c</p>\n<p>d</p>\n"
        );
    }

    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    /// The page as the server renders it: every operation, with a curl
    /// that carries the key and its example body; no script.
    #[test]
    fn the_page_has_every_operation_and_no_script() {
        let doc = crate::openapi::document();
        let paths: Vec<String> = doc.paths.paths.keys().cloned().collect();
        let value = serde_json::to_value(&doc).expect("document");
        let page = render(&value, &paths);
        assert!(!page.to_ascii_lowercase().contains("<script"));
        assert!(!page.contains("style=\""), "no inline style");
        let mut count = 0;
        for path in &paths {
            for method in METHODS {
                if value["paths"][path.as_str()][method].is_object() {
                    count += 1;
                    assert!(
                        page.contains(&format!("<code>{}</code></h3>", esc(path))),
                        "{path}"
                    );
                }
            }
        }
        assert_eq!(
            page.matches("<section class=\"op\" id=\"").count()
                - value["components"]["schemas"]
                    .as_object()
                    .map_or(0, |s| s.len()),
            count
        );
        assert!(page.contains(
            "curl -sS -X POST &#39;http://localhost:8080/api/public/inbox/send&#39; \\\n  \
             -H &quot;X-API-Key: $MAVERAA_API_KEY&quot; \\\n  \
             -H &#39;Content-Type: application/json&#39; \\\n  \
             --data-binary &#39;{&quot;message&quot;:&quot;Your OTP code is 4567&quot;,&quot;sessionId&quot;:&quot;session-123&quot;,&quot;targetNumber&quot;:&quot;6289876543210&quot;}&#39;"
        ), "the send's example");
        assert!(page.contains("Content-Type: text/csv"));
        assert!(page.contains("Content-Type: application/x-ndjson"));
    }
}
