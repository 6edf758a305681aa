//! Linked devices' link state (columns of `sessions`) and the holds of
//! their connections (`session_holders`), by the database's clock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{
    LinkCode, LinkRequests, LinkUpdate, PairOutcome, Session, SessionStatus,
};
use maveraa_domain::ports::SessionLinks;
use maveraa_domain::{RepositoryError, SessionId};

use crate::schema::sessions;
use crate::sessions::{SessionRow, WHATSAPP_WEB};
use crate::store::PgStore;

/// The columns one update writes: the status, its reason, and what goes
/// with it.
struct Columns {
    status: &'static str,
    last_error: Option<String>,
    qr: Option<(String, DateTime<Utc>)>,
    me: Option<(String, Option<String>)>,
}

fn columns(update: &LinkUpdate) -> Columns {
    let mut c = Columns {
        status: update.status().as_str(),
        last_error: None,
        qr: None,
        me: None,
    };
    match update {
        LinkUpdate::Starting => {}
        LinkUpdate::Qr(code) => c.qr = Some((code.code.clone(), code.expires_at)),
        LinkUpdate::Connected(me) => c.me = Some((me.jid.clone(), me.push_name.clone())),
        LinkUpdate::Disconnected(reason) | LinkUpdate::Failed(reason) => {
            c.last_error = Some(reason.clone());
        }
        LinkUpdate::LoggedOut(reason) => c.last_error = reason.clone(),
    }
    c
}

#[async_trait]
impl SessionLinks for PgStore {
    async fn runnable(&self) -> Result<Vec<Session>, RepositoryError> {
        let rows = self
            .db
            .run(|conn| {
                Ok(sessions::table
                    .filter(sessions::provider.eq(WHATSAPP_WEB))
                    .filter(sessions::status.ne_all([
                        SessionStatus::Stopped.as_str(),
                        SessionStatus::LoggedOut.as_str(),
                    ]))
                    .order(sessions::id)
                    .select(SessionRow::as_select())
                    .load(conn)?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_session(self.secrets.as_ref()))
            .collect::<Result<_, _>>()?)
    }

    async fn hold(
        &self,
        session: SessionId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, RepositoryError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let holder = holder.to_owned();
        Ok(self
            .db
            .run(move |conn| {
                // One statement: taking a free or run-out hold and renewing
                // one's own are the same upsert, and a live hold of
                // another server is left alone.
                let n = diesel::sql_query(
                    "INSERT INTO session_holders (session_id, holder, expires_at) \
                     SELECT $1, $2, now() + $3 * interval '1 millisecond' \
                     WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1) \
                     ON CONFLICT (session_id) DO UPDATE \
                     SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                     WHERE session_holders.holder = EXCLUDED.holder \
                        OR session_holders.expires_at < now()",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .bind::<Text, _>(holder)
                .bind::<diesel::sql_types::BigInt, _>(ttl_ms)
                .execute(conn)?;
                Ok(n == 1)
            })
            .await?)
    }

    async fn release(&self, session: SessionId, holder: &str) -> Result<(), RepositoryError> {
        let holder = holder.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "DELETE FROM session_holders WHERE session_id = $1 AND holder = $2",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .bind::<Text, _>(holder)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn record(&self, session: SessionId, update: &LinkUpdate) -> Result<(), RepositoryError> {
        let c = columns(update);
        let logged_out = matches!(update, LinkUpdate::LoggedOut(_));
        let (qr, qr_expires) = c.qr.unzip();
        let (me_jid, me_name) = match c.me {
            Some((jid, name)) => (Some(jid), name),
            None => (None, None),
        };
        self.db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // A stopped session stays stopped and a logged-out one
                    // logged out (a late report of a closing connection
                    // changes neither), except that a logout always lands.
                    // The QR code is kept only while waiting for a scan;
                    // the account is kept once known.
                    let n = diesel::sql_query(
                        "UPDATE sessions SET status = $2, last_error = $3, \
                         link_qr = $4, link_qr_expires_at = $5, \
                         me_jid = CASE WHEN $8 THEN NULL ELSE COALESCE($6, me_jid) END, \
                         me_push_name = CASE WHEN $8 THEN NULL \
                                             WHEN $6 IS NOT NULL THEN $7 ELSE me_push_name END, \
                         pair_requested = pair_requested AND NOT $8, \
                         logout_requested = logout_requested AND NOT $8, \
                         updated_at = now() \
                         WHERE id = $1 AND ($8 OR status NOT IN ('stopped', 'logged_out'))",
                    )
                    .bind::<SqlUuid, _>(session.as_uuid())
                    .bind::<Text, _>(c.status)
                    .bind::<Nullable<Text>, _>(c.last_error)
                    .bind::<Nullable<Text>, _>(qr)
                    .bind::<Nullable<Timestamptz>, _>(qr_expires)
                    .bind::<Nullable<Text>, _>(me_jid)
                    .bind::<Nullable<Text>, _>(me_name)
                    .bind::<Bool, _>(logged_out)
                    .execute(conn)?;
                    if logged_out && n == 1 {
                        diesel::sql_query("DELETE FROM device_state WHERE session_id = $1")
                            .bind::<SqlUuid, _>(session.as_uuid())
                            .execute(conn)?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn qr(&self, session: SessionId) -> Result<Option<LinkCode>, RepositoryError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            link_qr: String,
            #[diesel(sql_type = Timestamptz)]
            link_qr_expires_at: DateTime<Utc>,
        }
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "SELECT link_qr, link_qr_expires_at FROM sessions \
                     WHERE id = $1 AND link_qr IS NOT NULL AND link_qr_expires_at > now()",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .get_result(conn)
                .optional()?)
            })
            .await?;
        Ok(row.map(|r| LinkCode {
            code: r.link_qr,
            expires_at: r.link_qr_expires_at,
        }))
    }

