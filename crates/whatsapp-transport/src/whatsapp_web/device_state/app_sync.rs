//! `AppSyncStore`: app-state sync keys, versions and mutation MACs.

use super::*;

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
