//! The WhatsApp Web engine's storage (`whatsapp-rust` 0.7's `Backend`: the
//! five traits `SignalStore`, `AppSyncStore`, `ProtocolStore`,
//! `MsgSecretStore` and `DeviceStore`) over the provider-neutral
//! [`DeviceStateStore`] port, so a linked device's state lives in our
//! database, scoped by session.
//!
//! One [`DeviceBackend`] is one session's device: the engine's methods take
//! no session, the backend holds it.
//!
//! # Spaces
//!
//! Keys are built by `codec` (numbers big-endian, signed ones with the sign
//! bit flipped; `⟨s⟩` is a string prefixed by its `u32` length). `ts` is an
//! order-preserving `i64` of unix seconds.
//!
//! | space | key | value | engine methods |
//! |---|---|---|---|
//! | `identity` | address | 32-byte public key | `*_identity`, `has_signal_state_for_user` |
//! | `session` | address | Signal session record | `*_session*`, `has_signal_state_for_user` |
//! | `prekey` | `u32` id | v1, uploaded flag, record | `*prekey*` except signed |
//! | `signed_prekey` | `u32` id | record | `*signed_prekey*` |
//! | `sender_key` | `group:sender` address | record | `*sender_key` (not the device tracking) |
//! | `sync_key` | key id | v1, ⟨data⟩, ⟨fingerprint⟩, timestamp | `*_sync_key`, `get_latest_sync_key_id` |
//! | `sync_version` | collection name | v1, version, hash, flag, map | `get_version`, `set_version` |
//! | `mutation_mac` | ⟨name⟩ index MAC | v1, version, value MAC | `*mutation_mac*` |
//! | `sk_device` | ⟨group⟩⟨device⟩ | 1 byte has-key | sender-key device tracking |
//! | `sk_device_ix` | ⟨device⟩⟨group⟩ | empty | index: `delete_sender_key_device_rows` |
//! | `lid` | LID user | v1, ⟨phone⟩, created, updated, ⟨source⟩ | `*lid_mapping*` |
//! | `pn` | ⟨phone⟩ updated_at(ts) LID | empty | index: `get_pn_mapping` |
//! | `base_key` | ⟨address⟩⟨message id⟩ | base key | `*base_key` |
//! | `device_list` | user | JSON `DeviceListRecord` | `*device_list*`, `*_devices` |
//! | `group_meta` | group JID | opaque blob | `*group_metadata` |
//! | `tc_token` | JID | v1, token ts, sender ts, token | `*tc_token*` |
//! | `sent_msg` | ⟨chat⟩⟨message id⟩ | v1, stored-at ts, payload | `*sent_message*` |
//! | `sent_msg_ix` | ts ⟨chat⟩⟨message id⟩ | empty | index: `delete_expired_sent_messages` |
//! | `pending_in` | ⟨chat⟩⟨sender⟩⟨id⟩ | v1, stored-at ts, message | `*pending_inbound*` |
//! | `pending_in_ix` | ts ⟨chat⟩⟨sender⟩⟨id⟩ | empty | index: `delete_expired_pending_inbound` |
//! | `msg_secret` | ⟨chat⟩⟨sender⟩⟨msg id⟩ | v1, secret, expires_at, message_ts | `*msg_secret*` |
//! | `msg_secret_ix` | expires_at(ts) ⟨chat⟩⟨sender⟩⟨msg id⟩ | empty | index: `delete_expired_msg_secrets` (rows that expire) |
//! | `device` | `device` | JSON `wacore::store::Device` | `DeviceStore` |
//!
//! # Indexes and crashes
//!
//! The port writes atomically per call and per space only, so a record and
//! its index entry land in two calls. The rule everywhere: **the index is a
//! superset**. Writes put the index entry first and the record second;
//! deletes remove the record first and the index entry second. A crash in
//! between leaves an index entry without its record (or naming an older
//! version of it), never a record its index misses. Readers of an index
//! check each entry against its record (same phone and time, same stored
//! time or expiry) and ignore entries that disagree; the sweeps delete them.
//!
//! # Atomicity the port cannot give
//!
//! The port has no compare-and-swap. The engine's read-modify-writes
//! (`touch_tc_token_sender_timestamp`, `store_received_tc_token`,
//! `put_msg_secrets`' merge, the expiry sweeps, LID re-mapping) are made
//! atomic within this backend by a lock per family: enough when, as the
//! engine requires anyway, one process owns a session. `take_sent_message`
//! is atomic across processes: it takes the record only if its own delete
//! (by exact key) removed a row.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use maveraa_domain::SessionId;
use maveraa_domain::error::RepositoryError;
use maveraa_domain::ports::{DeviceStateEntry, DeviceStateStore};
use tokio::sync::Mutex;
use whatsapp_rust::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::stats::StorageResourceReport;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::codec::{self, CodecError, Key, Reader};

