//! `SignalStore`: identities, sessions, pre-keys and sender keys.

use super::*;

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
