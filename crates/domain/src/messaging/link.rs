//! Linked devices (WhatsApp Web): what their connection reports, and what
//! is recorded of it.

use std::fmt;

use super::message::ProviderEvent;
use super::session::{LinkCode, LinkedAccount, SessionStatus};

/// Tells a linked device's connection whether what it reported is stored:
/// only then does it acknowledge it to WhatsApp, so a crash in between
/// means a redelivery, never a loss.
pub struct LinkAck(Box<dyn FnOnce(bool) + Send>);

impl LinkAck {
    /// An acknowledgement that calls `f` with whether the events were
    /// stored.
    pub fn new(f: impl FnOnce(bool) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Says whether the events were stored.
    pub fn send(self, stored: bool) {
        (self.0)(stored);
    }
}

impl fmt::Debug for LinkAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkAck")
    }
}

/// What a linked device's connection reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A QR code to scan (a new one as each expires).
    Qr(LinkCode),
    /// Linked (after a scan or a pairing code) or connected again.
    Connected(LinkedAccount),
    /// The connection dropped; it is being opened again.
    Disconnected {
        /// Why, as the connection said.
        reason: String,
    },
    /// The phone unlinked the device: no reconnecting.
    LoggedOut {
        /// Why, when WhatsApp said.
        reason: Option<String>,
    },
    /// WhatsApp refused the account (a temporary ban, with its end when
    /// said).
    Failed {
        /// Why, with the ban's end when known.
        reason: String,
    },
    /// Messages and statuses, to be stored before `ack` is told.
    Provider {
        /// The events, in order.
        events: Vec<ProviderEvent>,
        /// Told whether they were stored.
        ack: Option<LinkAck>,
    },
}

/// What is recorded of a linked device's connection: its session's
/// status, and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUpdate {
    /// Opening the connection.
    Starting,
    /// Waiting for a scan of this code.
    Qr(LinkCode),
    /// Linked as this account.
    Connected(LinkedAccount),
    /// Reconnecting, for this reason.
    Disconnected(String),
    /// Unlinked; its device state is deleted with this record.
    LoggedOut(Option<String>),
    /// Refused by WhatsApp, for this reason.
    Failed(String),
}

impl LinkUpdate {
    /// The session status this update records.
    pub fn status(&self) -> SessionStatus {
        match self {
            Self::Starting => SessionStatus::Starting,
            Self::Qr(_) => SessionStatus::QrRequired,
            Self::Connected(_) => SessionStatus::Connected,
            Self::Disconnected(_) => SessionStatus::Disconnected,
            Self::LoggedOut(_) => SessionStatus::LoggedOut,
            Self::Failed(_) => SessionStatus::Failed,
        }
    }

    /// The update a connection's event records, if any.
    pub fn from_event(event: &LinkEvent) -> Option<Self> {
        Some(match event {
            LinkEvent::Qr(code) => Self::Qr(code.clone()),
            LinkEvent::Connected(me) => Self::Connected(me.clone()),
            LinkEvent::Disconnected { reason } => Self::Disconnected(reason.clone()),
            LinkEvent::LoggedOut { reason } => Self::LoggedOut(reason.clone()),
            LinkEvent::Failed { reason } => Self::Failed(reason.clone()),
            LinkEvent::Provider { .. } => return None,
        })
    }
}

/// What the API asked of a linked session's connection, for the server
/// that holds it to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkRequests {
    /// A pairing code is wanted for this phone number (digits only).
    pub pair_phone: Option<String>,
    /// Unlink the device.
    pub logout: bool,
}

/// The answer to a pairing-code request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// The code to enter on the phone (`ABCD-EFGH`).
    Code(String),
    /// Why none could be had.
    Failed(String),
}