/// The space names (see the module doc's table).
mod space {
    pub const IDENTITY: &str = "identity";
    pub const SESSION: &str = "session";
    pub const PREKEY: &str = "prekey";
    pub const SIGNED_PREKEY: &str = "signed_prekey";
    pub const SENDER_KEY: &str = "sender_key";
    pub const SYNC_KEY: &str = "sync_key";
    pub const SYNC_VERSION: &str = "sync_version";
    pub const MUTATION_MAC: &str = "mutation_mac";
    pub const SK_DEVICE: &str = "sk_device";
    pub const SK_DEVICE_IX: &str = "sk_device_ix";
    pub const LID: &str = "lid";
    pub const PN: &str = "pn";
    pub const BASE_KEY: &str = "base_key";
    pub const DEVICE_LIST: &str = "device_list";
    pub const GROUP_META: &str = "group_meta";
    pub const TC_TOKEN: &str = "tc_token";
    pub const SENT_MSG: &str = "sent_msg";
    pub const SENT_MSG_IX: &str = "sent_msg_ix";
    pub const PENDING_IN: &str = "pending_in";
    pub const PENDING_IN_IX: &str = "pending_in_ix";
    pub const MSG_SECRET: &str = "msg_secret";
    pub const MSG_SECRET_IX: &str = "msg_secret_ix";
    pub const DEVICE: &str = "device";
}

/// The single key of the `device` space.
const DEVICE_KEY: &[u8] = b"device";

/// How many index entries an expiry sweep reads per round trip.
const SWEEP_BATCH: u32 = 500;

/// A linked WhatsApp Web device's storage for the engine: every `Backend`
/// method of `whatsapp-rust` 0.7 mapped onto one session's records in a
/// [`DeviceStateStore`]. Hand it to the engine's builder
/// (`Bot::builder().with_backend(..)`).
pub struct DeviceBackend {
    store: Arc<dyn DeviceStateStore>,
    session: SessionId,
    locks: Locks,
}

/// One lock per read-modify-write family (see "Atomicity" in the module
/// doc), so a sweep of one family does not hold up writes of another.
#[derive(Debug, Default)]
struct Locks {
    tc_token: Mutex<()>,
    msg_secret: Mutex<()>,
    sent_msg: Mutex<()>,
    pending_in: Mutex<()>,
    lid: Mutex<()>,
    device: Mutex<()>,
}

