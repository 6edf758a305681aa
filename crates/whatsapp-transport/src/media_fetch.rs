//! Fetching media a send names by URL, for providers that upload it
//! themselves (WhatsApp Web): bounded in size and time, its content type
//! checked against the kind, and, unless allowed, never from loopback,
//! private or link-local addresses (a URL given through the API must not
//! reach the server's own network). Redirects are not followed: each hop
//! would need the same checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use maveraa_domain::ports::TransportError;
use maveraa_domain::transport::MediaKind;
use maveraa_domain::webhook::{is_private_address, is_private_host};

use crate::cloud_api::TransportBuildError;

/// Fetched media: its bytes and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    /// The body.
    pub bytes: Vec<u8>,
    /// Its MIME type, without parameters.
    pub mime_type: String,
}

/// Fetches media by URL under limits.
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    client: reqwest::Client,
    max_bytes: u64,
    allow_private: bool,
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
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn refused(message: impl Into<String>) -> TransportError {
    TransportError::Permanent {
        code: Some("media_refused".into()),
        message: message.into(),
    }
}

impl MediaFetcher {
    /// A fetcher giving up after `timeout`, refusing bodies over
    /// `max_bytes`, and private addresses unless `allow_private`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        timeout: Duration,
        max_bytes: u64,
        allow_private: bool,
    ) -> Result<Self, TransportBuildError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("maveraa/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            client: builder.build().map_err(TransportBuildError::HttpClient)?,
            max_bytes,
            allow_private,
        })
    }

    /// A literal address (or `localhost`) is not resolved: checked here.
    fn refused_host(&self, url: &reqwest::Url) -> bool {
        if self.allow_private {
            return false;
        }
        is_private_host(url.host())
    }

    /// The media of `kind` at `url`.
    ///
    /// # Errors
    /// [`TransportError::Permanent`] (code `media_refused`) for a refused
    /// address, a redirect, an error answer, a body too large or of
    /// another type than `kind`; [`TransportError::Retryable`] when the
    /// host could not be reached or timed out (it may come back).
    pub async fn fetch(&self, kind: MediaKind, url: &str) -> Result<FetchedMedia, TransportError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| refused(format!("media URL: {e}")))?;
        if self.refused_host(&parsed) {
            return Err(refused(
                "the media URL names a private, loopback or link-local address",
            ));
        }
        let unreachable = |e: reqwest::Error| TransportError::Retryable {
            reason: format!("media URL: {e}"),
            retry_after: None,
        };
        let mut response = self.client.get(parsed).send().await.map_err(|e| {
            // The resolver's refusal is a connect error: permanent.
            if e.is_connect() && format!("{e:?}").contains("no public address") {
                refused("the media URL's host resolves to no public address")
            } else {
                unreachable(e)
            }
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(refused(format!(
                "the media URL answered {status}: redirects are not followed; give the final URL"
            )));
        }
        if !status.is_success() {
            return Err(refused(format!("the media URL answered {status}")));
        }
        let mime_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty());
        let mime_type = match (kind, mime_type) {
            (MediaKind::Document, None) => "application/octet-stream".to_owned(),
            (MediaKind::Document, Some(m)) => m,
            (_, Some(m)) if m.starts_with(&format!("{}/", kind.as_str())) => m,
            (_, m) => {
                return Err(refused(format!(
                    "the media URL's content type is {}, not {}/*",
                    m.as_deref().unwrap_or("missing"),
                    kind.as_str()
                )));
            }
        };
        let too_large = || {
            refused(format!(
                "the media is over the {} MB limit",
                self.max_bytes / 1_000_000
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() as u64 + chunk.len() as u64 > self.max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(refused("the media URL answered an empty body"));
        }
        Ok(FetchedMedia { bytes, mime_type })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn fetcher(allow_private: bool) -> MediaFetcher {
        MediaFetcher::new(Duration::from_secs(5), 1_000, allow_private).expect("client")
    }

    fn code(e: &TransportError) -> Option<&str> {
        match e {
            TransportError::Permanent { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    #[tokio::test]
    async fn media_of_its_kind_under_the_limit_is_fetched_and_the_rest_refused() {
        let server = MockServer::start().await;
        let serve = |p: &'static str, type_: &'static str, body: Vec<u8>, status: u16| {
            Mock::given(method("GET")).and(path(p)).respond_with(
                ResponseTemplate::new(status)
                    .insert_header("content-type", type_)
                    .set_body_bytes(body),
            )
        };
        serve("/a.jpg", "image/jpeg", vec![1; 500], 200)
            .mount(&server)
            .await;
        serve("/big.jpg", "image/jpeg", vec![1; 1_001], 200)
            .mount(&server)
            .await;
        serve("/page", "text/html; charset=utf-8", b"<html>".to_vec(), 200)
            .mount(&server)
            .await;
        serve("/gone.pdf", "application/pdf", Vec::new(), 404)
            .mount(&server)
            .await;
        serve("/a.pdf", "application/pdf; x=y", b"%PDF".to_vec(), 200)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/moved"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/a.jpg"))
            .mount(&server)
            .await;
        let f = fetcher(true);
        let url = |p: &str| format!("{}{p}", server.uri());

        let got = f
            .fetch(MediaKind::Image, &url("/a.jpg"))
            .await
            .expect("fetched");
        assert_eq!(
            (got.bytes.len(), got.mime_type.as_str()),
            (500, "image/jpeg")
        );
        let pdf = f
            .fetch(MediaKind::Document, &url("/a.pdf"))
            .await
            .expect("fetched");
        assert_eq!(pdf.mime_type, "application/pdf");
        for (kind, p, says) in [
            (MediaKind::Image, "/big.jpg", "limit"),
            (MediaKind::Image, "/page", "text/html"),
            (MediaKind::Video, "/a.jpg", "not video"),
            (MediaKind::Document, "/gone.pdf", "404"),
            (MediaKind::Image, "/moved", "redirects"),
        ] {
            let e = f.fetch(kind, &url(p)).await.expect_err(p);
            assert_eq!(code(&e), Some("media_refused"), "{p}: {e}");
            assert!(e.to_string().contains(says), "{p}: {e}");
        }
        // An unreachable host may come back: retried.
        let closed = format!("http://127.0.0.1:{}/a.jpg", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        });
        assert!(matches!(
            f.fetch(MediaKind::Image, &closed).await,
            Err(TransportError::Retryable { .. })
        ));
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let f = fetcher(false);
        for url in [
            "http://127.0.0.1:9/a.jpg",
            "http://localhost:9/a.jpg",
            "http://10.1.2.3/a.jpg",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/a.jpg",
        ] {
            let e = f.fetch(MediaKind::Image, url).await.expect_err(url);
            assert_eq!(code(&e), Some("media_refused"), "{url}: {e}");
        }
    }
}
