//! The state a provider keeps for a device it links to a number: for
//! WhatsApp Web, the device's identity, its end-to-end sessions and keys
//! and its app-state sync. The domain never reads it: to the domain it is
//! opaque bytes, grouped by a provider-chosen space (a kind of record) and
//! ordered by key, scoped by session.

use async_trait::async_trait;

use crate::error::RepositoryError;
use crate::ids::SessionId;

/// One record: its key in its space, and its value.
pub type DeviceStateEntry = (Vec<u8>, Vec<u8>);

/// Where a linked device's state lives, so that any server can run the
/// session, and deleting the session (or logging it out) deletes the state.
/// An adapter keeps values secret at rest: they are the device's keys.
///
/// Every method acts on one session; a session unknown to the store has no
/// state, and writing state for it fails. Writes of several records are
/// atomic: all land or none.
#[async_trait]
pub trait DeviceStateStore: Send + Sync {
    /// The value of `key` in `space`.
    ///
    /// # Errors
    /// [`RepositoryError`] when storage fails.
    async fn get(
        &self,
        session: SessionId,
        space: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, RepositoryError>;

    /// The records of `keys` in `space` that exist, in key order.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn get_many(
        &self,
        session: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<DeviceStateEntry>, RepositoryError>;

    /// Writes `entries` in `space`, replacing the values of keys that exist.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`]; [`RepositoryError::Internal`] when the
    /// session does not exist.
    async fn put_many(
        &self,
        session: SessionId,
        space: &str,
        entries: &[DeviceStateEntry],
    ) -> Result<(), RepositoryError>;

    /// Replaces the values of those `entries` whose key exists in `space`,
    /// and creates none: a record deleted meanwhile stays deleted. Returns
    /// how many were replaced.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn update_existing(
        &self,
        session: SessionId,
        space: &str,
        entries: &[DeviceStateEntry],
    ) -> Result<u64, RepositoryError>;

    /// Deletes `keys` from `space`; keys that do not exist are no error.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn delete_many(
        &self,
        session: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<(), RepositoryError>;

    /// The records of `space` whose key starts with `prefix` (every record
    /// for an empty prefix), in ascending key order (bytewise), or
    /// descending when `descending`; at most `limit` when given.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn scan(
        &self,
        session: SessionId,
        space: &str,
        prefix: &[u8],
        descending: bool,
        limit: Option<u32>,
    ) -> Result<Vec<DeviceStateEntry>, RepositoryError>;

    /// Deletes the records of `space` whose key starts with `prefix` (the
    /// whole space for an empty prefix). Returns how many went.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn delete_prefix(
        &self,
        session: SessionId,
        space: &str,
        prefix: &[u8],
    ) -> Result<u64, RepositoryError>;

    /// Deletes every record of the session, in every space: the device is
    /// unlinked. Returns how many went.
    ///
    /// # Errors
    /// As [`DeviceStateStore::get`].
    async fn clear(&self, session: SessionId) -> Result<u64, RepositoryError>;
}
