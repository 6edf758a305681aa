//! Byte encodings of the engine's state for the device-state port: keys
//! that sort bytewise in the order the engine asks for, and small versioned
//! values. Pure functions, no I/O.
//!
//! Keys:
//! - numbers are big-endian, so bytewise order is numeric order; signed
//!   numbers have their sign bit flipped first ([`ordered_i64`]) so that
//!   negative ones sort before positive ones;
//! - a key of several strings is each one prefixed with its length as a
//!   big-endian `u32` ([`Key`]): unambiguous whatever bytes the strings
//!   hold, and the key of the first parts is a prefix of every key that
//!   starts with them, so a scan by prefix finds "all rows of this group".
//!
//! Values start with a version byte ([`V1`]) so a later layout can be told
//! apart; opaque blobs the engine hands over (Signal records) are stored as
//! they are.

use std::collections::BTreeMap;

use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, LidPnMappingEntry, TcTokenEntry};

/// The version byte of every value layout below.
pub(crate) const V1: u8 = 1;

/// Why stored bytes could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes end before the layout does.
    #[error("{0}: truncated")]
    Truncated(&'static str),
    /// The bytes go on after the layout ends.
    #[error("{0}: trailing bytes")]
    Trailing(&'static str),
    /// A version byte this code does not know.
    #[error("{what}: unknown layout version {version}")]
    Version {
        /// What was being read.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A string that is not UTF-8.
    #[error("{0}: not UTF-8")]
    Utf8(&'static str),
    /// A field out of its range.
    #[error("{0}: invalid value")]
    Invalid(&'static str),
    /// A JSON-encoded value that does not parse.
    #[error("{what}: {source}")]
    Json {
        /// What was being read.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

// ---------------------------------------------------------------------------
// Keys

/// A `u32` key whose bytewise order is numeric order.
pub(crate) fn u32_key(id: u32) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// The `u32` of a key made by [`u32_key`].
pub(crate) fn decode_u32_key(key: &[u8]) -> Result<u32, CodecError> {
    let bytes: [u8; 4] = key.try_into().map_err(|_| CodecError::Invalid("u32 key"))?;
    Ok(u32::from_be_bytes(bytes))
}

/// An `i64` as 8 bytes whose bytewise order is numeric order.
pub(crate) fn ordered_i64(v: i64) -> [u8; 8] {
    // Reinterpreting the bits is the point: flipping the sign bit maps
    // i64::MIN..=i64::MAX onto 0..=u64::MAX in order.
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`ordered_i64`].
pub(crate) fn decode_ordered_i64(bytes: &[u8]) -> Result<i64, CodecError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| CodecError::Invalid("ordered i64"))?;
    Ok((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// A key of length-prefixed parts (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    /// An empty key.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends `part`, prefixed with its length.
    pub(crate) fn part(mut self, part: &[u8]) -> Self {
        // Engine keys are JIDs and ids (tens of bytes); a part over 4 GiB
        // cannot reach here, and saturating keeps the function total.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// Appends `bytes` as they are (a fixed-width field, or the raw rest).
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The key's bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a key (or a value) part by part.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`; `what` names them in errors.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    /// A reader of a value, after checking its version byte is [`V1`].
    pub(crate) fn value(bytes: &'a [u8], what: &'static str) -> Result<Self, CodecError> {
        let mut reader = Self::new(bytes, what);
        match reader.u8()? {
            V1 => Ok(reader),
            version => Err(CodecError::Version { what, version }),
        }
    }

    /// The next `n` bytes.
    pub(crate) fn fixed(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError::Truncated(self.what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next byte.
    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.fixed(1)?[0])
    }

    /// The next big-endian `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        let bytes: [u8; 8] = self
            .fixed(8)?
            .try_into()
            .map_err(|_| CodecError::Truncated(self.what))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// The next `i64` written by [`Writer::i64`].
    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        decode_ordered_i64(self.fixed(8)?)
    }

    /// The next length-prefixed part.
    pub(crate) fn part(&mut self) -> Result<&'a [u8], CodecError> {
        let len: [u8; 4] = self
            .fixed(4)?
            .try_into()
            .map_err(|_| CodecError::Truncated(self.what))?;
        let len = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| CodecError::Truncated(self.what))?;
        self.fixed(len)
    }

    /// The next length-prefixed part, as a string.
    pub(crate) fn str(&mut self) -> Result<&'a str, CodecError> {
        std::str::from_utf8(self.part()?).map_err(|_| CodecError::Utf8(self.what))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// Checks nothing is left.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing(self.what))
        }
    }
}

/// Builds a value (version byte first).
#[derive(Debug)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// A value of layout [`V1`].
    pub(crate) fn v1() -> Self {
        Self(vec![V1])
    }

    /// Appends a byte.
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }

    /// Appends a big-endian `u64`.
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends an `i64` (order-preserving, see [`ordered_i64`]).
    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&ordered_i64(v));
        self
    }

    /// Appends a length-prefixed part.
    pub(crate) fn part(mut self, part: &[u8]) -> Self {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// Appends bytes as they are.
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The value's bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

// ---------------------------------------------------------------------------
// Values

/// A pre-key: its uploaded flag, then its record.
pub(crate) fn encode_prekey(record: &[u8], uploaded: bool) -> Vec<u8> {
    Writer::v1().u8(u8::from(uploaded)).raw(record).into_bytes()
}

/// The record and uploaded flag of [`encode_prekey`].
pub(crate) fn decode_prekey(bytes: &[u8]) -> Result<(&[u8], bool), CodecError> {
    let mut r = Reader::value(bytes, "prekey")?;
    let uploaded = r.u8()? != 0;
    Ok((r.rest(), uploaded))
}

/// An app-state sync key.
pub(crate) fn encode_sync_key(key: &AppStateSyncKey) -> Vec<u8> {
    Writer::v1()
        .part(&key.key_data)
        .part(&key.fingerprint)
        .i64(key.timestamp)
        .into_bytes()
}

/// The inverse of [`encode_sync_key`].
pub(crate) fn decode_sync_key(bytes: &[u8]) -> Result<AppStateSyncKey, CodecError> {
    let mut r = Reader::value(bytes, "sync key")?;
    let key = AppStateSyncKey {
        key_data: r.part()?.to_vec(),
        fingerprint: r.part()?.to_vec(),
        timestamp: r.i64()?,
    };
    r.finish()?;
    Ok(key)
}

/// An app-state collection's hash state. The map is written in key order,
/// so equal states encode to equal bytes.
pub(crate) fn encode_hash_state(state: &HashState) -> Vec<u8> {
    let sorted: BTreeMap<&String, &Vec<u8>> = state.index_value_map.iter().collect();
    let count = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
    let mut w = Writer::v1()
        .u64(state.version)
        .raw(&state.hash)
        .u8(u8::from(state.mac_mismatch_fatal))
        .raw(&count.to_be_bytes());
    for (index, value) in sorted {
        w = w.part(index.as_bytes()).part(value);
    }
    w.into_bytes()
}

/// The inverse of [`encode_hash_state`].
pub(crate) fn decode_hash_state(bytes: &[u8]) -> Result<HashState, CodecError> {
    const WHAT: &str = "hash state";
    let mut r = Reader::value(bytes, WHAT)?;
    let version = r.u64()?;
    let hash: [u8; 128] = r
        .fixed(128)?
        .try_into()
        .map_err(|_| CodecError::Truncated(WHAT))?;
    let mac_mismatch_fatal = r.u8()? != 0;
    let count: [u8; 4] = r
        .fixed(4)?
        .try_into()
        .map_err(|_| CodecError::Truncated(WHAT))?;
    let count = u32::from_be_bytes(count);
    let mut index_value_map = std::collections::HashMap::new();
    for _ in 0..count {
        let index = r.str()?.to_owned();
        let value = r.part()?.to_vec();
        index_value_map.insert(index, value);
    }
    r.finish()?;
    Ok(HashState {
        version,
        hash,
        index_value_map,
        mac_mismatch_fatal,
    })
}

/// A mutation MAC: the version it was put at, then the value MAC.
pub(crate) fn encode_mutation_mac(version: u64, value_mac: &[u8]) -> Vec<u8> {
    Writer::v1().u64(version).raw(value_mac).into_bytes()
}

/// The value MAC of [`encode_mutation_mac`].
pub(crate) fn decode_mutation_mac(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::value(bytes, "mutation mac")?;
    let _version = r.u64()?;
    Ok(r.rest().to_vec())
}

/// A LID mapping without its LID (the LID is the key).
pub(crate) fn encode_lid_mapping(entry: &LidPnMappingEntry) -> Vec<u8> {
    Writer::v1()
        .part(entry.phone_number.as_bytes())
        .i64(entry.created_at)
        .i64(entry.updated_at)
        .part(entry.learning_source.as_bytes())
        .into_bytes()
}

/// The mapping of `lid` stored by [`encode_lid_mapping`].
pub(crate) fn decode_lid_mapping(
    lid: &[u8],
    bytes: &[u8],
) -> Result<LidPnMappingEntry, CodecError> {
    let mut r = Reader::value(bytes, "lid mapping")?;
    let entry = LidPnMappingEntry {
        lid: std::str::from_utf8(lid)
            .map_err(|_| CodecError::Utf8("lid"))?
            .to_owned(),
        phone_number: r.str()?.to_owned(),
        created_at: r.i64()?,
        updated_at: r.i64()?,
        learning_source: r.str()?.to_owned(),
    };
    r.finish()?;
    Ok(entry)
}

/// A trusted-contact token.
pub(crate) fn encode_tc_token(entry: &TcTokenEntry) -> Vec<u8> {
    Writer::v1()
        .i64(entry.token_timestamp)
        .u8(u8::from(entry.sender_timestamp.is_some()))
        .i64(entry.sender_timestamp.unwrap_or(0))
        .raw(&entry.token)
        .into_bytes()
}

/// The inverse of [`encode_tc_token`].
pub(crate) fn decode_tc_token(bytes: &[u8]) -> Result<TcTokenEntry, CodecError> {
    let mut r = Reader::value(bytes, "tc token")?;
    let token_timestamp = r.i64()?;
    let has_sender = r.u8()? != 0;
    let sender = r.i64()?;
    Ok(TcTokenEntry {
        token: r.rest().to_vec(),
        token_timestamp,
        sender_timestamp: has_sender.then_some(sender),
    })
}

/// A payload with the time (unix seconds) it was stored: sent messages and
/// pending inbound messages.
pub(crate) fn encode_timed(at: i64, payload: &[u8]) -> Vec<u8> {
    Writer::v1().i64(at).raw(payload).into_bytes()
}

/// The time and payload of [`encode_timed`].
pub(crate) fn decode_timed(bytes: &[u8]) -> Result<(i64, &[u8]), CodecError> {
    let mut r = Reader::value(bytes, "timed payload")?;
    let at = r.i64()?;
    Ok((at, r.rest()))
}

/// A message secret with its expiry and parent time.
pub(crate) fn encode_msg_secret(secret: &[u8; 32], expires_at: i64, message_ts: i64) -> Vec<u8> {
    Writer::v1()
        .raw(secret)
        .i64(expires_at)
        .i64(message_ts)
        .into_bytes()
}

/// The inverse of [`encode_msg_secret`].
pub(crate) fn decode_msg_secret(bytes: &[u8]) -> Result<([u8; 32], i64, i64), CodecError> {
    const WHAT: &str = "msg secret";
    let mut r = Reader::value(bytes, WHAT)?;
    let secret: [u8; 32] = r
        .fixed(32)?
        .try_into()
        .map_err(|_| CodecError::Truncated(WHAT))?;
    let expires_at = r.i64()?;
    let message_ts = r.i64()?;
    r.finish()?;
    Ok((secret, expires_at, message_ts))
}

/// A serde value as JSON (device rows and device lists, whose types gain
/// `#[serde(default)]` fields across engine versions: a self-describing
/// format reads older rows).
pub(crate) fn encode_json<T: serde::Serialize>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec(value).map_err(|source| CodecError::Json { what, source })
}

