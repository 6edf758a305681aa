//! Linked devices' state (table `device_state`): opaque records by
//! session, space and key, each value sealed for its own row, so a value
//! copied to another row or session does not open.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Uuid as SqlUuid};
use maveraa_domain::ports::{DeviceStateEntry, DeviceStateStore};
use maveraa_domain::{RepositoryError, SessionId};
use uuid::Uuid;

use crate::error::StorageError;
use crate::secrets::{SecretCipher, SecretError};
use crate::store::PgStore;

/// Longest space name the table takes.
const MAX_SPACE: usize = 64;

/// What a record's value is sealed for: its session, space and key.
pub(crate) fn value_context(session: Uuid, space: &str, key: &[u8]) -> String {
    format!("device_state/{session}/{space}/{}", hex::encode(key))
}

/// The smallest key greater than every key starting with `prefix`; `None`
/// when there is none (an empty prefix, or only `0xff` bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn check_space(space: &str) -> Result<(), StorageError> {
    if space.is_empty() || space.len() > MAX_SPACE {
        return Err(StorageError::Config(format!(
            "a device state space is 1 to {MAX_SPACE} bytes, not {}",
            space.len()
        )));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Record {
    #[diesel(sql_type = Bytea)]
    key: Vec<u8>,
    #[diesel(sql_type = Text)]
    value_sealed: String,
}

fn cipher(store: &PgStore) -> Result<SecretCipher, StorageError> {
    store
        .secrets
        .clone()
        .ok_or(StorageError::Secrets(SecretError::NoKey))
}

fn open_all(
    cipher: &SecretCipher,
    session: Uuid,
    space: &str,
    rows: Vec<Record>,
) -> Result<Vec<DeviceStateEntry>, StorageError> {
    rows.into_iter()
        .map(|row| {
            let opened =
                cipher.open(&row.value_sealed, &value_context(session, space, &row.key))?;
            Ok((row.key, opened.plaintext.to_vec()))
        })
        .collect()
}

fn seal_all(
    cipher: &SecretCipher,
    session: Uuid,
    space: &str,
    entries: &[DeviceStateEntry],
) -> Result<(Vec<Vec<u8>>, Vec<String>), StorageError> {
    let mut keys = Vec::with_capacity(entries.len());
    let mut values = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        values.push(cipher.seal(value, &value_context(session, space, key))?);
        keys.push(key.clone());
    }
    Ok((keys, values))
}

/// The last value given for each key: PostgreSQL refuses to upsert one key
/// twice in a statement, and a caller writing a key twice means the last.
fn last_per_key(entries: &[DeviceStateEntry]) -> Vec<DeviceStateEntry> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<DeviceStateEntry> = entries
        .iter()
        .rev()
        .filter(|(key, _)| seen.insert(key.clone()))
        .cloned()
        .collect();
    out.reverse();
    out
}

#[async_trait]
impl DeviceStateStore for PgStore {
    async fn get(
        &self,
        session: SessionId,
        space: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        Ok(self
            .get_many(session, space, &[key.to_vec()])
            .await?
            .pop()
            .map(|(_, value)| value))
    }