impl fmt::Debug for DeviceBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceBackend")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl DeviceBackend {
    /// The device state of `session`, in `store`.
    pub fn new(store: Arc<dyn DeviceStateStore>, session: SessionId) -> Self {
        Self {
            store,
            session,
            locks: Locks::default(),
        }
    }

    /// The session whose device this is.
    pub fn session(&self) -> SessionId {
        self.session
    }

    // --- the port, with errors mapped -------------------------------------

    async fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store
            .get(self.session, space, key)
            .await
            .map_err(store_error)
    }

    async fn get_many(&self, space: &str, keys: &[Vec<u8>]) -> Result<Vec<DeviceStateEntry>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .get_many(self.session, space, keys)
            .await
            .map_err(store_error)
    }

    /// Writes `entries`, the last of duplicate keys winning (a batch may name
    /// a key twice; SQL upserts refuse to touch a row twice).
    async fn put_many(&self, space: &str, entries: Vec<DeviceStateEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = last_per_key(entries);
        self.store
            .put_many(self.session, space, &entries)
            .await
            .map_err(store_error)
    }

    async fn put(&self, space: &str, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.put_many(space, vec![(key, value)]).await
    }

    async fn update_existing(&self, space: &str, entries: Vec<DeviceStateEntry>) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.store
            .update_existing(self.session, space, &entries)
            .await
            .map_err(store_error)
    }

    async fn delete_many(&self, space: &str, keys: &[Vec<u8>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.store
            .delete_many(self.session, space, keys)
            .await
            .map_err(store_error)
    }

    async fn scan(
        &self,
        space: &str,
        prefix: &[u8],
        descending: bool,
        limit: Option<u32>,
    ) -> Result<Vec<DeviceStateEntry>> {
        self.store
            .scan(self.session, space, prefix, descending, limit)
            .await
            .map_err(store_error)
    }

    async fn delete_prefix(&self, space: &str, prefix: &[u8]) -> Result<u64> {
        self.store
            .delete_prefix(self.session, space, prefix)
            .await
            .map_err(store_error)
    }

    /// Whether any key of `space` starts with `prefix`.
    async fn any_with_prefix(&self, space: &str, prefix: &[u8]) -> Result<bool> {
        Ok(!self.scan(space, prefix, false, Some(1)).await?.is_empty())
    }

    // --- expiry sweeps ------------------------------------------------------

    /// Deletes the records of `main` whose index entry in `index` (key: an
    /// ordered time, then the record's key) has an `expired` time, when the
    /// record still carries that time (`time_of` its value); index entries
    /// read are deleted either way. Returns how many records went.
    async fn sweep(
        &self,
        main: &str,
        index: &str,
        expired: impl Fn(i64) -> bool + Send + Sync,
        time_of: fn(&[u8]) -> std::result::Result<i64, CodecError>,
    ) -> Result<u32> {
        let mut removed: u32 = 0;
        loop {
            let batch = self.scan(index, &[], false, Some(SWEEP_BATCH)).await?;
            let full = batch.len() >= SWEEP_BATCH as usize;
            let mut reached_live = false;
            let mut index_keys = Vec::new();
            let mut times: HashMap<Vec<u8>, Vec<i64>> = HashMap::new();
            for (key, _) in batch {
                let (at, record_key) = split_timed_key(&key).map_err(codec_error)?;
                if !expired(at) {
                    reached_live = true;
                    break;
                }
                times.entry(record_key.to_vec()).or_default().push(at);
                index_keys.push(key);
            }
            if index_keys.is_empty() {
                break;
            }
            let record_keys: Vec<Vec<u8>> = times.keys().cloned().collect();
            let mut doomed = Vec::new();
            for (key, value) in self.get_many(main, &record_keys).await? {
                let at = time_of(&value).map_err(codec_error)?;
                if times.get(&key).is_some_and(|ts| ts.contains(&at)) {
                    doomed.push(key);
                }
            }
            self.delete_many(main, &doomed).await?;
            self.delete_many(index, &index_keys).await?;
            removed = removed.saturating_add(u32::try_from(doomed.len()).unwrap_or(u32::MAX));
            if reached_live || !full {
                break;
            }
        }
        Ok(removed)
    }

    // --- LID mappings ---------------------------------------------------------

    async fn put_lid_mappings_locked(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        // The last entry of a LID wins, as if put one by one.
        let mut by_lid: Vec<&LidPnMappingEntry> = Vec::new();
        let mut seen = HashSet::new();
        for entry in entries.iter().rev() {
            if seen.insert(entry.lid.as_str()) {
                by_lid.push(entry);
            }
        }
        by_lid.reverse();

        let keys: Vec<Vec<u8>> = by_lid.iter().map(|e| e.lid.as_bytes().to_vec()).collect();
        let mut old = HashMap::new();
        for (key, value) in self.get_many(space::LID, &keys).await? {
            let entry = codec::decode_lid_mapping(&key, &value).map_err(codec_error)?;
            old.insert(key, entry);
        }

        let mut index = Vec::with_capacity(by_lid.len());
        let mut records = Vec::with_capacity(by_lid.len());
        let mut stale = Vec::new();
        for entry in by_lid {
            let mut entry = entry.clone();
            if let Some(previous) = old.get(entry.lid.as_bytes()) {
                // "When the mapping was first learned": a re-put keeps it
                // (the SQLite store's upsert does the same).
                entry.created_at = previous.created_at;
                if (previous.phone_number.as_str(), previous.updated_at)
                    != (entry.phone_number.as_str(), entry.updated_at)
                {
                    stale.push(pn_key(
                        &previous.phone_number,
                        previous.updated_at,
                        &previous.lid,
                    ));
                }
            }
            index.push((
                pn_key(&entry.phone_number, entry.updated_at, &entry.lid),
                Vec::new(),
            ));
            records.push((
                entry.lid.as_bytes().to_vec(),
                codec::encode_lid_mapping(&entry),
            ));
        }
        self.put_many(space::PN, index).await?;
        self.put_many(space::LID, records).await?;
        self.delete_many(space::PN, &stale).await
    }

    // --- pending inbound --------------------------------------------------------

    async fn store_pending_rows(&self, rows: &[(Vec<u8>, &[u8])]) -> Result<()> {
        let now = now_secs();
        let _guard = self.locks.pending_in.lock().await;
        let index = rows
            .iter()
            .map(|(key, _)| (timed_key(now, key), Vec::new()))
            .collect();
        let records = rows
            .iter()
            .map(|(key, message)| (key.clone(), codec::encode_timed(now, message)))
            .collect();
        self.put_many(space::PENDING_IN_IX, index).await?;
        self.put_many(space::PENDING_IN, records).await
    }

    async fn delete_pending_keys(&self, keys: Vec<Vec<u8>>) -> Result<()> {
        let _guard = self.locks.pending_in.lock().await;
        let existing = self.get_many(space::PENDING_IN, &keys).await?;
        let mut index = Vec::with_capacity(existing.len());
        for (key, value) in &existing {
            let (at, _) = codec::decode_timed(value).map_err(codec_error)?;
            index.push(timed_key(at, key));
        }
        self.delete_many(space::PENDING_IN, &keys).await?;
        self.delete_many(space::PENDING_IN_IX, &index).await
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// The engine's error for a port's: unreachable storage is a connection
/// error (worth retrying), anything else a database error.
fn store_error(err: RepositoryError) -> StoreError {
    match err {
        RepositoryError::Unavailable(_) => StoreError::Connection(Box::new(err)),
        _ => StoreError::Database(Box::new(err)),
    }
}

fn codec_error(err: CodecError) -> StoreError {
    StoreError::Serialization(Box::new(err))
}

/// The engine's clock (unix seconds), so stored-at times agree with the
/// cutoffs it computes.
fn now_secs() -> i64 {
    whatsapp_rust::wacore::time::now_secs()
}

/// `entries` with one entry per key, the last one, in last-seen order.
fn last_per_key(entries: Vec<DeviceStateEntry>) -> Vec<DeviceStateEntry> {
    let mut seen = HashSet::new();
    let mut out: Vec<DeviceStateEntry> = entries
        .into_iter()
        .rev()
        .filter(|(key, _)| seen.insert(key.clone()))
        .collect();
    out.reverse();
    out
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    Key::new()
        .part(a.as_bytes())
        .part(b.as_bytes())
        .into_bytes()
}

fn triple_key(a: &str, b: &str, c: &str) -> Vec<u8> {
    Key::new()
        .part(a.as_bytes())
        .part(b.as_bytes())
        .part(c.as_bytes())
        .into_bytes()
}

/// An index key: an ordered time, then a record's key.
fn timed_key(at: i64, record_key: &[u8]) -> Vec<u8> {
    Key::new()
        .raw(&codec::ordered_i64(at))
        .raw(record_key)
        .into_bytes()
}

/// The time and record key of a [`timed_key`].
fn split_timed_key(key: &[u8]) -> std::result::Result<(i64, &[u8]), CodecError> {
    if key.len() < 8 {
        return Err(CodecError::Truncated("index key"));
    }
    let (at, rest) = key.split_at(8);
    Ok((codec::decode_ordered_i64(at)?, rest))
}

/// The `pn` index key of a mapping: phone, then update time, then LID, so
/// that a descending scan of a phone's prefix meets its latest LID first.
fn pn_key(phone: &str, updated_at: i64, lid: &str) -> Vec<u8> {
    Key::new()
        .part(phone.as_bytes())
        .raw(&codec::ordered_i64(updated_at))
        .raw(lid.as_bytes())
        .into_bytes()
}

/// The update time and LID of a [`pn_key`] under `prefix_len` bytes of phone.
fn split_pn_key(key: &[u8], prefix_len: usize) -> std::result::Result<(i64, &str), CodecError> {
    let rest = key
        .get(prefix_len..)
        .ok_or(CodecError::Truncated("pn index key"))?;
    let (at, lid) = split_timed_key(rest)?;
    let lid = std::str::from_utf8(lid).map_err(|_| CodecError::Utf8("pn index key"))?;
    Ok((at, lid))
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| codec_error(CodecError::Utf8(what)))
}

fn identity_key(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| codec_error(CodecError::Invalid("identity key length")))
}

fn msg_secret_key(chat: &str, sender: &str, msg_id: &str) -> Vec<u8> {
    triple_key(chat, sender, msg_id)
}

fn msg_secret_expiry(value: &[u8]) -> std::result::Result<i64, CodecError> {
    Ok(codec::decode_msg_secret(value)?.1)
}

fn timed_at(value: &[u8]) -> std::result::Result<i64, CodecError> {
    Ok(codec::decode_timed(value)?.0)
}

// ---------------------------------------------------------------------------
// SignalStore

mod app_sync;
mod device;
mod protocol;
mod signal;
#[cfg(test)]
mod tests;
