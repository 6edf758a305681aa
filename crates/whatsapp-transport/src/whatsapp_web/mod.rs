//! WhatsApp Web, through the `whatsapp-rust` engine (a linked device that
//! speaks the multi-device protocol over a socket): [`WhatsAppWebEngine`]
//! opens a session's device as a [`maveraa_domain::ports::LinkEngine`],
//! with [`DeviceBackend`] keeping the engine's state of the device in a
//! [`maveraa_domain::ports::DeviceStateStore`]. The engine's client is
//! reached through [`WaClient`]; [`fake::FakeWhatsApp`] stands in for
//! WhatsApp in tests.

pub mod client;
mod codec;
pub mod device_state;
pub mod engine;
pub mod fake;
pub mod ids;
mod mapping;
pub mod media;

pub use client::{Callbacks, RealClients, WaClient, WaClients};
pub use codec::CodecError;
pub use device_state::DeviceBackend;
pub use engine::{WebConnection, WhatsAppWebEngine};
pub use fake::{FakeClient, FakeSend, FakeWhatsApp};
pub use ids::derive_message_id;
