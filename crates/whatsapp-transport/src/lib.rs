//! # maveraa-whatsapp-transport
//!
//! Adapters of Maveraa's WhatsApp transport port
//! ([`maveraa_domain::transport::WhatsAppTransport`]) to WhatsApp providers.
//!
//! - [`cloud_api`]: Meta's WhatsApp Cloud API ([`CloudApiTransport`]).

pub mod cloud_api;

pub use cloud_api::{
    CloudApiConfig, CloudApiTransport, DEFAULT_BASE_URL, TransportBuildError, build_http_client,
};
