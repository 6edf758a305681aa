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

#[async_trait]
impl SignalStore for DeviceBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put(space::IDENTITY, address.as_bytes().to_vec(), key.to_vec())
            .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let entries = identities
            .iter()
            .map(|(address, key)| (address.as_bytes().to_vec(), key.to_vec()))
            .collect();
        self.put_many(space::IDENTITY, entries).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.get(space::IDENTITY, address.as_bytes())
            .await?
            .map(|bytes| identity_key(&bytes))
            .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete_many(space::IDENTITY, &[address.as_bytes().to_vec()])
            .await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self
            .get(space::SESSION, address.as_bytes())
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(
            space::SESSION,
            address.as_bytes().to_vec(),
            session.to_vec(),
        )
        .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries = sessions
            .iter()
            .map(|(address, record)| (address.as_bytes().to_vec(), record.to_vec()))
            .collect();
        self.put_many(space::SESSION, entries).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete_many(space::SESSION, &[address.as_bytes().to_vec()])
            .await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        Ok(self
            .get(space::SESSION, address.as_bytes())
            .await?
            .is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Addresses are `user@server` or `user:device@server`: a prefix scan
        // with each separator finds exactly the user's, never `user1…`.
        for space in [space::SESSION, space::IDENTITY] {
            for separator in ['@', ':'] {
                let prefix = format!("{user}{separator}");
                if self.any_with_prefix(space, prefix.as_bytes()).await? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.put(
            space::PREKEY,
            codec::u32_key(id),
            codec::encode_prekey(record, uploaded),
        )
        .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let entries = keys
            .iter()
            .map(|(id, record)| (codec::u32_key(*id), codec::encode_prekey(record, uploaded)))
            .collect();
        self.put_many(space::PREKEY, entries).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.get(space::PREKEY, &codec::u32_key(id))
            .await?
            .map(|bytes| {
                codec::decode_prekey(&bytes)
                    .map(|(record, _)| Bytes::copy_from_slice(record))
                    .map_err(codec_error)
            })
            .transpose()
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .copied()
            .collect::<HashSet<u32>>()
            .into_iter()
            .map(codec::u32_key)
            .collect();
        let mut found = HashMap::new();
        for (key, value) in self.get_many(space::PREKEY, &keys).await? {
            let id = codec::decode_u32_key(&key).map_err(codec_error)?;
            let (record, _) = codec::decode_prekey(&value).map_err(codec_error)?;
            found.insert(id, Bytes::copy_from_slice(record));
        }
        // In the caller's order, only those that exist.
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).map(|record| (*id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|&id| codec::u32_key(id)).collect();
        let mut updates = Vec::new();
        for (key, value) in self.get_many(space::PREKEY, &keys).await? {
            let (record, uploaded) = codec::decode_prekey(&value).map_err(codec_error)?;
            if !uploaded {
                updates.push((key, codec::encode_prekey(record, true)));
            }
        }
        // UPDATE only: a key consumed since the read above stays deleted.
        self.update_existing(space::PREKEY, updates).await?;
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete_many(space::PREKEY, &[codec::u32_key(id)]).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        match self.scan(space::PREKEY, &[], true, Some(1)).await?.first() {
            Some((key, _)) => codec::decode_u32_key(key).map_err(codec_error),
            None => Ok(0),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(space::SIGNED_PREKEY, codec::u32_key(id), record.to_vec())
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(space::SIGNED_PREKEY, &codec::u32_key(id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        self.scan(space::SIGNED_PREKEY, &[], false, None)
            .await?
            .into_iter()
            .map(|(key, value)| Ok((codec::decode_u32_key(&key).map_err(codec_error)?, value)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete_many(space::SIGNED_PREKEY, &[codec::u32_key(id)])
            .await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(
            space::SENDER_KEY,
            address.as_bytes().to_vec(),
            record.to_vec(),
        )
        .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries = sender_keys
            .iter()
            .map(|(address, record)| (address.as_bytes().to_vec(), record.to_vec()))
            .collect();
        self.put_many(space::SENDER_KEY, entries).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(space::SENDER_KEY, address.as_bytes()).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete_many(space::SENDER_KEY, &[address.as_bytes().to_vec()])
            .await
    }
}

// ---------------------------------------------------------------------------
// AppSyncStore

#[async_trait]
impl AppSyncStore for DeviceBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        Ok(self
            .get(space::SYNC_KEY, key_id)
            .await?
            .and_then(|bytes| decode_sync_key_or_skip(&bytes)))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.put(
            space::SYNC_KEY,
            key_id.to_vec(),
            codec::encode_sync_key(&key),
        )
        .await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        match self.get(space::SYNC_VERSION, name.as_bytes()).await? {
            Some(bytes) => codec::decode_hash_state(&bytes).map_err(codec_error),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put(
            space::SYNC_VERSION,
            name.as_bytes().to_vec(),
            codec::encode_hash_state(&state),
        )
        .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let entries = mutations
            .iter()
            .map(|m| {
                (
                    mutation_mac_key(name, &m.index_mac),
                    codec::encode_mutation_mac(version, &m.value_mac),
                )
            })
            .collect();
        self.put_many(space::MUTATION_MAC, entries).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(space::MUTATION_MAC, &mutation_mac_key(name, index_mac))
            .await?
            .map(|bytes| codec::decode_mutation_mac(&bytes).map_err(codec_error))
            .transpose()
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let by_key: HashMap<Vec<u8>, [u8; 32]> = index_macs
            .iter()
            .map(|mac| (mutation_mac_key(name, mac), *mac))
            .collect();
        let keys: Vec<Vec<u8>> = by_key.keys().cloned().collect();
        let mut out = HashMap::with_capacity(keys.len());
        for (key, value) in self.get_many(space::MUTATION_MAC, &keys).await? {
            if let Some(mac) = by_key.get(&key) {
                out.insert(
                    *mac,
                    codec::decode_mutation_mac(&value).map_err(codec_error)?,
                );
            }
        }
        Ok(out)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let keys: Vec<Vec<u8>> = index_macs
            .iter()
            .map(|mac| mutation_mac_key(name, mac))
            .collect();
        self.delete_many(space::MUTATION_MAC, &keys).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let prefix = Key::new().part(name.as_bytes()).into_bytes();
        self.delete_prefix(space::MUTATION_MAC, &prefix).await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        // The greatest key id (bytewise) whose key decodes, as the SQLite
        // store's `ORDER BY key_id DESC` (the in-memory one answers the last
        // key set instead). Usually the first row read is the answer.
        let first = self.scan(space::SYNC_KEY, &[], true, Some(1)).await?;
        if let Some((key, value)) = first.first() {
            if decode_sync_key_or_skip(value).is_some() {
                return Ok(Some(key.clone()));
            }
        } else {
            return Ok(None);
        }
        Ok(self
            .scan(space::SYNC_KEY, &[], true, None)
            .await?
            .into_iter()
            .find(|(_, value)| decode_sync_key_or_skip(value).is_some())
            .map(|(key, _)| key))
    }
}

fn mutation_mac_key(name: &str, index_mac: &[u8]) -> Vec<u8> {
    Key::new().part(name.as_bytes()).raw(index_mac).into_bytes()
}

/// A sync key, or none when its bytes do not decode: like the SQLite store,
/// an unreadable app-state key counts as absent, so the engine requests it
/// again from the phone instead of failing every sync.
fn decode_sync_key_or_skip(bytes: &[u8]) -> Option<AppStateSyncKey> {
    match codec::decode_sync_key(bytes) {
        Ok(key) => Some(key),
        Err(err) => {
            tracing::warn!(error = %err, "an app-state sync key does not decode; treated as absent");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// ProtocolStore

#[async_trait]
impl ProtocolStore for DeviceBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let prefix = Key::new().part(group_jid.as_bytes()).into_bytes();
        self.scan(space::SK_DEVICE, &prefix, false, None)
            .await?
            .into_iter()
            .map(|(key, value)| {
                let mut r = Reader::new(&key, "sender key device key");
                let _group = r.part().map_err(codec_error)?;
                let device = utf8(r.part().map_err(codec_error)?, "sender key device")?;
                Ok((device, value.first().is_some_and(|&b| b != 0)))
            })
            .collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let index = entries
            .iter()
            .map(|(device, _)| (pair_key(device, group_jid), Vec::new()))
            .collect();
        let records = entries
            .iter()
            .map(|(device, has_key)| (pair_key(group_jid, device), vec![u8::from(*has_key)]))
            .collect();
        self.put_many(space::SK_DEVICE_IX, index).await?;
        self.put_many(space::SK_DEVICE, records).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let devices = self.get_sender_key_devices(group_jid).await?;
        let prefix = Key::new().part(group_jid.as_bytes()).into_bytes();
        self.delete_prefix(space::SK_DEVICE, &prefix).await?;
        let index: Vec<Vec<u8>> = devices
            .iter()
            .map(|(device, _)| pair_key(device, group_jid))
            .collect();
        self.delete_many(space::SK_DEVICE_IX, &index).await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        let mut records = Vec::new();
        let mut index = Vec::new();
        for device in device_jids {
            let prefix = Key::new().part(device.as_bytes()).into_bytes();
            for (key, _) in self.scan(space::SK_DEVICE_IX, &prefix, false, None).await? {
                let mut r = Reader::new(&key, "sender key device index key");
                let _device = r.part().map_err(codec_error)?;
                let group = utf8(r.part().map_err(codec_error)?, "sender key group")?;
                records.push(pair_key(&group, device));
                index.push(key);
            }
        }
        self.delete_many(space::SK_DEVICE, &records).await?;
        self.delete_many(space::SK_DEVICE_IX, &index).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.delete_prefix(space::SK_DEVICE, &[]).await?;
        self.delete_prefix(space::SK_DEVICE_IX, &[]).await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.get(space::LID, lid.as_bytes())
            .await?
            .map(|bytes| codec::decode_lid_mapping(lid.as_bytes(), &bytes).map_err(codec_error))
            .transpose()
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        // The phone's index entries, latest update first; the first whose
        // LID still maps to this phone at that time is the answer (the rest
        // are leftovers of re-mappings, see "Indexes and crashes").
        let prefix = Key::new().part(phone.as_bytes()).into_bytes();
        let index = self.scan(space::PN, &prefix, true, None).await?;
        let mut candidates = Vec::with_capacity(index.len());
        for (key, _) in &index {
            let (at, lid) = split_pn_key(key, prefix.len()).map_err(codec_error)?;
            candidates.push((at, lid.to_owned()));
        }
        let keys: Vec<Vec<u8>> = candidates
            .iter()
            .map(|(_, lid)| lid.as_bytes().to_vec())
            .collect();
        let mut records = HashMap::new();
        for (key, value) in self.get_many(space::LID, &keys).await? {
            let entry = codec::decode_lid_mapping(&key, &value).map_err(codec_error)?;
            records.insert(entry.lid.clone(), entry);
        }
        Ok(candidates.into_iter().find_map(|(at, lid)| {
            records
                .remove(&lid)
                .filter(|e| e.phone_number == phone && e.updated_at == at)
        }))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _guard = self.locks.lid.lock().await;
        self.put_lid_mappings_locked(entries).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.scan(space::LID, &[], false, None)
            .await?
            .into_iter()
            .map(|(key, value)| codec::decode_lid_mapping(&key, &value).map_err(codec_error))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(
            space::BASE_KEY,
            pair_key(address, message_id),
            base_key.to_vec(),
        )
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .get(space::BASE_KEY, &pair_key(address, message_id))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete_many(space::BASE_KEY, &[pair_key(address, message_id)])
            .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let entries = records
            .iter()
            .map(|record| {
                Ok((
                    record.user.as_bytes().to_vec(),
                    codec::encode_json(record, "device list").map_err(codec_error)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.put_many(space::DEVICE_LIST, entries).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get(space::DEVICE_LIST, user.as_bytes())
            .await?
            .map(|bytes| codec::decode_json(&bytes, "device list").map_err(codec_error))
            .transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete_many(space::DEVICE_LIST, &[user.as_bytes().to_vec()])
            .await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(space::GROUP_META, group_jid.as_bytes()).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(
            space::GROUP_META,
            group_jid.as_bytes().to_vec(),
            blob.to_vec(),
        )
        .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete_many(space::GROUP_META, &[group_jid.as_bytes().to_vec()])
            .await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.get(space::TC_TOKEN, jid.as_bytes())
            .await?
            .map(|bytes| codec::decode_tc_token(&bytes).map_err(codec_error))
            .transpose()
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let _guard = self.locks.tc_token.lock().await;
        self.put(
            space::TC_TOKEN,
            jid.as_bytes().to_vec(),
            codec::encode_tc_token(entry),
        )
        .await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        let _guard = self.locks.tc_token.lock().await;
        self.delete_many(space::TC_TOKEN, &[jid.as_bytes().to_vec()])
            .await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.scan(space::TC_TOKEN, &[], false, None)
            .await?
            .into_iter()
            .map(|(key, _)| utf8(&key, "tc token jid"))
            .collect()
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let _guard = self.locks.tc_token.lock().await;
        let mut doomed = Vec::new();
        for (key, value) in self.scan(space::TC_TOKEN, &[], false, None).await? {
            let entry = codec::decode_tc_token(&value).map_err(codec_error)?;
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !token_live && !sender_live {
                doomed.push(key);
            }
        }
        self.delete_many(space::TC_TOKEN, &doomed).await?;
        Ok(u32::try_from(doomed.len()).unwrap_or(u32::MAX))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locks.tc_token.lock().await;
        let entry = match self.get_tc_token(jid).await? {
            Some(existing) => TcTokenEntry {
                sender_timestamp: Some(
                    existing
                        .sender_timestamp
                        .map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                ),
                ..existing
            },
            None => TcTokenEntry {
                token: Vec::new(),
                token_timestamp: sender_timestamp,
                sender_timestamp: Some(sender_timestamp),
            },
        };
        self.put(
            space::TC_TOKEN,
            jid.as_bytes().to_vec(),
            codec::encode_tc_token(&entry),
        )
        .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locks.tc_token.lock().await;
        let existing = self.get_tc_token(jid).await?;
        // Newer wins; a byte-less placeholder never blocks a real token.
        if let Some(existing) = &existing
            && !existing.token.is_empty()
            && token_timestamp < existing.token_timestamp
        {
            return Ok(());
        }
        let entry = TcTokenEntry {
            token: token.to_vec(),
            token_timestamp,
            sender_timestamp: existing.and_then(|e| e.sender_timestamp),
        };
        self.put(
            space::TC_TOKEN,
            jid.as_bytes().to_vec(),
            codec::encode_tc_token(&entry),
        )
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let now = now_secs();
        let key = pair_key(chat_jid, message_id);
        let _guard = self.locks.sent_msg.lock().await;
        self.put(space::SENT_MSG_IX, timed_key(now, &key), Vec::new())
            .await?;
        self.put(space::SENT_MSG, key, codec::encode_timed(now, payload))
            .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let key = pair_key(chat_jid, message_id);
        let Some(value) = self.get(space::SENT_MSG, &key).await? else {
            return Ok(None);
        };
        // Every key of this space has exactly two parts, so the key as a
        // prefix matches that record only; whoever's delete removed it took
        // it, and a concurrent taker gets nothing.
        if self.delete_prefix(space::SENT_MSG, &key).await? == 0 {
            return Ok(None);
        }
        let (at, payload) = codec::decode_timed(&value).map_err(codec_error)?;
        self.delete_many(space::SENT_MSG_IX, &[timed_key(at, &key)])
            .await?;
        Ok(Some(payload.to_vec()))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locks.sent_msg.lock().await;
        self.sweep(
            space::SENT_MSG,
            space::SENT_MSG_IX,
            |at| at < cutoff_timestamp,
            timed_at,
        )
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending_rows(&[(triple_key(chat, sender, id), message)])
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get(space::PENDING_IN, &triple_key(chat, sender, id))
            .await?
            .map(|value| {
                codec::decode_timed(&value)
                    .map(|(_, message)| message.to_vec())
                    .map_err(codec_error)
            })
            .transpose()
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete_pending_keys(vec![triple_key(chat, sender, id)])
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locks.pending_in.lock().await;
        self.sweep(
            space::PENDING_IN,
            space::PENDING_IN_IX,
            |at| at < cutoff_timestamp,
            timed_at,
        )
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Vec<u8>, &[u8])> = rows
            .iter()
            .map(|row| (triple_key(row.chat, row.sender, row.id), row.message))
            .collect();
        self.store_pending_rows(&rows).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = keys
            .iter()
            .map(|key| triple_key(key.chat, key.sender, key.id))
            .collect();
        self.delete_pending_keys(keys).await
    }
}

// ---------------------------------------------------------------------------
// MsgSecretStore

#[async_trait]
impl MsgSecretStore for DeviceBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let count = entries.len();
        if count == 0 {
            return Ok(0);
        }
        // Merge the batch per key first (the merges are associative and
        // commutative; the last secret wins), then with the stored rows.
        let mut order = Vec::new();
        let mut merged: HashMap<Vec<u8>, ([u8; 32], i64, i64)> = HashMap::new();
        for e in &entries {
            let key = msg_secret_key(&e.chat, &e.sender, &e.msg_id);
            match merged.get_mut(&key) {
                Some((secret, expires_at, message_ts)) => {
                    *secret = e.secret;
                    *expires_at = merge_msg_secret_expiry(*expires_at, e.expires_at);
                    *message_ts = merge_msg_secret_message_ts(*message_ts, e.message_ts);
                }
                None => {
                    order.push(key.clone());
                    merged.insert(key, (e.secret, e.expires_at, e.message_ts));
                }
            }
        }

        let _guard = self.locks.msg_secret.lock().await;
        let mut stale = Vec::new();
        for (key, value) in self.get_many(space::MSG_SECRET, &order).await? {
            let (_, old_expires, old_ts) = codec::decode_msg_secret(&value).map_err(codec_error)?;
            if let Some((_, expires_at, message_ts)) = merged.get_mut(&key) {
                let new_expires = merge_msg_secret_expiry(old_expires, *expires_at);
                if old_expires != 0 && old_expires != new_expires {
                    stale.push(timed_key(old_expires, &key));
                }
                *expires_at = new_expires;
                *message_ts = merge_msg_secret_message_ts(old_ts, *message_ts);
            }
        }
        let mut index = Vec::new();
        let mut records = Vec::with_capacity(order.len());
        for key in order {
            if let Some((secret, expires_at, message_ts)) = merged.get(&key) {
                if *expires_at != 0 {
                    index.push((timed_key(*expires_at, &key), Vec::new()));
                }
                records.push((
                    key,
                    codec::encode_msg_secret(secret, *expires_at, *message_ts),
                ));
            }
        }
        self.put_many(space::MSG_SECRET_IX, index).await?;
        self.put_many(space::MSG_SECRET, records).await?;
        self.delete_many(space::MSG_SECRET_IX, &stale).await?;
        // As the in-memory reference: the number of entries handed in.
        Ok(count)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.get(space::MSG_SECRET, &msg_secret_key(chat, sender, msg_id))
            .await?
            .map(|value| {
                codec::decode_msg_secret(&value)
                    .map(|(secret, _, message_ts)| (secret.to_vec(), message_ts))
                    .map_err(codec_error)
            })
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locks.msg_secret.lock().await;
        self.sweep(
            space::MSG_SECRET,
            space::MSG_SECRET_IX,
            |expires_at| expires_at <= cutoff_timestamp,
            msg_secret_expiry,
        )
        .await
    }
}

// ---------------------------------------------------------------------------
// DeviceStore

#[async_trait]
impl DeviceStore for DeviceBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let bytes = codec::encode_json(device, "device").map_err(codec_error)?;
        self.put(space::DEVICE, DEVICE_KEY.to_vec(), bytes).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        self.get(space::DEVICE, DEVICE_KEY)
            .await?
            .map(|bytes| codec::decode_json(&bytes, "device").map_err(codec_error))
            .transpose()
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.get(space::DEVICE, DEVICE_KEY).await?.is_some())
    }

    /// Materialises a fresh device (new random keys) when the session has
    /// none, and keeps an existing one. The id is always 1: the session is
    /// the device's identity here, the engine only logs the id.
    ///
    /// The port has no insert-if-absent, so two processes creating at once
    /// could both write a device (the last wins); the engine's
    /// one-owner-per-session rule excludes that.
    async fn create(&self) -> Result<i32> {
        let _guard = self.locks.device.lock().await;
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        Ok(1)
    }

    async fn resource_report(&self) -> StorageResourceReport {
        // The state lives in the database, not in this process.
        StorageResourceReport {
            memory_bytes: Some(0),
            ..StorageResourceReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_per_key_keeps_the_last_value_of_each_key() {
        let entries = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"3".to_vec()),
        ];
        assert_eq!(
            last_per_key(entries),
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"a".to_vec(), b"3".to_vec())
            ]
        );
    }

    #[test]
    fn timed_keys_sort_by_time_then_split_back() {
        let record = pair_key("chat@s.whatsapp.net", "ID1");
        let early = timed_key(-1, &record);
        let late = timed_key(1_700_000_000, &record);
        assert!(early < late);
        assert_eq!(
            split_timed_key(&late).expect("splits"),
            (1_700_000_000, record.as_slice())
        );
        assert!(split_timed_key(&[0; 7]).is_err());
    }

    #[test]
    fn pn_keys_put_the_latest_update_last_under_the_phone() {
        let phone = "15550000001";
        let prefix = Key::new().part(phone.as_bytes()).into_bytes();
        let older = pn_key(phone, 10, "222");
        let newer = pn_key(phone, 20, "111");
        assert!(older.starts_with(&prefix) && newer.starts_with(&prefix));
        assert!(older < newer);
        assert_eq!(
            split_pn_key(&newer, prefix.len()).expect("splits"),
            (20, "111")
        );
        // Another phone that extends this one is not under its prefix.
        assert!(!pn_key("155500000012", 10, "222").starts_with(&prefix));
    }

    #[test]
    fn repository_errors_map_to_connection_or_database() {
        assert!(matches!(
            store_error(RepositoryError::Unavailable("pool".into())),
            StoreError::Connection(_)
        ));
        assert!(matches!(
            store_error(RepositoryError::Internal("boom".into())),
            StoreError::Database(_)
        ));
        assert!(matches!(
            store_error(RepositoryError::Duplicate { existing: None }),
            StoreError::Database(_)
        ));
    }
}
