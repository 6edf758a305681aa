//! Media messages: what an upload gives ([`Uploaded`]) and the message
//! that carries it.

use maveraa_domain::transport::MediaKind;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::download::MediaType;
use whatsapp_rust::waproto::whatsapp as wa;

/// Media encrypted and stored on WhatsApp's media servers: what a message
/// needs for the recipient to fetch and decrypt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Its URL on the media servers.
    pub url: String,
    /// Its path on any media host.
    pub direct_path: String,
    /// The key it was encrypted with.
    pub media_key: [u8; 32],
    /// SHA-256 of the encrypted file.
    pub file_enc_sha256: [u8; 32],
    /// SHA-256 of the plain file.
    pub file_sha256: [u8; 32],
    /// Plain size in bytes.
    pub file_length: u64,
    /// When the key was made (Unix seconds).
    pub media_key_timestamp: i64,
    /// Seek table for progressive playback (audio and video).
    pub streaming_sidecar: Option<Vec<u8>>,
}

impl From<whatsapp_rust::upload::UploadResponse> for Uploaded {
    fn from(u: whatsapp_rust::upload::UploadResponse) -> Self {
        Self {
            url: u.url,
            direct_path: u.direct_path,
            media_key: u.media_key,
            file_enc_sha256: u.file_enc_sha256,
            file_sha256: u.file_sha256,
            file_length: u.file_length,
            media_key_timestamp: u.media_key_timestamp,
            streaming_sidecar: u.streaming_sidecar,
        }
    }
}

/// The engine's media type of a kind (which keys encrypt it).
pub(crate) fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
    }
}

/// The message carrying uploaded media `u` of `kind`.
pub(crate) fn media_message(
    kind: MediaKind,
    u: Uploaded,
    mimetype: String,
    caption: Option<String>,
    file_name: Option<String>,
) -> wa::Message {
    let mut m = wa::Message::default();
    match kind {
        MediaKind::Image => {
            m.image_message = MessageField::some(wa::message::ImageMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key.to_vec()),
                file_sha256: Some(u.file_sha256.to_vec()),
                file_enc_sha256: Some(u.file_enc_sha256.to_vec()),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                mimetype: Some(mimetype),
                caption,
                ..Default::default()
            });
        }
        MediaKind::Video => {
            m.video_message = MessageField::some(wa::message::VideoMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key.to_vec()),
                file_sha256: Some(u.file_sha256.to_vec()),
                file_enc_sha256: Some(u.file_enc_sha256.to_vec()),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                streaming_sidecar: u.streaming_sidecar,
                mimetype: Some(mimetype),
                caption,
                ..Default::default()
            });
        }
        MediaKind::Audio => {
            m.audio_message = MessageField::some(wa::message::AudioMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key.to_vec()),
                file_sha256: Some(u.file_sha256.to_vec()),
                file_enc_sha256: Some(u.file_enc_sha256.to_vec()),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                streaming_sidecar: u.streaming_sidecar,
                mimetype: Some(mimetype),
                ..Default::default()
            });
        }
        MediaKind::Document => {
            m.document_message = MessageField::some(wa::message::DocumentMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key.to_vec()),
                file_sha256: Some(u.file_sha256.to_vec()),
                file_enc_sha256: Some(u.file_enc_sha256.to_vec()),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                mimetype: Some(mimetype),
                file_name,
                caption,
                ..Default::default()
            });
        }
    }
    m
}
