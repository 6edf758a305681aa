//! # maveraa-whatsapp-transport
//!
//! Adapters of Maveraa's WhatsApp ports to WhatsApp providers:
//!
//! - [`cloud_api`]: Meta's WhatsApp Cloud API sender ([`CloudApiTransport`],
//!   for [`maveraa_domain::transport::WhatsAppTransport`]);
//! - [`simulator`]: a simulated provider for development and tests
//!   ([`Simulator`], [`SimulatorTransport`]);
//! - [`factory`]: the transport of each session ([`Transports`], for
//!   [`maveraa_domain::ports::TransportFactory`]);
//! - [`webhook`]: Meta's webhook handshake, signature check and decoder into
//!   provider-neutral events ([`CloudApiWebhooks`], for
//!   [`maveraa_domain::ports::WebhookProtocol`]; [`Transports`] hands it out
//!   for Cloud API sessions);
//! - [`whatsapp_web`]: the WhatsApp Web engine (`whatsapp-rust`):
//!   [`WhatsAppWebEngine`], a [`maveraa_domain::ports::LinkEngine`], over
//!   its storage on the device-state port ([`DeviceBackend`]).
//!
//! Every provider reports into one [`maveraa_domain::ports::ProviderEventSink`]
//! (the domain's inbox): webhook providers through the inbox's webhook
//! entry, which opens deliveries with their protocol; the simulator (and
//! socket providers) directly.
//!
//! Wiring: build a [`Simulator`], hand a clone to [`Transports`], build the
//! domain's inbox with the transports, then give the inbox to
//! [`Simulator::set_sink`].

pub mod cloud_api;
pub mod factory;
pub mod link_simulator;
pub mod links;
pub mod media_download;
pub mod media_fetch;
pub mod simulator;
pub mod webhook;
pub mod whatsapp_web;

pub use cloud_api::{
    CloudApiConfig, CloudApiTransport, DEFAULT_BASE_URL, TransportBuildError, build_http_client,
};
pub use factory::Transports;
pub use link_simulator::{LinkSimulator, SimulatedConnection};
pub use links::{LiveLinks, PacedLink};
pub use media_download::{MediaDownloads, WHATSAPP_MEDIA_HOSTS};
pub use media_fetch::{FetchedMedia, MediaFetcher};
pub use simulator::{SIMULATOR_ID_PREFIX, Simulator, SimulatorConfig, SimulatorTransport};
pub use webhook::CloudApiWebhooks;
pub use whatsapp_web::{DeviceBackend, FakeWhatsApp, WhatsAppWebEngine};
