//! The [`TransportFactory`] of the server: a Cloud API transport for Cloud
//! API sessions, the simulator for simulator sessions, and a linked
//! device's open connection for WhatsApp Web sessions.

use std::fmt;
use std::sync::Arc;

use maveraa_domain::messaging::{ProviderSettings, Session};
use maveraa_domain::ports::{TransportFactory, WebhookProtocol};
use maveraa_domain::transport::{TransportError, WhatsAppTransport};

use crate::cloud_api::{CloudApiConfig, CloudApiTransport, TransportBuildError, build_http_client};
use crate::links::LiveLinks;
use crate::simulator::Simulator;
use crate::webhook::CloudApiWebhooks;

/// Gives each session its transport. Every call builds a fresh transport
/// from clones (the HTTP client shares its connection pool), so a session
/// whose settings change gets the new ones at once.
#[derive(Clone)]
pub struct Transports {
    client: reqwest::Client,
    base_url: String,
    simulator: Arc<Simulator>,
    links: Arc<LiveLinks>,
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transports")
            .field("base_url", &self.base_url)
            .field("simulator", &self.simulator)
            .finish_non_exhaustive()
    }
}

impl Transports {
    /// A factory sending Cloud API messages with `client` to `base_url`
    /// (the Graph API root with its version, e.g.
    /// [`DEFAULT_BASE_URL`](crate::DEFAULT_BASE_URL)), and simulator
    /// messages through `simulator` (a [`Simulator`] or an
    /// `Arc<Simulator>`; clones of a simulator share their state anyway).
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        simulator: impl Into<Arc<Simulator>>,
    ) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            simulator: simulator.into(),
            links: Arc::default(),
        }
    }

    /// Builds the HTTP client from `cfg` (see [`build_http_client`]) and a
    /// factory on `cfg.base_url`.
    ///
    /// # Errors
    /// As [`build_http_client`].
    pub fn from_config(
        cfg: &CloudApiConfig,
        simulator: impl Into<Arc<Simulator>>,
    ) -> Result<Self, TransportBuildError> {
        Ok(Self::new(build_http_client(cfg)?, &cfg.base_url, simulator))
    }

    /// The linked devices' connections open on this server.
    pub fn links(&self) -> &Arc<LiveLinks> {
        &self.links
    }

    /// The simulator (to set its sink once the inbox exists).
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// The Cloud API base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl TransportFactory for Transports {
    fn transport_for(
        &self,
        session: &Session,
    ) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        match &session.provider {
            ProviderSettings::Simulator => Ok(Arc::new(self.simulator.transport_for(session))),
            // Only the server holding its connection claims its messages.
            ProviderSettings::WhatsAppWeb => self
                .links
                .get(session.id)
                .map(|c| c as Arc<dyn WhatsAppTransport>)
                .ok_or_else(|| TransportError::Unreachable {
                    reason: format!(
                        "session {}: its connection is not open on this server",
                        session.name
                    ),
                }),
            ProviderSettings::CloudApi(settings) => {
                let phone_number_id = settings.phone_number_id.trim();
                // The id becomes a path segment of the Graph URL: refuse
                // anything that could leave it (`/`, `..`, `?`, `#`...).
                if phone_number_id.is_empty()
                    || !phone_number_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
                {
                    return Err(TransportError::Permanent {
                        code: None,
                        message: format!(
                            "session {}: the Cloud API phone number id must be Meta's numeric id",
                            session.name
                        ),
                    });
                }
                let access_token = settings.access_token.expose().trim();
                if access_token.is_empty() {
                    return Err(TransportError::Permanent {
                        code: None,
                        message: format!(
                            "session {}: the Cloud API access token is missing",
                            session.name
                        ),
                    });
                }
                Ok(Arc::new(CloudApiTransport::new(
                    self.client.clone(),
                    &self.base_url,
                    phone_number_id.to_owned(),
                    access_token.to_owned(),
                )))
            }
        }
    }

    fn webhook_protocol(&self, session: &Session) -> Option<Arc<dyn WebhookProtocol>> {
        match session.provider {
            ProviderSettings::CloudApi(_) => Some(Arc::new(CloudApiWebhooks)),
            ProviderSettings::Simulator | ProviderSettings::WhatsAppWeb => None,
        }
    }
}
