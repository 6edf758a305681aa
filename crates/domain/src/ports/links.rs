//! Linked devices (WhatsApp Web): the engine that holds their connections,
//! and where their link state and the API's requests to them are kept, so
//! that any server can answer for a session another server holds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::RepositoryError;
use crate::ids::SessionId;
use crate::messaging::{LinkCode, LinkEvent, LinkRequests, LinkUpdate, PairOutcome, Session};

use super::provider::{TransportError, WhatsAppTransport};

/// What a linked device's connection reports, in order. `None` once the
/// connection has ended for good (closed, logged out).
#[async_trait]
pub trait LinkEventStream: Send {
    /// The next event.
    async fn next(&mut self) -> Option<LinkEvent>;
}

/// An open connection of a linked device: it sends (as a transport) and
/// answers the API's requests.
#[async_trait]
pub trait LinkConnection: WhatsAppTransport {
    /// A pairing code for linking without a camera: the phone of `phone`
    /// (digits, with country code) enters it.
    ///
    /// # Errors
    /// [`TransportError`] when WhatsApp gave none.
    async fn pair_code(&self, phone: &str) -> Result<String, TransportError>;

    /// Unlinks the device from the phone.
    ///
    /// # Errors
    /// [`TransportError`] when WhatsApp could not be told; the device's
    /// keys are deleted anyway.
    async fn logout(&self) -> Result<(), TransportError>;

    /// Closes the connection (the device stays linked).
    async fn close(&self);
}

/// An opened connection and its events.
pub struct Link {
    /// The connection.
    pub connection: Arc<dyn LinkConnection>,
    /// What it reports.
    pub events: Box<dyn LinkEventStream>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

/// Opens linked devices' connections (the WhatsApp Web engine).
#[async_trait]
pub trait LinkEngine: Send + Sync + 'static {
    /// Opens `session`'s connection: with its device's stored state when it
    /// is linked, else reporting QR codes until it is.
    ///
    /// # Errors
    /// [`TransportError`] when it cannot be opened.
    async fn open(&self, session: &Session) -> Result<Link, TransportError>;
}

/// Where linked sessions' state is recorded, shared by every server.
#[async_trait]
pub trait SessionLinks: Send + Sync + 'static {
    /// The sessions whose provider holds a connection and that should run:
    /// neither stopped nor logged out.
    ///
    /// # Errors
    /// [`RepositoryError`] when storage fails.
    async fn runnable(&self) -> Result<Vec<Session>, RepositoryError>;

    /// Holds `session` for `holder` (a server's name: the one its
    /// dispatcher claims with, as only the holder can send) until `ttl` from now by the database's
    /// clock: taken when no one holds it or the hold ran out, renewed when
    /// `holder` has it. Returns whether `holder` holds it.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn hold(
        &self,
        session: SessionId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, RepositoryError>;

    /// Lets `session` go, if `holder` holds it.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn release(&self, session: SessionId, holder: &str) -> Result<(), RepositoryError>;

    /// Records what `session`'s connection reported, as its status (a
    /// stopped session stays stopped); a QR code replaces the last; a
    /// logout deletes the device's state in the same transaction.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn record(&self, session: SessionId, update: &LinkUpdate) -> Result<(), RepositoryError>;

    /// The QR code to scan, while the session waits for one and it has not
    /// expired.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn qr(&self, session: SessionId) -> Result<Option<LinkCode>, RepositoryError>;

    /// Asks the holder of `session` for a pairing code for `phone`,
    /// replacing an earlier request and its answer.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn request_pair_code(
        &self,
        session: SessionId,
        phone: &str,
    ) -> Result<(), RepositoryError>;

    /// Asks the holder of `session` to unlink its device.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn request_logout(&self, session: SessionId) -> Result<(), RepositoryError>;

    /// Takes what was asked of `session` since the last call (each request
    /// is taken once).
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn take_requests(&self, session: SessionId) -> Result<LinkRequests, RepositoryError>;

    /// Records the answer to the pairing-code request.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn answer_pair_code(
        &self,
        session: SessionId,
        outcome: &PairOutcome,
    ) -> Result<(), RepositoryError>;

    /// The answer to the last pairing-code request, once given.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn pair_code_answer(
        &self,
        session: SessionId,
    ) -> Result<Option<PairOutcome>, RepositoryError>;

    /// Fails the messages of linked sessions that have waited, queued,
    /// longer than `waited` for their session to connect (neither
    /// connected nor stopped: a stopped session's messages wait for its
    /// start), with the error code `session_not_connected`. Returns how
    /// many.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn fail_unsent(&self, waited: Duration) -> Result<u64, RepositoryError>;

    /// Whether any server holds `session` now.
    ///
    /// # Errors
    /// As [`SessionLinks::runnable`].
    async fn is_held(&self, session: SessionId) -> Result<bool, RepositoryError>;
}
