//! WhatsApp Web, through the `whatsapp-rust` engine (a linked device that
//! speaks the multi-device protocol over a socket): [`WhatsAppWebEngine`]
//! opens a session's device as a [`maveraa_domain::ports::LinkEngine`],
//! with [`DeviceBackend`] keeping the engine's state of the device in a
//! [`maveraa_domain::ports::DeviceStateStore`].

mod codec;
pub mod device_state;
pub mod engine;
pub mod ids;
mod mapping;

pub use codec::CodecError;
pub use device_state::DeviceBackend;
pub use engine::{WebConnection, WhatsAppWebEngine};
pub use ids::derive_message_id;