/// The inverse of [`encode_json`].
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, CodecError> {
    serde_json::from_slice(bytes).map_err(|source| CodecError::Json { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_keys_sort_numerically_and_round_trip() {
        let ids = [0u32, 1, 255, 256, 65_535, 65_536, u32::MAX];
        let keys: Vec<Vec<u8>> = ids.iter().map(|&id| u32_key(id)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (&id, key) in ids.iter().zip(&keys) {
            assert_eq!(decode_u32_key(key).expect("decodes"), id);
        }
        assert!(decode_u32_key(&[1, 2, 3]).is_err());
    }

    #[test]
    fn ordered_i64_sorts_negatives_first_and_round_trips() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 1_700_000_000, i64::MAX];
        let encoded: Vec<[u8; 8]> = values.iter().map(|&v| ordered_i64(v)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        for (&v, bytes) in values.iter().zip(&encoded) {
            assert_eq!(decode_ordered_i64(bytes).expect("decodes"), v);
        }
    }

    #[test]
    fn key_parts_are_unambiguous_and_prefix_their_group() {
        // Without lengths, ("ab", "c") and ("a", "bc") would be one key.
        let a = Key::new().part(b"ab").part(b"c").into_bytes();
        let b = Key::new().part(b"a").part(b"bc").into_bytes();
        assert_ne!(a, b);
        let group = Key::new().part(b"ab").into_bytes();
        assert!(a.starts_with(&group));
        assert!(!b.starts_with(&group));
        // A group whose name extends another's is not under it.
        let longer = Key::new().part(b"abc").part(b"").into_bytes();
        assert!(!longer.starts_with(&group));

        let mut r = Reader::new(&a, "key");
        assert_eq!(r.str().expect("first"), "ab");
        assert_eq!(r.part().expect("second"), b"c");
        r.finish().expect("nothing left");
    }

    #[test]
    fn reader_rejects_truncated_trailing_and_unknown_versions() {
        let bytes = encode_sync_key(&AppStateSyncKey {
            key_data: vec![1, 2, 3],
            fingerprint: vec![4],
            timestamp: 9,
        });
        assert!(matches!(
            decode_sync_key(&bytes[..bytes.len() - 1]),
            Err(CodecError::Truncated(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_sync_key(&longer),
            Err(CodecError::Trailing(_))
        ));
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(matches!(
            decode_sync_key(&other),
            Err(CodecError::Version { version: 2, .. })
        ));
        let key = decode_sync_key(&bytes).expect("decodes");
        assert_eq!(
            (key.key_data, key.fingerprint, key.timestamp),
            (vec![1, 2, 3], vec![4], 9)
        );
    }

    #[test]
    fn prekey_keeps_record_and_flag() {
        for uploaded in [false, true] {
            let bytes = encode_prekey(b"record", uploaded);
            assert_eq!(
                decode_prekey(&bytes).expect("decodes"),
                (&b"record"[..], uploaded)
            );
        }
        assert_eq!(
            decode_prekey(&encode_prekey(b"", true)).expect("empty"),
            (&b""[..], true)
        );
    }

    #[test]
    fn hash_state_round_trips_and_encodes_deterministically() {
        let mut state = HashState {
            version: 42,
            hash: [7; 128],
            index_value_map: Default::default(),
            mac_mismatch_fatal: true,
        };
        for i in 0..20u8 {
            state
                .index_value_map
                .insert(format!("index-{i}"), vec![i; usize::from(i)]);
        }
        let bytes = encode_hash_state(&state);
        assert_eq!(bytes, encode_hash_state(&state.clone()));
        let back = decode_hash_state(&bytes).expect("decodes");
        assert_eq!(back.version, 42);
        assert_eq!(back.hash, [7; 128]);
        assert!(back.mac_mismatch_fatal);
        assert_eq!(back.index_value_map, state.index_value_map);

        let empty = decode_hash_state(&encode_hash_state(&HashState::default())).expect("default");
        assert_eq!(empty.version, 0);
        assert!(empty.index_value_map.is_empty());
    }

    #[test]
    fn lid_mapping_round_trips() {
        let entry = LidPnMappingEntry {
            lid: "100000012345678".into(),
            phone_number: "15550000001".into(),
            created_at: -5,
            updated_at: 1_700_000_000,
            learning_source: "usync".into(),
        };
        let back =
            decode_lid_mapping(entry.lid.as_bytes(), &encode_lid_mapping(&entry)).expect("decodes");
        assert_eq!(
            (
                back.lid,
                back.phone_number,
                back.created_at,
                back.updated_at,
                back.learning_source
            ),
            (
                entry.lid,
                entry.phone_number,
                -5,
                1_700_000_000,
                entry.learning_source
            )
        );
    }

    #[test]
    fn tc_token_keeps_absent_and_zero_sender_timestamps_apart() {
        for sender_timestamp in [None, Some(0), Some(-3), Some(77)] {
            let entry = TcTokenEntry {
                token: vec![9, 8],
                token_timestamp: 5,
                sender_timestamp,
            };
            let back = decode_tc_token(&encode_tc_token(&entry)).expect("decodes");
            assert_eq!(back.sender_timestamp, sender_timestamp);
            assert_eq!((back.token, back.token_timestamp), (vec![9, 8], 5));
        }
    }

    #[test]
    fn timed_and_msg_secret_and_mutation_mac_round_trip() {
        let bytes = encode_timed(-7, b"payload");
        assert_eq!(decode_timed(&bytes).expect("timed"), (-7, &b"payload"[..]));

        let bytes = encode_msg_secret(&[3; 32], 100, 50);
        assert_eq!(
            decode_msg_secret(&bytes).expect("secret"),
            ([3; 32], 100, 50)
        );
        assert!(decode_msg_secret(&bytes[..40]).is_err());

        let bytes = encode_mutation_mac(9, b"mac");
        assert_eq!(decode_mutation_mac(&bytes).expect("mac"), b"mac".to_vec());
    }
}
