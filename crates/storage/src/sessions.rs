//! WhatsApp sessions: the numbers connected to a workspace.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use maveraa_domain::messaging::{
    CloudApiSettings, LinkedAccount, ProviderSettings, SecretString, Session, SessionName,
    SessionStatus,
};
use maveraa_domain::ports::SessionRepository;
use maveraa_domain::{RepositoryError, SessionId, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StorageError;
use crate::schema::sessions;
use crate::secrets::{SecretCipher, SecretError};
use crate::store::PgStore;

/// A stored session. No `Debug`: `settings` holds the provider's secrets.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(Pg))]
pub(crate) struct SessionRow {
    pub(crate) id: Uuid,
    pub(crate) workspace_id: Uuid,
    pub(crate) name: String,
    pub(crate) provider: String,
    pub(crate) settings: serde_json::Value,
    pub(crate) status: String,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) me_jid: Option<String>,
    pub(crate) me_push_name: Option<String>,
}

/// The `settings` JSON of a `cloud-api` session. The secrets are sealed
/// (`crate::secrets`): the server needs them in clear to call the provider
/// and check webhook signatures, but a dump or backup of the table must
/// not be enough to. They are never logged.
#[derive(Serialize, Deserialize)]
pub(crate) struct CloudApiJson {
    pub(crate) phone_number_id: String,
    pub(crate) access_token: StoredSecret,
    pub(crate) app_secret: StoredSecret,
    pub(crate) verify_token: StoredSecret,
}

/// A credential as stored: `{"sealed": "mvs1:..."}`, or a string written
/// in clear by a version before encryption, which start-up seals
/// (`crate::sealing`) and reads accept meanwhile. An object and not a
/// string, so no credential's text can pass for a sealed value, and a
/// version that predates sealing refuses the row rather than send it as
/// a token. No `Debug`: it may hold a secret in clear.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum StoredSecret {
    Sealed { sealed: String },
    Plain(String),
}

pub(crate) const SIMULATOR: &str = "simulator";
pub(crate) const WHATSAPP_WEB: &str = "whatsapp-web";
pub(crate) const CLOUD_API: &str = "cloud-api";

/// Where a credential of `session` is sealed for: a sealed value opens
/// only in its own row and field.
pub(crate) fn secret_context(session: Uuid, field: &str) -> String {
    format!("sessions/{session}/{field}")
}

fn seal(
    secrets: Option<&SecretCipher>,
    session: Uuid,
    field: &'static str,
    value: &SecretString,
) -> Result<StoredSecret, StorageError> {
    let wrap = |source| StorageError::Secret {
        session,
        field,
        source,
    };
    let cipher = secrets.ok_or_else(|| wrap(SecretError::NoKey))?;
    let sealed = cipher
        .seal(value.expose().as_bytes(), &secret_context(session, field))
        .map_err(wrap)?;
    Ok(StoredSecret::Sealed { sealed })
}

fn open(
    secrets: Option<&SecretCipher>,
    session: Uuid,
    field: &'static str,
    stored: StoredSecret,
) -> Result<SecretString, StorageError> {
    let wrap = |source| StorageError::Secret {
        session,
        field,
        source,
    };
    match stored {
        StoredSecret::Plain(text) => Ok(SecretString::new(text)),
        StoredSecret::Sealed { sealed } => {
            let cipher = secrets.ok_or_else(|| wrap(SecretError::NoKey))?;
            let opened = cipher
                .open(&sealed, &secret_context(session, field))
                .map_err(wrap)?;
            let text = std::str::from_utf8(&opened.plaintext)
                .map_err(|_| wrap(SecretError::Malformed("not UTF-8 text")))?;
            Ok(SecretString::new(text))
        }
    }
}

/// The `provider` and `settings` columns of `provider`, for session `id`.
fn encode_provider(
    provider: &ProviderSettings,
    id: Uuid,
    secrets: Option<&SecretCipher>,
) -> Result<(String, serde_json::Value), StorageError> {
    match provider {
        ProviderSettings::Simulator => Ok((SIMULATOR.to_owned(), serde_json::json!({}))),
        ProviderSettings::WhatsAppWeb => Ok((WHATSAPP_WEB.to_owned(), serde_json::json!({}))),
        ProviderSettings::CloudApi(s) => {
            let json = CloudApiJson {
                phone_number_id: s.phone_number_id.clone(),
                access_token: seal(secrets, id, "access_token", &s.access_token)?,
                app_secret: seal(secrets, id, "app_secret", &s.app_secret)?,
                verify_token: seal(secrets, id, "verify_token", &s.verify_token)?,
            };
            let value = serde_json::to_value(json)
                .map_err(|e| StorageError::Corrupt(format!("session settings: {e}")))?;
            Ok((CLOUD_API.to_owned(), value))
        }
    }
}

/// Reads `cloud-api` settings JSON, naming a missing field but never
/// echoing a stored value.
pub(crate) fn parse_cloud_api(settings: serde_json::Value) -> Result<CloudApiJson, StorageError> {
    serde_json::from_value(settings).map_err(|e| {
        let e = e.to_string();
        let why = if e.starts_with("missing field") {
            e.as_str()
        } else {
            "malformed"
        };
        StorageError::Corrupt(format!("cloud-api settings: {why}"))
    })
}

