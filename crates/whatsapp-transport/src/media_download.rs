//! [`MediaDownloads`]: received media fetched from the provider that holds
//! it, for the API to serve. The Cloud API names a file by a media id,
//! resolved to a short-lived URL with the session's access token; WhatsApp
//! Web media is an encrypted file on WhatsApp's media hosts, opened with
//! the key its message carried ([`Locator`]). Neither needs the session's
//! connection, so any server can answer. Bodies are read under a size
//! limit and a timeout.

use std::time::Duration;

use async_trait::async_trait;
use maveraa_domain::messaging::{MediaInfo, ProviderSettings, Session};
use maveraa_domain::ports::{MediaError, MediaFile, MediaSource};

use crate::cloud_api::TransportBuildError;
use crate::whatsapp_web::media::Locator;

/// WhatsApp's media hosts; a download needs no credential.
pub const WHATSAPP_MEDIA_HOSTS: &[&str] = &[
    "https://mmg.whatsapp.net",
    "https://mmg-fallback.whatsapp.net",
];

/// Fetches received media from Cloud API and WhatsApp Web sessions'
/// providers.
#[derive(Debug, Clone)]
pub struct MediaDownloads {
    client: reqwest::Client,
    cloud_base_url: String,
    web_hosts: Vec<String>,
    max_bytes: u64,
}

fn unavailable(e: impl std::fmt::Display) -> MediaError {
    MediaError::Unavailable {
        reason: e.to_string(),
    }
}

impl MediaDownloads {
    /// Downloads giving up after `timeout` and refusing files over
    /// `max_bytes`; Cloud API media is resolved at `cloud_base_url` (the
    /// Graph API root with its version), WhatsApp Web media fetched from
    /// `web_hosts` in order (see [`WHATSAPP_MEDIA_HOSTS`]).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        timeout: Duration,
        max_bytes: u64,
        cloud_base_url: &str,
        web_hosts: Vec<String>,
    ) -> Result<Self, TransportBuildError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("maveraa/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TransportBuildError::HttpClient)?;
        Ok(Self {
            client,
            cloud_base_url: cloud_base_url.trim_end_matches('/').to_owned(),
            web_hosts,
            max_bytes,
        })
    }

    /// The body of `request`'s answer under the size limit; a 404 or 410
    /// is [`MediaError::Gone`].
    async fn body(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, MediaError> {
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        if matches!(status.as_u16(), 404 | 410) {
            return Err(MediaError::Gone {
                reason: format!("the provider answered {status}"),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("the provider answered {status}")));
        }
        let too_large = MediaError::TooLarge {
            limit_bytes: self.max_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if bytes.len() as u64 + chunk.len() as u64 > self.max_bytes {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn cloud_api(&self, token: &str, media_id: &str) -> Result<MediaFile, MediaError> {
        #[derive(serde::Deserialize)]
        struct Resolved {
            url: String,
            mime_type: Option<String>,
        }
        if media_id.is_empty()
            || !media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MediaError::Gone {
                reason: "the message names no valid Cloud API media id".to_owned(),
            });
        }
        let url = format!("{}/{media_id}", self.cloud_base_url);
        let response = self
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        // Meta answers an unknown or expired media id with a 400 (error
        // 100) or a 404.
        if matches!(status.as_u16(), 400 | 404 | 410) {
            return Err(MediaError::Gone {
                reason: format!("the Cloud API answered {status} for the media id"),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!(
                "the Cloud API answered {status} for the media id"
            )));
        }
        let resolved: Resolved = response.json().await.map_err(unavailable)?;
        let bytes = self
            .body(self.client.get(resolved.url).bearer_auth(token))
            .await?;
        Ok(MediaFile {
            bytes,
            mime_type: resolved.mime_type,
        })
    }

    async fn whatsapp_web(
        &self,
        locator: &str,
        mime: Option<&str>,
    ) -> Result<MediaFile, MediaError> {
        let Some(locator) = Locator::parse(locator) else {
            return Err(MediaError::Gone {
                reason: "the message's media locator is not readable".to_owned(),
            });
        };
        if locator.file_length > self.max_bytes {
            return Err(MediaError::TooLarge {
                limit_bytes: self.max_bytes,
            });
        }
        let mut last = MediaError::Unavailable {
            reason: "no media host is configured".to_owned(),
        };
        for host in &self.web_hosts {
            match self.body(self.client.get(locator.url_on(host))).await {
                Ok(encrypted) => {
                    let l = locator.clone();
                    let plain = tokio::task::spawn_blocking(move || l.open(&encrypted))
                        .await
                        .map_err(unavailable)?
                        // The host gave another file than the message names.
                        .map_err(|reason| MediaError::Gone { reason })?;
                    return Ok(MediaFile {
                        bytes: plain,
                        mime_type: mime.map(str::to_owned),
                    });
                }
                // Another host will not have what this one says is gone.
                Err(e @ (MediaError::Gone { .. } | MediaError::TooLarge { .. })) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[async_trait]
impl MediaSource for MediaDownloads {
    async fn fetch(&self, session: &Session, media: &MediaInfo) -> Result<MediaFile, MediaError> {
        match &session.provider {
            ProviderSettings::CloudApi(c) => {
                let Some(id) = media.provider_media_id.as_deref() else {
                    return Err(MediaError::Gone {
                        reason: "the Cloud API gave no media id for this message".to_owned(),
                    });
                };
                self.cloud_api(c.access_token.expose().trim(), id).await
            }
            ProviderSettings::WhatsAppWeb => {
                let Some(locator) = media.locator.as_deref() else {
                    return Err(MediaError::Gone {
                        reason: "WhatsApp gave no download for this message's media".to_owned(),
                    });
                };
                self.whatsapp_web(locator, media.mime_type.as_deref()).await
            }
            ProviderSettings::Simulator => Err(MediaError::Gone {
                reason: "the simulator keeps no media".to_owned(),
            }),
        }
    }
}
