//! Providers: how a message leaves and how what a provider reports comes in.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::RepositoryError;
use crate::messaging::{ProviderEvent, Session, WaId};
use crate::transport::OutboundMessage;

/// Why a provider did not take a message (or a read receipt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The provider could not be reached at all: the request was not
    /// written (a connection failure). Worth trying again later; the
    /// session is `disconnected` meanwhile.
    #[error("unreachable: {reason}")]
    Unreachable {
        /// What happened, for logs and the session's last error.
        reason: String,
    },
    /// The provider answered but asked to try again later: `429` or a
    /// `5xx`. `retry_after` is the provider's own advice, when it gave one.
    #[error("retryable: {reason}")]
    Retryable {
        /// What happened, for logs and the message's status history.
        reason: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help: the provider refused the request
    /// (other `4xx`), with its own error code and message kept.
    #[error("permanent: {message}")]
    Permanent {
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
    /// The provider refused the session's credentials (an expired or
    /// revoked token, a logged-out device): no message of the session can
    /// go until they are renewed. The message fails and the session turns
    /// `failed`.
    #[error("credentials refused: {message}")]
    CredentialsRefused {
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
    /// The request was written and then no answer told whether the
    /// provider took it: the answer timed out, the connection broke, or a
    /// success answer could not be read. Sending again at once could send
    /// twice: the dispatcher waits for a status report carrying our
    /// message id first (see [`OutboundMessage::message_id`]).
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown {
        /// What happened.
        reason: String,
    },
}

/// Sends messages through one WhatsApp number (one session) of a provider.
#[async_trait]
pub trait WhatsAppTransport: Send + Sync + 'static {
    /// Hands `message` to the provider and returns the provider's id for it.
    ///
    /// # Errors
    /// [`TransportError::Retryable`] or [`TransportError::Permanent`] as
    /// described on each variant.
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError>;

    /// Tells the provider that the inbound message `provider_message_id`
    /// from `from` was read (blue ticks). Providers without read receipts
    /// return `Ok`.
    ///
    /// # Errors
    /// As [`WhatsAppTransport::send`].
    async fn mark_read(&self, provider_message_id: &str, from: &WaId)
    -> Result<(), TransportError>;
}

/// Gives the transport of a session and, for providers that report through
/// webhooks, their protocol.
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

    /// The webhook protocol of `session`'s provider; `None` for providers
    /// that do not report through webhooks.
    fn webhook_protocol(&self, session: &Session) -> Option<Arc<dyn WebhookProtocol>>;
}

/// A request a provider made to a session's webhook URL, as the HTTP
/// adapter received it: nothing in it is interpreted yet.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The query parameters, decoded, in order.
    pub query: &'a [(String, String)],
    /// The headers whose values are text, names in lower case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, exactly as received (signatures cover these bytes).
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// The first query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header `name` (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Events a webhook delivery carried for one account of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvents {
    /// The provider's id of the account they concern, as
    /// [`ProviderSettings::account_id`](crate::messaging::ProviderSettings::account_id)
    /// gives it; `None` when the delivery does not say, which means the
    /// session the delivery was addressed to.
    pub account: Option<String>,
    /// The events, in the order the provider wrote them.
    pub events: Vec<ProviderEvent>,
}

/// Why a webhook request was refused. Nothing of a refused request is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRefusal {
    /// The delivery's signature is missing or is not the session's.
    #[error("invalid webhook signature")]
    BadSignature,
    /// A subscription handshake with a wrong token or a missing part.
    #[error("webhook verification refused")]
    VerificationRefused,
    /// The body is not a delivery of the provider's format.
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

/// The webhook protocol of a provider that reports by calling us: how its
/// requests are authenticated and decoded into provider-neutral events.
/// Socket providers have none; they hand their events to the
/// [`ProviderEventSink`] directly.
pub trait WebhookProtocol: Send + Sync + 'static {
    /// Answers a subscription handshake for `session` (a `GET` the provider
    /// makes when the URL is configured): the body to answer with.
    ///
    /// # Errors
    /// [`WebhookRefusal::VerificationRefused`] when the request does not
    /// prove it comes from whoever configured the session.
    fn handshake(
        &self,
        session: &Session,
        request: &WebhookRequest<'_>,
    ) -> Result<String, WebhookRefusal>;

    /// Checks what a delivery's headers alone can tell (names in lower
    /// case), before its body is read: a delivery that lacks the
    /// provider's proof of origin is refused without costing a body read.
    ///
    /// # Errors
    /// [`WebhookRefusal::BadSignature`] when the headers cannot carry a
    /// valid signature.
    fn precheck(&self, session: &Session, headers: &[(&str, &str)]) -> Result<(), WebhookRefusal>;

    /// Authenticates a delivery addressed to `session` and decodes it,
    /// grouped by the provider account each event concerns.
    ///
    /// # Errors
    /// [`WebhookRefusal::BadSignature`] before anything is decoded;
    /// [`WebhookRefusal::Malformed`] when the body is not a delivery.
    fn open(
        &self,
        session: &Session,
        request: &WebhookRequest<'_>,
    ) -> Result<Vec<AccountEvents>, WebhookRefusal>;

    /// Whether a delivery authenticated for `addressed` also vouches for
    /// events of `other`'s account (providers that send the events of
    /// several accounts to one URL sign them with one credential).
    fn vouches_for(&self, addressed: &Session, other: &Session) -> bool;
}

/// The one entry for what providers report, whichever way it comes:
/// webhook deliveries (after their [`WebhookProtocol`] opened them), socket
/// connections and the simulator all push the same neutral events here.
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
