//! `MsgSecretStore` and `DeviceStore`: message secrets, and the device
//! itself.

use super::*;

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
