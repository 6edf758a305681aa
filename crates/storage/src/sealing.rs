//! Sealing sessions' credentials in place: at every start and `migrate`
//! (credentials an older version stored in clear; a SQL migration cannot
//! encrypt), and by `maveraa secrets rotate` (credentials sealed under a
//! previous key, sealed again under the current one).

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use uuid::Uuid;

use crate::error::StorageError;
use crate::migrate::MIGRATION_LOCK_KEY;
use crate::schema::sessions;
use crate::secrets::SecretCipher;
use crate::sessions::{CLOUD_API, CloudApiJson, StoredSecret, parse_cloud_api, secret_context};

/// What [`seal_sessions`] did.
#[derive(Debug, Default)]
pub struct SealReport {
    /// Sessions whose credentials were in clear and are now sealed.
    pub sealed: usize,
    /// Sessions whose credentials, webhook endpoints whose secrets, and
    /// linked devices' state records, that were sealed under a previous key
    /// and are now sealed under the current one (rotation only).
    pub resealed: usize,
    /// Sessions whose credentials or device state, or webhook endpoints
    /// whose secrets, cannot be opened with the configured keys, and why
    /// (the reason names key ids, never a secret). Left as they are.
    pub unreadable: Vec<(Uuid, String)>,
}

/// Seals every credential stored in clear under `cipher`'s current key,
/// and with `rotate` also every one sealed under another key; checks that
/// every other one opens. Runs under the migrations' advisory lock, so
/// servers starting together do it once; each session is rewritten in its
/// own short transaction, its row locked and read again, so a concurrent
/// status change is kept. Idempotent.
///
/// # Errors
/// [`StorageError`] when the database cannot be reached or written.
pub fn seal_sessions(
    url: &str,
    cipher: &SecretCipher,
    rotate: bool,
) -> Result<SealReport, StorageError> {
    let mut conn = crate::pool::establish(url)?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    let result = seal_all(&mut conn, cipher, rotate);
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    result
}

fn seal_all(
    conn: &mut PgConnection,
    cipher: &SecretCipher,
    rotate: bool,
) -> Result<SealReport, StorageError> {
    let mut report = SealReport::default();
    let ids: Vec<Uuid> = sessions::table
        .filter(sessions::provider.eq(CLOUD_API))
        .order(sessions::id)
        .select(sessions::id)
        .load(conn)?;
    for id in ids {
        let outcome = conn.transaction(|conn| {
            let settings: Option<serde_json::Value> = sessions::table
                .find(id)
                .select(sessions::settings)
                .for_update()
                .first(conn)
                .optional()?;
            // Deleted meanwhile: nothing to do.
            let Some(settings) = settings else {
                return Ok::<_, DieselError>(Ok(Change::None));
            };
            let change = match reseal(id, settings, cipher, rotate) {
                Ok(change) => change,
                Err(why) => return Ok(Err(why)),
            };
            if let Some(value) = change.settings() {
                diesel::update(sessions::table.find(id))
                    .set(sessions::settings.eq(value))
                    .execute(conn)?;
            }
            Ok(Ok(change))
        })?;
        match outcome {
            Ok(Change::None) => {}
            Ok(Change::Sealed(_)) => report.sealed += 1,
            Ok(Change::Resealed(_)) => report.resealed += 1,
            Err(why) => report.unreadable.push((id, why)),
        }
    }
    reseal_webhook_secrets(conn, cipher, rotate, &mut report)?;
    let (resealed, unreadable) = crate::device_state::reseal_device_state(conn, cipher, rotate)?;
    report.resealed += resealed;
    report.unreadable.extend(unreadable);
    Ok(report)
}

