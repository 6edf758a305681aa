//! Providers: how a message leaves and how what a provider reports comes in.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::RepositoryError;
use crate::messaging::{ProviderEvent, Session};
use crate::transport::{TransportError, WhatsAppTransport};

/// Gives the transport of a session.
pub trait TransportFactory: Send + Sync + 'static {
    /// The transport that sends through `session`.
    ///
    /// # Errors
    /// [`TransportError::Permanent`] when the session's settings cannot make
    /// one.
    fn transport_for(
        &self,
        session: &Session,
    ) -> Result<Arc<dyn WhatsAppTransport>, TransportError>;
}

/// Checks and decodes a provider's webhook deliveries (Meta's Cloud API).
pub trait WebhookDecoder: Send + Sync + 'static {
    /// Whether `signature` (the `X-Hub-Signature-256` header) is the
    /// HMAC-SHA-256 of `body` under `app_secret`, compared in constant time.
    fn verify_signature(&self, app_secret: &str, body: &[u8], signature: Option<&str>) -> bool;

    /// The events in a delivery.
    ///
    /// # Errors
    /// A description when the body is not a delivery of the expected shape.
    fn decode(&self, body: &[u8]) -> Result<Vec<ProviderEvent>, String>;

    /// The events in a delivery that concern the number `phone_number_id`.
    /// Meta sends the webhooks of all numbers of one app to one URL, so a
    /// delivery may carry other numbers' events. The default keeps all.
    ///
    /// # Errors
    /// As [`WebhookDecoder::decode`].
    fn decode_for_number(
        &self,
        body: &[u8],
        phone_number_id: &str,
    ) -> Result<Vec<ProviderEvent>, String> {
        let _ = phone_number_id;
        self.decode(body)
    }
}

/// Takes what providers report (webhooks, the simulator).
#[async_trait]
pub trait ProviderEventSink: Send + Sync + 'static {
    /// Stores `events` reported for `session`.
    ///
    /// # Errors
    /// When storage fails: the provider should deliver again.
    async fn deliver(
        &self,
        session: &Session,
        events: Vec<ProviderEvent>,
    ) -> Result<(), RepositoryError>;
}
