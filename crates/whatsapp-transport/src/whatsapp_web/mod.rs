//! WhatsApp Web, through the `whatsapp-rust` engine (a linked device that
//! speaks the multi-device protocol over a socket). For now, its storage:
//! [`DeviceBackend`] keeps the engine's state of a session's device in a
//! [`maveraa_domain::ports::DeviceStateStore`].

mod codec;
pub mod device_state;

pub use codec::CodecError;
pub use device_state::DeviceBackend;
