//! `[events]` and `[webhooks]`: the event log and its delivery to
//! customers' endpoints.

use std::time::Duration;

use serde::Deserialize;

/// `[events]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Days an event is kept (at least 1).
    pub retention_days: u32,
    /// How often committed events are placed in the log, in ms: the most
    /// an event waits before readers see it.
    pub sequence_every_ms: u64,
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// Lets endpoints name loopback, private and link-local addresses
    /// (self-hosted apps beside the server, tests).
    pub allow_private_targets: bool,
    /// How long a delivery may take before it counts as failed, in ms.
    pub timeout_ms: u64,
    /// Endpoints delivered to at once by this server.
    pub workers: usize,
    /// How often an idle worker looks for deliveries due, in ms.
    pub poll_ms: u64,
    /// The first retry's delay, in ms; each later one doubles it.
    pub retry_base_ms: u64,
    /// The longest delay between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// How long a delivery is retried before it is given up, in hours.
    pub retry_for_hours: u64,
    /// How long an endpoint may fail without a success before it is
    /// disabled, in hours.
    pub disable_after_hours: u64,
    /// How long a worker holds an endpoint without news, in seconds
    /// (another server takes it over after).
    pub lease_secs: u64,
}

impl WebhooksSection {
    /// The delivery policy these settings describe.
    pub fn policy(&self) -> maveraa_domain::DeliveryPolicy {
        maveraa_domain::DeliveryPolicy {
            retry_base: Duration::from_millis(self.retry_base_ms.max(1)),
            retry_max: Duration::from_secs(self.retry_max_secs.max(1)),
            retry_for: Duration::from_secs(self.retry_for_hours.saturating_mul(3600)),
            disable_after: Duration::from_secs(self.disable_after_hours.saturating_mul(3600)),
            round: 100,
            lease: Duration::from_secs(self.lease_secs.max(1)),
        }
    }
}

/// `[whatsapp_web]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppWebSection {
    /// Which engine runs `whatsapp-web` sessions: `off` (they cannot be
    /// created), `simulator` (a simulated WhatsApp Web, for development
    /// and tests: QR codes that link nothing, pairing codes that link a
    /// simulated phone), `whatsapp-rust` (the real one: a device linked
    /// to a phone, its keys in the database) or `whatsapp-rust-fake` (the
    /// real adapter over a fake of the engine's client, for tests: no
    /// WhatsApp server is reached).
    pub engine: String,
    /// How long a server holds a session without renewing, in seconds:
    /// another server takes a session over this long after its server
    /// died.
    pub hold_secs: u64,
    /// How often a server looks for sessions to run and for requests to
    /// the sessions it runs, in ms.
    pub poll_ms: u64,
    /// The QR code rotation of the simulator and of the fake client, in ms.
    pub simulator_qr_every_ms: u64,
    /// The least time between two sends of one linked session, in ms; each
    /// gap is stretched by up to half of it at random.
    pub send_interval_ms: u64,
    /// Largest media a linked session fetches from a URL to send, in MB.
    pub media_max_mb: u64,
    /// How long fetching media for a send may take, in ms.
    pub media_timeout_ms: u64,
    /// Lets media URLs name loopback, private and link-local addresses.
    pub media_allow_private: bool,
    /// How long a message waits, queued, for its linked session to
    /// connect before it fails (`session_not_connected`), in hours; 0:
    /// forever.
    pub queued_for_hours: u64,
    /// Where received WhatsApp Web media is downloaded from, in order
    /// (scheme and host).
    pub media_hosts: Vec<String>,
}