    async fn request_pair_code(
        &self,
        session: SessionId,
        phone: &str,
    ) -> Result<(), RepositoryError> {
        let phone = phone.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE sessions SET pair_phone = $2, pair_requested = true, \
                     pair_code = NULL, pair_error = NULL WHERE id = $1",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .bind::<Text, _>(phone)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn request_logout(&self, session: SessionId) -> Result<(), RepositoryError> {
        self.db
            .run(move |conn| {
                diesel::sql_query("UPDATE sessions SET logout_requested = true WHERE id = $1")
                    .bind::<SqlUuid, _>(session.as_uuid())
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn take_requests(&self, session: SessionId) -> Result<LinkRequests, RepositoryError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Nullable<Text>)]
            pair_phone: Option<String>,
            #[diesel(sql_type = Bool)]
            logout: bool,
        }
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                // Taken and cleared in one statement: each request once.
                Ok(diesel::sql_query(
                    "UPDATE sessions s SET pair_requested = false, logout_requested = false \
                     FROM (SELECT id, pair_requested, logout_requested FROM sessions \
                           WHERE id = $1 FOR UPDATE) old \
                     WHERE s.id = old.id AND (old.pair_requested OR old.logout_requested) \
                     RETURNING CASE WHEN old.pair_requested THEN s.pair_phone END AS pair_phone, \
                               old.logout_requested AS logout",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .get_result(conn)
                .optional()?)
            })
            .await?;
        Ok(row
            .map(|r| LinkRequests {
                pair_phone: r.pair_phone,
                logout: r.logout,
            })
            .unwrap_or_default())
    }

    async fn answer_pair_code(
        &self,
        session: SessionId,
        outcome: &PairOutcome,
    ) -> Result<(), RepositoryError> {
        let (code, error) = match outcome {
            PairOutcome::Code(code) => (Some(code.clone()), None),
            PairOutcome::Failed(why) => (None, Some(why.clone())),
        };
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE sessions SET pair_code = $2, pair_error = $3 WHERE id = $1",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .bind::<Nullable<Text>, _>(code)
                .bind::<Nullable<Text>, _>(error)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn pair_code_answer(
        &self,
        session: SessionId,
    ) -> Result<Option<PairOutcome>, RepositoryError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Nullable<Text>)]
            pair_code: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            pair_error: Option<String>,
        }
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Ok(
                    diesel::sql_query("SELECT pair_code, pair_error FROM sessions WHERE id = $1")
                        .bind::<SqlUuid, _>(session.as_uuid())
                        .get_result(conn)
                        .optional()?,
                )
            })
            .await?;
        Ok(row.and_then(|r| match (r.pair_code, r.pair_error) {
            (Some(code), _) => Some(PairOutcome::Code(code)),
            (None, Some(why)) => Some(PairOutcome::Failed(why)),
            (None, None) => None,
        }))
    }

    async fn fail_unsent(&self, waited: Duration) -> Result<u64, RepositoryError> {
        let secs = waited.as_secs_f64();
        let why = format!(
            "the session was not connected within {} hours of the send",
            (secs / 3600.0).round()
        );
        Ok(self
            .db
            .run(move |conn| {
                // Entries under a live lease are left to their dispatcher.
                let n = diesel::sql_query(
                    "WITH expired AS ( \
                         DELETE FROM outbox o USING messages m, sessions s \
                         WHERE m.id = o.message_id AND s.id = m.session_id \
                           AND s.provider = 'whatsapp-web' \
                           AND s.status NOT IN ('connected', 'stopped') \
                           AND (o.locked_until IS NULL OR o.locked_until < now()) \
                           AND m.status = 'queued' \
                           AND m.created_at < now() - $1 * interval '1 second' \
                         RETURNING o.message_id \
                     ), failed AS ( \
                         UPDATE messages m SET status = 'failed', \
                             error_code = 'session_not_connected', error_message = $2, \
                             updated_at = now() \
                         FROM expired e WHERE m.id = e.message_id RETURNING m.id \
                     ) \
                     INSERT INTO message_status_history \
                         (message_id, status, at, error_code, error_message) \
                     SELECT id, 'failed', now(), 'session_not_connected', $2 FROM failed",
                )
                .bind::<diesel::sql_types::Double, _>(secs)
                .bind::<Text, _>(why)
                .execute(conn)?;
                Ok(n as u64)
            })
            .await?)
    }

    async fn is_held(&self, session: SessionId) -> Result<bool, RepositoryError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Bool)]
            held: bool,
        }
        let row: Row = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "SELECT EXISTS (SELECT 1 FROM session_holders \
                     WHERE session_id = $1 AND expires_at > now()) AS held",
                )
                .bind::<SqlUuid, _>(session.as_uuid())
                .get_result(conn)?)
            })
            .await?;
        Ok(row.held)
    }
}
