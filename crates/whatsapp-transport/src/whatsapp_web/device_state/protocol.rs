//! `ProtocolStore`: sender-key devices, LID mappings, base keys, device
//! lists, group metadata, trusted-contact tokens, sent messages and pending
//! inbound messages.

use super::*;

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