/// The provider settings of session `id` stored as `provider` and
/// `settings`.
fn decode_provider(
    provider: &str,
    settings: serde_json::Value,
    id: Uuid,
    secrets: Option<&SecretCipher>,
) -> Result<ProviderSettings, StorageError> {
    match provider {
        SIMULATOR => Ok(ProviderSettings::Simulator),
        WHATSAPP_WEB => Ok(ProviderSettings::WhatsAppWeb),
        CLOUD_API => {
            let s = parse_cloud_api(settings)?;
            Ok(ProviderSettings::CloudApi(CloudApiSettings {
                phone_number_id: s.phone_number_id,
                access_token: open(secrets, id, "access_token", s.access_token)?,
                app_secret: open(secrets, id, "app_secret", s.app_secret)?,
                verify_token: open(secrets, id, "verify_token", s.verify_token)?,
            }))
        }
        other => Err(StorageError::Corrupt(format!("unknown provider {other:?}"))),
    }
}

/// Builds a session from its stored columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn session_from_columns(
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    provider: &str,
    settings: serde_json::Value,
    status: &str,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    secrets: Option<&SecretCipher>,
) -> Result<Session, StorageError> {
    Ok(Session {
        id: SessionId::from_uuid(id),
        workspace_id: WorkspaceId::from_uuid(workspace_id),
        name: SessionName::from_trusted(name),
        provider: decode_provider(provider, settings, id, secrets)?,
        status: SessionStatus::parse(status)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown session status {status:?}")))?,
        last_error,
        me: None,
        created_at,
    })
}

impl SessionRow {
    pub(crate) fn into_session(
        self,
        secrets: Option<&SecretCipher>,
    ) -> Result<Session, StorageError> {
        let r = self;
        let me = r.me_jid.map(|jid| LinkedAccount {
            jid,
            push_name: r.me_push_name,
        });
        let mut session = session_from_columns(
            r.id,
            r.workspace_id,
            r.name,
            &r.provider,
            r.settings,
            &r.status,
            r.last_error,
            r.created_at,
            secrets,
        )?;
        session.me = me;
        Ok(session)
    }
}

impl SessionRow {
    fn new(s: &Session, secrets: Option<&SecretCipher>) -> Result<Self, StorageError> {
        let (provider, settings) = encode_provider(&s.provider, s.id.as_uuid(), secrets)?;
        Ok(Self {
            id: s.id.as_uuid(),
            workspace_id: s.workspace_id.as_uuid(),
            name: s.name.as_str().to_owned(),
            provider,
            settings,
            status: s.status.as_str().to_owned(),
            last_error: s.last_error.clone(),
            created_at: s.created_at,
            updated_at: s.created_at,
            me_jid: s.me.as_ref().map(|m| m.jid.clone()),
            me_push_name: s.me.as_ref().and_then(|m| m.push_name.clone()),
        })
    }
}