/// Webhook endpoints' signing secrets (always sealed: they were never
/// stored in clear): each checked, and with `rotate` sealed again under
/// the current key when another sealed it.
fn reseal_webhook_secrets(
    conn: &mut PgConnection,
    cipher: &SecretCipher,
    rotate: bool,
    report: &mut SealReport,
) -> Result<(), StorageError> {
    use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Text)]
        secret_sealed: String,
        #[diesel(sql_type = Nullable<Text>)]
        previous_secret_sealed: Option<String>,
    }

    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id, secret_sealed, previous_secret_sealed FROM webhook_endpoints ORDER BY id",
    )
    .load(conn)?;
    for row in rows {
        let context = crate::webhooks::secret_context(row.id, "secret");
        let again = |sealed: &str| -> Result<Option<String>, String> {
            let opened = cipher
                .open(sealed, &context)
                .map_err(|e| format!("secret: {e}"))?;
            if rotate && opened.key_id != cipher.current_key_id() {
                return cipher
                    .seal(&opened.plaintext, &context)
                    .map(Some)
                    .map_err(|e| format!("secret: {e}"));
            }
            Ok(None)
        };
        let current = again(&row.secret_sealed);
        let previous = row.previous_secret_sealed.as_deref().map(again).transpose();
        match (current, previous) {
            (Ok(None), Ok(None | Some(None))) => {}
            (Ok(current), Ok(previous)) => {
                // Only the values this pass read are replaced: a roll
                // meanwhile wins.
                diesel::sql_query(
                    "UPDATE webhook_endpoints SET secret_sealed = COALESCE($2, secret_sealed), \
                     previous_secret_sealed = COALESCE($3, previous_secret_sealed) \
                     WHERE id = $1 AND secret_sealed = $4",
                )
                .bind::<SqlUuid, _>(row.id)
                .bind::<Nullable<Text>, _>(current)
                .bind::<Nullable<Text>, _>(previous.flatten())
                .bind::<Text, _>(&row.secret_sealed)
                .execute(conn)?;
                report.resealed += 1;
            }
            (Err(why), _) | (_, Err(why)) => report.unreadable.push((row.id, why)),
        }
    }
    Ok(())
}

/// What sealing does to one session's settings. No `Debug`: the new
/// settings are only sealed, but the type says nothing more than needed.
enum Change {
    None,
    Sealed(serde_json::Value),
    Resealed(serde_json::Value),
}

impl Change {
    fn settings(&self) -> Option<&serde_json::Value> {
        match self {
            Self::None => None,
            Self::Sealed(v) | Self::Resealed(v) => Some(v),
        }
    }
}

/// The settings of session `id` sealed as they should be, or why they
/// cannot be read.
fn reseal(
    id: Uuid,
    settings: serde_json::Value,
    cipher: &SecretCipher,
    rotate: bool,
) -> Result<Change, String> {
    let mut json: CloudApiJson = parse_cloud_api(settings).map_err(|e| e.to_string())?;
    let (mut plain, mut resealed) = (false, false);
    for (field, stored) in [
        ("access_token", &mut json.access_token),
        ("app_secret", &mut json.app_secret),
        ("verify_token", &mut json.verify_token),
    ] {
        let context = secret_context(id, field);
        let seal = |bytes: &[u8]| {
            cipher
                .seal(bytes, &context)
                .map(|sealed| StoredSecret::Sealed { sealed })
                .map_err(|e| format!("{field}: {e}"))
        };
        match stored {
            StoredSecret::Plain(text) => {
                *stored = seal(text.as_bytes())?;
                plain = true;
            }
            StoredSecret::Sealed { sealed } => {
                let opened = cipher
                    .open(sealed, &context)
                    .map_err(|e| format!("{field}: {e}"))?;
                if rotate && opened.key_id != cipher.current_key_id() {
                    *stored = seal(&opened.plaintext)?;
                    resealed = true;
                }
            }
        }
    }
    if !plain && !resealed {
        return Ok(Change::None);
    }
    let value = serde_json::to_value(json).map_err(|e| format!("settings: {e}"))?;
    Ok(if plain {
        Change::Sealed(value)
    } else {
        Change::Resealed(value)
    })
}
