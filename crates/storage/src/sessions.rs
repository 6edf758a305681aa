//! WhatsApp sessions: the numbers connected to a workspace.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use maveraa_domain::messaging::{
    CloudApiSettings, ProviderSettings, SecretString, Session, SessionName, SessionStatus,
};
use maveraa_domain::ports::SessionRepository;
use maveraa_domain::{RepositoryError, SessionId, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StorageError;
use crate::schema::sessions;
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
}

/// The `settings` JSON of a `cloud-api` session. The secrets are stored as
/// given: the server needs them in clear to call the provider and to check
/// webhook signatures. They are never logged.
#[derive(Serialize, Deserialize)]
struct CloudApiJson {
    phone_number_id: String,
    access_token: String,
    app_secret: String,
    verify_token: String,
}

const SIMULATOR: &str = "simulator";
const CLOUD_API: &str = "cloud-api";

/// The `provider` and `settings` columns of `provider`.
fn encode_provider(
    provider: &ProviderSettings,
) -> Result<(String, serde_json::Value), StorageError> {
    match provider {
        ProviderSettings::Simulator => Ok((SIMULATOR.to_owned(), serde_json::json!({}))),
        ProviderSettings::CloudApi(s) => {
            let json = CloudApiJson {
                phone_number_id: s.phone_number_id.clone(),
                access_token: s.access_token.expose().to_owned(),
                app_secret: s.app_secret.expose().to_owned(),
                verify_token: s.verify_token.expose().to_owned(),
            };
            let value = serde_json::to_value(json)
                .map_err(|e| StorageError::Corrupt(format!("session settings: {e}")))?;
            Ok((CLOUD_API.to_owned(), value))
        }
    }
}

/// The provider settings stored as `provider` and `settings`.
fn decode_provider(
    provider: &str,
    settings: serde_json::Value,
) -> Result<ProviderSettings, StorageError> {
    match provider {
        SIMULATOR => Ok(ProviderSettings::Simulator),
        CLOUD_API => {
            let s: CloudApiJson = serde_json::from_value(settings).map_err(|e| {
                // Say which field is missing, but never echo a stored value.
                let e = e.to_string();
                let why = if e.starts_with("missing field") {
                    e.as_str()
                } else {
                    "malformed"
                };
                StorageError::Corrupt(format!("cloud-api settings: {why}"))
            })?;
            Ok(ProviderSettings::CloudApi(CloudApiSettings {
                phone_number_id: s.phone_number_id,
                access_token: SecretString::new(s.access_token),
                app_secret: SecretString::new(s.app_secret),
                verify_token: SecretString::new(s.verify_token),
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
) -> Result<Session, StorageError> {
    Ok(Session {
        id: SessionId::from_uuid(id),
        workspace_id: WorkspaceId::from_uuid(workspace_id),
        name: SessionName::from_trusted(name),
        provider: decode_provider(provider, settings)?,
        status: SessionStatus::parse(status)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown session status {status:?}")))?,
        last_error,
        created_at,
    })
}

impl TryFrom<SessionRow> for Session {
    type Error = StorageError;

    fn try_from(r: SessionRow) -> Result<Self, Self::Error> {
        session_from_columns(
            r.id,
            r.workspace_id,
            r.name,
            &r.provider,
            r.settings,
            &r.status,
            r.last_error,
            r.created_at,
        )
    }
}

impl SessionRow {
    fn new(s: &Session) -> Result<Self, StorageError> {
        let (provider, settings) = encode_provider(&s.provider)?;
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
        })
    }
}

#[async_trait]
impl SessionRepository for PgStore {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        let row = SessionRow::new(session)?;
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
        Ok(row.map(Session::try_from).transpose()?)
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
        Ok(row.map(Session::try_from).transpose()?)
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
            .map(Session::try_from)
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
                    diesel::update(session).set(changes).execute(conn)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_api_settings_round_trip_through_json() {
        let settings = ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: "123".into(),
            access_token: SecretString::new("EAAtoken"),
            app_secret: SecretString::new("appsecret"),
            verify_token: SecretString::new("verify"),
        });
        let (kind, json) = encode_provider(&settings).expect("encode");
        assert_eq!(kind, "cloud-api");
        assert_eq!(json["phone_number_id"], "123");
        assert_eq!(decode_provider(&kind, json).expect("decode"), settings);
    }

    #[test]
    fn unreadable_settings_do_not_echo_secrets() {
        let err = decode_provider(
            "cloud-api",
            serde_json::json!({"phone_number_id": "1", "access_token": "EAAsecret"}),
        )
        .expect_err("incomplete settings are refused");
        assert!(!err.to_string().contains("EAAsecret"));
        assert!(decode_provider("whatsmeow", serde_json::json!({})).is_err());
    }
}