#[async_trait]
impl SessionRepository for PgStore {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        let row = SessionRow::new(session, self.secrets.as_ref())?;
        self.db
            .run(move |conn| {
                // ON CONFLICT waits for a concurrent insert of the same name
                // to commit, so exactly one of many racing inserts wins.
                let inserted = diesel::insert_into(sessions::table)
                    .values(&row)
                    .on_conflict((sessions::workspace_id, sessions::name))
                    .do_nothing()
                    .execute(conn)?;
                if inserted == 1 {
                    return Ok(Ok(()));
                }
                let existing = sessions::table
                    .filter(sessions::workspace_id.eq(row.workspace_id))
                    .filter(sessions::name.eq(&row.name))
                    .select(sessions::id)
                    .first(conn)
                    .optional()?;
                Ok(Err(RepositoryError::Duplicate { existing }))
            })
            .await?
    }

    async fn get_by_name(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Option<Session>, RepositoryError> {
        let name = name.as_str().to_owned();
        let row = self
            .reads
            .run(move |conn| {
                Ok(sessions::table
                    .filter(sessions::workspace_id.eq(workspace.as_uuid()))
                    .filter(sessions::name.eq(name))
                    .select(SessionRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row
            .map(|r| r.into_session(self.secrets.as_ref()))
            .transpose()?)
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        let row = self
            .db
            .run(move |conn| {
                Ok(sessions::table
                    .find(id.as_uuid())
                    .select(SessionRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row
            .map(|r| r.into_session(self.secrets.as_ref()))
            .transpose()?)
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Session>, RepositoryError> {
        let rows = self
            .db
            .run(move |conn| {
                Ok(sessions::table
                    .filter(sessions::workspace_id.eq(workspace.as_uuid()))
                    .order((sessions::created_at.asc(), sessions::id.asc()))
                    .select(SessionRow::as_select())
                    .load(conn)?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_session(self.secrets.as_ref()))
            .collect::<Result<_, _>>()?)
    }

    async fn delete(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<bool, RepositoryError> {
        let name = name.as_str().to_owned();
        // Messages, their history and outbox entries, conversations and
        // pending statuses go with it (ON DELETE CASCADE).
        let deleted = self
            .db
            .run(move |conn| {
                Ok(diesel::delete(
                    sessions::table
                        .filter(sessions::workspace_id.eq(workspace.as_uuid()))
                        .filter(sessions::name.eq(name)),
                )
                .execute(conn)?)
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        last_error: Option<String>,
    ) -> Result<(), RepositoryError> {
        self.db
            .run(move |conn| {
                let session = sessions::table.filter(sessions::id.eq(id.as_uuid()));
                let changes = (
                    sessions::status.eq(status.as_str()),
                    sessions::last_error.eq(last_error),
                    sessions::updated_at.eq(diesel::dsl::now),
                );
                if status == SessionStatus::Disconnected {
                    // Only from connected, in the same statement: a send
                    // that started before the credentials failed must not
                    // hide that error.
                    diesel::update(
                        session.filter(sessions::status.eq(SessionStatus::Connected.as_str())),
                    )
                    .set(changes)
                    .execute(conn)?;
                } else {
                    // A send that ends after its session was stopped must
                    // not start it again.
                    diesel::update(
                        session.filter(sessions::status.ne(SessionStatus::Stopped.as_str())),
                    )
                    .set(changes)
                    .execute(conn)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn set_stopped(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
        stopped: bool,
    ) -> Result<bool, RepositoryError> {
        use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
        let name = name.as_str().to_owned();
        let updated = self
            .db
            .run(move |conn| {
                // A linked device starts by opening its connection (a
                // server holding it turns it `connected`); the others send
                // at once.
                Ok(diesel::sql_query(format!(
                    "UPDATE sessions SET status = CASE WHEN $3 THEN '{stopped}' \
                     WHEN provider = '{WHATSAPP_WEB}' THEN '{starting}' ELSE '{connected}' END, \
                     last_error = NULL, updated_at = now() \
                     WHERE workspace_id = $1 AND name = $2",
                    stopped = SessionStatus::Stopped.as_str(),
                    starting = SessionStatus::Starting.as_str(),
                    connected = SessionStatus::Connected.as_str(),
                ))
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .bind::<Text, _>(name)
                .bind::<Bool, _>(stopped)
                .execute(conn)?)
            })
            .await?;
        Ok(updated == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretKey;

    fn cipher() -> SecretCipher {
        SecretCipher::new(SecretKey::parse(&"ab".repeat(32)).expect("key"), [])
    }

    fn cloud() -> ProviderSettings {
        ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: "123".into(),
            access_token: SecretString::new("EAAtoken"),
            app_secret: SecretString::new("appsecret"),
            verify_token: SecretString::new("vt-6d2f"),
        })
    }

    #[test]
    fn cloud_api_settings_round_trip_sealed() {
        let id = Uuid::new_v4();
        let c = cipher();
        let (kind, json) = encode_provider(&cloud(), id, Some(&c)).expect("encode");
        assert_eq!(kind, "cloud-api");
        assert_eq!(json["phone_number_id"], "123");
        let text = json.to_string();
        for secret in ["EAAtoken", "appsecret", "vt-6d2f"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(json["access_token"]["sealed"].is_string(), "{text}");
        assert_eq!(
            decode_provider(&kind, json.clone(), id, Some(&c)).expect("decode"),
            cloud()
        );
        // Another session's row does not open them.
        assert!(decode_provider(&kind, json, Uuid::new_v4(), Some(&c)).is_err());
    }

    #[test]
    fn without_a_key_credentials_are_neither_stored_nor_read() {
        let id = Uuid::new_v4();
        let err = encode_provider(&cloud(), id, None).expect_err("no key, no storing");
        assert!(err.to_string().contains("no secrets key"), "{err}");
        let (_, json) = encode_provider(&cloud(), id, Some(&cipher())).expect("encode");
        assert!(decode_provider("cloud-api", json, id, None).is_err());
        // The simulator has no secrets.
        assert!(encode_provider(&ProviderSettings::Simulator, id, None).is_ok());
    }

    #[test]
    fn plain_settings_of_older_versions_are_still_read() {
        let json = serde_json::json!({"phone_number_id": "123", "access_token": "EAAtoken",
            "app_secret": "appsecret", "verify_token": "vt-6d2f"});
        assert_eq!(
            decode_provider("cloud-api", json, Uuid::new_v4(), None).expect("decode"),
            cloud()
        );
    }

    #[test]
    fn unreadable_settings_do_not_echo_secrets() {
        let err = decode_provider(
            "cloud-api",
            serde_json::json!({"phone_number_id": "1", "access_token": "EAAsecret"}),
            Uuid::new_v4(),
            None,
        )
        .expect_err("incomplete settings are refused");
        assert!(!err.to_string().contains("EAAsecret"));
        assert!(decode_provider("whatsmeow", serde_json::json!({}), Uuid::new_v4(), None).is_err());
    }
}
