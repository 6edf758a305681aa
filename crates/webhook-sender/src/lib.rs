//! # maveraa-webhook-sender
//!
//! The domain's [`WebhookPoster`] over HTTP(S): posts an event, as the API
//! shows it, to a webhook endpoint, signed with the endpoint's secret.
//!
//! Headers of each delivery:
//! - `X-Maveraa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//!   `"<t>.<body>"` keyed with the secret's text (`whsec_...`); one `v1` per
//!   secret while a rolled one overlaps. The timestamp is signed, so a
//!   receiver can refuse a captured delivery replayed later.
//! - `X-Maveraa-Event-Id`, `X-Maveraa-Event-Type`, `X-Maveraa-Delivery-Id`
//!   (the same across retries of the delivery).
//!
//! Redirects are not followed (a 3xx is a failure), and unless private
//! targets are allowed, a name that resolves to a loopback, private or
//! link-local address is refused at each connection, so DNS cannot point a
//! delivery at the server's own network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use maveraa_domain::ports::WebhookPoster;
use maveraa_domain::webhook::{
    PostOutcome, WebhookPost, WebhookSecret, is_private_address, is_private_host,
};
use sha2::Sha256;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-maveraa-signature";

/// Builds the signature header's value for `body` sent at `timestamp`.
pub fn signature(secrets: &[WebhookSecret], timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        // A key of any length is accepted by HMAC.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            continue;
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        value.push_str(",v1=");
        value.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    value
}

/// Resolves names with the system resolver and drops private addresses.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private_address(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private targets are refused unless \
                     webhooks.allow_private_targets is true)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Posts deliveries over HTTP(S) with reqwest.
#[derive(Debug, Clone)]
pub struct HttpPoster {
    client: reqwest::Client,
    allow_private_targets: bool,
}

/// Why the poster could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct PosterError(#[from] reqwest::Error);

impl HttpPoster {
    /// A poster whose attempts give up after `timeout`.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(timeout: Duration, allow_private_targets: bool) -> Result<Self, PosterError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Maveraa-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(2);
        if !allow_private_targets {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private_targets,
        })
    }

    /// A literal address in the URL is not resolved, so it is checked here.
    fn refused_literal(&self, url: &reqwest::Url) -> bool {
        if self.allow_private_targets {
            return false;
        }
        is_private_host(url.host())
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, post: &WebhookPost<'_>) -> PostOutcome {
        let started = Instant::now();
        let failed = |error: String, status: Option<u16>| PostOutcome {
            status,
            latency: started.elapsed(),
            error: Some(error),
        };
        let url = match reqwest::Url::parse(post.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("the URL does not parse: {e}"), None),
        };
        if self.refused_literal(&url) {
            return failed(
                "the URL names a private address; refused unless \
                 webhooks.allow_private_targets is true"
                    .into(),
                None,
            );
        }
        let mut body = Vec::with_capacity(256 + post.event.data.len());
        post.event.write_json(&mut body);
        let timestamp = chrono::Utc::now().timestamp();
        let signed = signature(post.secrets, timestamp, &body);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header("x-maveraa-event-id", post.event.id())
            .header("x-maveraa-event-type", post.event.kind.as_str())
            .header("x-maveraa-delivery-id", post.delivery.to_string())
            .body(body)
            .send()
            .await;
        match sent {
            Ok(res) => {
                let status = res.status();
                // The body is not read: the status is the answer.
                drop(res);
                let code = Some(status.as_u16());
                if status.is_success() {
                    PostOutcome {
                        status: code,
                        latency: started.elapsed(),
                        error: None,
                    }
                } else if status.is_redirection() {
                    failed(
                        format!("answered {status}; redirects are not followed"),
                        code,
                    )
                } else {
                    failed(format!("answered {status}"), code)
                }
            }
            Err(e) if e.is_timeout() => failed("no answer within the timeout".into(), None),
            Err(e) if e.is_connect() => failed(format!("could not connect: {}", root(&e)), None),
            Err(e) => failed(format!("request failed: {}", root(&e)), None),
        }
    }
}

/// The innermost cause, which says what happened (reqwest's own message
/// only repeats the URL).
fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_timestamp_and_the_body_with_each_secret() {
        let a = WebhookSecret::from_stored("whsec_a".into());
        let b = WebhookSecret::from_stored("whsec_b".into());
        let one = signature(std::slice::from_ref(&a), 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_a").expect("key");
        mac.update(b"1700000000.{}");
        assert_eq!(
            one,
            format!(
                "t=1700000000,v1={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
        let two = signature(&[a, b], 1_700_000_000, b"{}");
        assert!(two.starts_with(&one));
        assert_eq!(two.matches(",v1=").count(), 2);
        assert_ne!(signature(&[], 1, b"{}"), signature(&[], 2, b"{}"));
    }
}
