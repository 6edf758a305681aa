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

/// Where WhatsApp keeps a received file and how to open it: what
/// [`MediaInfo::locator`](maveraa_domain::messaging::MediaInfo::locator)
/// holds for WhatsApp Web media, as
/// `wa1.<type>.<key>.<encrypted sha256>.<sha256>.<length>.<direct path>`
/// (hex digests; the path last, as it may hold dots).
#[derive(Clone, PartialEq, Eq)]
pub struct Locator {
    /// Which keys the file is encrypted with.
    pub media_type: MediaType,
    /// Its path on any media host.
    pub direct_path: String,
    /// The key it is encrypted with.
    pub media_key: Vec<u8>,
    /// SHA-256 of the encrypted file (also the download's token).
    pub file_enc_sha256: Vec<u8>,
    /// SHA-256 of the plain file, when given.
    pub file_sha256: Vec<u8>,
    /// Plain size in bytes, when given (0 otherwise).
    pub file_length: u64,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("media_type", &self.media_type)
            .field("file_length", &self.file_length)
            .finish_non_exhaustive()
    }
}

const LOCATOR_VERSION: &str = "wa1";

fn type_name(t: MediaType) -> Option<&'static str> {
    Some(match t {
        MediaType::Image => "image",
        MediaType::Video => "video",
        MediaType::Audio => "audio",
        MediaType::Document => "document",
        MediaType::Sticker => "sticker",
        _ => return None,
    })
}

impl Locator {
    /// The locator of a received file, when its message carries what a
    /// download needs (a path, a key and the encrypted digest).
    pub(crate) fn of(
        media_type: MediaType,
        direct_path: Option<&String>,
        media_key: Option<&Vec<u8>>,
        file_enc_sha256: Option<&Vec<u8>>,
        file_sha256: Option<&Vec<u8>>,
        file_length: Option<u64>,
    ) -> Option<Self> {
        let direct_path = direct_path.filter(|p| p.starts_with('/'))?;
        Some(Self {
            media_type,
            direct_path: direct_path.clone(),
            media_key: media_key.filter(|k| !k.is_empty())?.clone(),
            file_enc_sha256: file_enc_sha256.filter(|d| !d.is_empty())?.clone(),
            file_sha256: file_sha256.cloned().unwrap_or_default(),
            file_length: file_length.unwrap_or(0),
        })
    }

    /// Its text form.
    pub fn encode(&self) -> Option<String> {
        Some(format!(
            "{LOCATOR_VERSION}.{}.{}.{}.{}.{}.{}",
            type_name(self.media_type)?,
            hex::encode(&self.media_key),
            hex::encode(&self.file_enc_sha256),
            hex::encode(&self.file_sha256),
            self.file_length,
            self.direct_path
        ))
    }

    /// Reads a locator written by [`Locator::encode`].
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(7, '.');
        if parts.next()? != LOCATOR_VERSION {
            return None;
        }
        let media_type = match parts.next()? {
            "image" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" => MediaType::Audio,
            "document" => MediaType::Document,
            "sticker" => MediaType::Sticker,
            _ => return None,
        };
        let media_key = hex::decode(parts.next()?).ok()?;
        let file_enc_sha256 = hex::decode(parts.next()?).ok()?;
        let file_sha256 = hex::decode(parts.next()?).ok()?;
        let file_length = parts.next()?.parse().ok()?;
        let direct_path = parts.next()?.to_owned();
        Some(Self {
            media_type,
            direct_path,
            media_key,
            file_enc_sha256,
            file_sha256,
            file_length,
        })
    }

    /// The file's URL on `host` (a scheme and a host name, e.g.
    /// `https://mmg.whatsapp.net`): media hosts need no credential for a
    /// download, only the encrypted file's digest as a token.
    pub fn url_on(&self, host: &str) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.file_enc_sha256);
        format!(
            "{}{}?token={token}",
            host.trim_end_matches('/'),
            self.direct_path
        )
    }

    /// Checks and decrypts the downloaded `encrypted` file (CPU work:
    /// call it off the async threads).
    ///
    /// # Errors
    /// A text saying why when the file is not the one the message names
    /// (a wrong MAC or digest) or cannot be decrypted.
    pub fn open(&self, encrypted: &[u8]) -> Result<Vec<u8>, String> {
        use whatsapp_rust::wacore::download::DownloadUtils;
        let plain = DownloadUtils::verify_and_decrypt(encrypted, &self.media_key, self.media_type)
            .map_err(|e| format!("the file could not be decrypted: {e}"))?;
        if !self.file_sha256.is_empty() {
            DownloadUtils::validate_plaintext_sha256(&plain, &self.file_sha256)
                .map_err(|e| format!("the decrypted file is not the one sent: {e}"))?;
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::wacore::upload::encrypt_media;

    use super::*;

    fn sealed(plain: &[u8], t: MediaType) -> (Locator, Vec<u8>) {
        let e = encrypt_media(plain, t).expect("encrypt");
        let l = Locator::of(
            t,
            Some(&"/v/t62.7118-24/abc.enc".to_owned()),
            Some(&e.media_key.to_vec()),
            Some(&e.file_enc_sha256.to_vec()),
            Some(&e.file_sha256.to_vec()),
            Some(plain.len() as u64),
        )
        .expect("locator");
        (l, e.data_to_upload)
    }

    #[test]
    fn a_locator_reads_back_and_opens_its_file() {
        let (l, encrypted) = sealed(b"a picture", MediaType::Image);
        let text = l.encode().expect("encode");
        assert!(text.starts_with("wa1.image."), "{text}");
        let back = Locator::parse(&text).expect("parse");
        assert!(back == l);
        assert_eq!(back.direct_path, "/v/t62.7118-24/abc.enc");
        assert_eq!(back.open(&encrypted).expect("open"), b"a picture");
        assert!(
            back.url_on("https://mmg.whatsapp.net/")
                .starts_with("https://mmg.whatsapp.net/v/t62.7118-24/abc.enc?token=")
        );
    }

    #[test]
    fn a_wrong_file_or_key_type_is_refused() {
        let (l, mut encrypted) = sealed(b"a document", MediaType::Document);
        let mut as_image = l.clone();
        as_image.media_type = MediaType::Image;
        assert!(as_image.open(&encrypted).is_err(), "other keys");
        let last = encrypted.len() - 1;
        encrypted[last] ^= 1;
        assert!(l.open(&encrypted).is_err(), "a changed byte");
        assert!(Locator::parse("wa2.image.00.00.00.1./p").is_none());
        assert!(Locator::parse("wa1.image.zz.00.00.1./p").is_none());
        // Without a key or a path, nothing to download.
        assert!(
            Locator::of(
                MediaType::Image,
                None,
                Some(&vec![1]),
                Some(&vec![1]),
                None,
                None
            )
            .is_none()
        );
        assert!(
            Locator::of(
                MediaType::Image,
                Some(&"/p".to_owned()),
                None,
                Some(&vec![1]),
                None,
                None
            )
            .is_none()
        );
    }
}