    async fn get_many(
        &self,
        session: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<DeviceStateEntry>, RepositoryError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cipher = cipher(self)?;
        let (id, space, keys) = (session.as_uuid(), space.to_owned(), keys.to_vec());
        Ok(self
            .db
            .run(move |conn| {
                let rows: Vec<Record> = diesel::sql_query(
                    "SELECT key, value_sealed FROM device_state \
                     WHERE session_id = $1 AND space = $2 AND key = ANY($3) ORDER BY key",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(&space)
                .bind::<Array<Bytea>, _>(&keys)
                .load(conn)?;
                open_all(&cipher, id, &space, rows)
            })
            .await?)
    }

    async fn put_many(
        &self,
        session: SessionId,
        space: &str,
        entries: &[DeviceStateEntry],
    ) -> Result<(), RepositoryError> {
        check_space(space)?;
        if entries.is_empty() {
            return Ok(());
        }
        let id = session.as_uuid();
        let (keys, values) = seal_all(&cipher(self)?, id, space, &last_per_key(entries))?;
        let space = space.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "INSERT INTO device_state (session_id, space, key, value_sealed) \
                     SELECT $1, $2, k, v FROM unnest($3::bytea[], $4::text[]) AS u(k, v) \
                     ON CONFLICT (session_id, space, key) \
                     DO UPDATE SET value_sealed = EXCLUDED.value_sealed, updated_at = now()",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(&space)
                .bind::<Array<Bytea>, _>(&keys)
                .bind::<Array<Text>, _>(&values)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn update_existing(
        &self,
        session: SessionId,
        space: &str,
        entries: &[DeviceStateEntry],
    ) -> Result<u64, RepositoryError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let id = session.as_uuid();
        let (keys, values) = seal_all(&cipher(self)?, id, space, &last_per_key(entries))?;
        let space = space.to_owned();
        Ok(self
            .db
            .run(move |conn| {
                let n = diesel::sql_query(
                    "UPDATE device_state d SET value_sealed = u.v, updated_at = now() \
                     FROM unnest($3::bytea[], $4::text[]) AS u(k, v) \
                     WHERE d.session_id = $1 AND d.space = $2 AND d.key = u.k",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(&space)
                .bind::<Array<Bytea>, _>(&keys)
                .bind::<Array<Text>, _>(&values)
                .execute(conn)?;
                Ok(n as u64)
            })
            .await?)
    }

    async fn delete_many(
        &self,
        session: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<(), RepositoryError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (id, space, keys) = (session.as_uuid(), space.to_owned(), keys.to_vec());
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "DELETE FROM device_state \
                     WHERE session_id = $1 AND space = $2 AND key = ANY($3)",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(&space)
                .bind::<Array<Bytea>, _>(&keys)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn scan(
        &self,
        session: SessionId,
        space: &str,
        prefix: &[u8],
        descending: bool,
        limit: Option<u32>,
    ) -> Result<Vec<DeviceStateEntry>, RepositoryError> {
        let cipher = cipher(self)?;
        let (id, space) = (session.as_uuid(), space.to_owned());
        let (start, end) = (prefix.to_vec(), prefix_end(prefix));
        // The key's range, not a prefix function: the primary key's index
        // serves it in either order.
        let sql = format!(
            "SELECT key, value_sealed FROM device_state \
             WHERE session_id = $1 AND space = $2 AND key >= $3 AND ($4::bytea IS NULL OR key < $4) \
             ORDER BY key {} LIMIT $5",
            if descending { "DESC" } else { "ASC" }
        );
        let limit = limit.map(i64::from);
        Ok(self
            .db
            .run(move |conn| {
                let rows: Vec<Record> = diesel::sql_query(sql)
                    .bind::<SqlUuid, _>(id)
                    .bind::<Text, _>(&space)
                    .bind::<Bytea, _>(&start)
                    .bind::<Nullable<Bytea>, _>(&end)
                    .bind::<Nullable<BigInt>, _>(limit)
                    .load(conn)?;
                open_all(&cipher, id, &space, rows)
            })
            .await?)
    }

    async fn delete_prefix(
        &self,
        session: SessionId,
        space: &str,
        prefix: &[u8],
    ) -> Result<u64, RepositoryError> {
        let (id, space) = (session.as_uuid(), space.to_owned());
        let (start, end) = (prefix.to_vec(), prefix_end(prefix));
        Ok(self
            .db
            .run(move |conn| {
                let n = diesel::sql_query(
                    "DELETE FROM device_state WHERE session_id = $1 AND space = $2 \
                     AND key >= $3 AND ($4::bytea IS NULL OR key < $4)",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(&space)
                .bind::<Bytea, _>(&start)
                .bind::<Nullable<Bytea>, _>(&end)
                .execute(conn)?;
                Ok(n as u64)
            })
            .await?)
    }

    async fn clear(&self, session: SessionId) -> Result<u64, RepositoryError> {
        let id = session.as_uuid();
        Ok(self
            .db
            .run(move |conn| {
                let n = diesel::sql_query("DELETE FROM device_state WHERE session_id = $1")
                    .bind::<SqlUuid, _>(id)
                    .execute(conn)?;
                Ok(n as u64)
            })
            .await?)
    }
}

/// Device state sealed under a previous key, sealed again under the
/// current one (`maveraa secrets rotate`), a batch of records per
/// transaction; returns how many records were sealed again, and the
/// sessions with a record no configured key opens.
pub(crate) fn reseal_device_state(
    conn: &mut PgConnection,
    cipher: &SecretCipher,
    rotate: bool,
) -> Result<(usize, Vec<(Uuid, String)>), StorageError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        session_id: Uuid,
        #[diesel(sql_type = Text)]
        space: String,
        #[diesel(sql_type = Bytea)]
        key: Vec<u8>,
        #[diesel(sql_type = Text)]
        value_sealed: String,
    }
    const BATCH: i64 = 500;
    let (mut resealed, mut unreadable) = (0, Vec::<(Uuid, String)>::new());
    let mut after: Option<(Uuid, String, Vec<u8>)> = None;
    loop {
        let (s, sp, k) = match after.clone() {
            Some((s, sp, k)) => (Some(s), Some(sp), Some(k)),
            None => (None, None, None),
        };
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT session_id, space, key, value_sealed FROM device_state \
             WHERE $1::uuid IS NULL OR (session_id, space, key) > ($1, $2, $3) \
             ORDER BY session_id, space, key LIMIT $4",
        )
        .bind::<Nullable<SqlUuid>, _>(s)
        .bind::<Nullable<Text>, _>(sp)
        .bind::<Nullable<Bytea>, _>(k)
        .bind::<BigInt, _>(BATCH)
        .load(conn)?;
        let Some(last) = rows.last() else { break };
        after = Some((last.session_id, last.space.clone(), last.key.clone()));
        for row in rows {
            let context = value_context(row.session_id, &row.space, &row.key);
            let opened = match cipher.open(&row.value_sealed, &context) {
                Ok(opened) => opened,
                Err(e) => {
                    if !unreadable.iter().any(|(id, _)| *id == row.session_id) {
                        unreadable.push((row.session_id, format!("device state: {e}")));
                    }
                    continue;
                }
            };
            if !rotate || opened.key_id == cipher.current_key_id() {
                continue;
            }
            let sealed = cipher.seal(&opened.plaintext, &context)?;
            // Only the value this pass read is replaced: a write meanwhile wins.
            let n = diesel::sql_query(
                "UPDATE device_state SET value_sealed = $4 \
                 WHERE session_id = $1 AND space = $2 AND key = $3 AND value_sealed = $5",
            )
            .bind::<SqlUuid, _>(row.session_id)
            .bind::<Text, _>(&row.space)
            .bind::<Bytea, _>(&row.key)
            .bind::<Text, _>(&sealed)
            .bind::<Text, _>(&row.value_sealed)
            .execute(conn)?;
            resealed += n;
        }
    }
    Ok((resealed, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_the_next_prefix() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x01, 0xff]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn the_last_value_of_a_key_written_twice_wins() {
        let entries = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"3".to_vec()),
        ];
        assert_eq!(
            last_per_key(&entries),
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"a".to_vec(), b"3".to_vec())
            ]
        );
    }
}
