//! The outbox: claiming due entries and recording what became of them.
//!
//! Several dispatchers may share one database: a claim takes entries with
//! `FOR UPDATE SKIP LOCKED` and moves them to the end of its lease, so they
//! are neither claimed twice nor lost when a dispatcher dies.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use maveraa_domain::RepositoryError;
use maveraa_domain::messaging::{Message, MessageStatus};
use maveraa_domain::ports::{Claim, DispatchOutcome, Outbox, OutboxJob, SessionPace};
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::rows::{MESSAGE_COLUMNS, MessageRow};
use crate::messages::sent::{IdRow, record_sent};
use crate::messages::status::rank_sql;
use crate::secrets::SecretCipher;
use crate::sessions::session_from_columns;
use crate::sql::{Sql, with_generic_plans};
use crate::store::PgStore;

/// A claimed entry with its message and session. No `Debug`: `settings`
/// holds the provider's secrets.
#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(embed)]
    message: MessageRow,
    #[diesel(sql_type = SqlUuid)]
    session_workspace_id: Uuid,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Jsonb)]
    settings: serde_json::Value,
    #[diesel(sql_type = Text)]
    session_status: String,
    #[diesel(sql_type = Nullable<Text>)]
    session_last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    session_created_at: DateTime<Utc>,
}

impl ClaimRow {
    /// The job, its session's credentials opened with `secrets`.
    fn into_job(self, secrets: Option<&SecretCipher>) -> Result<OutboxJob, StorageError> {
        let r = self;
        let session = session_from_columns(
            r.message.session_id,
            r.session_workspace_id,
            r.message.session_name.clone(),
            &r.provider,
            r.settings,
            &r.session_status,
            r.session_last_error,
            r.session_created_at,
            secrets,
        )?;
        Ok(OutboxJob {
            message: Message::try_from(r.message)?,
            session,
            attempt: u32::try_from(r.attempts).unwrap_or(0),
        })
    }
}

/// Claims after which an entry no process could read is failed.
const UNREADABLE_CLAIMS: i32 = 3;

/// The error code of a message failed because it could not be read.
pub const UNREADABLE_CODE: &str = "unreadable";

/// First key of the transaction-level advisory locks a claim takes on
/// each session it claims for ("mvpc"): one claimer at a time counts and
/// claims a session's entries, so two claims racing cannot both see room
/// under the cap. Two-key form, apart from the single-key locks of
/// migrations and test templates and from the provider-id locks.
const SESSION_CLAIM_LOCK_SPACE: i32 = 0x6d76_7063;

/// The sessions with due entries, but stopped ones (their messages wait),
/// whose claim lock this transaction got
/// (`pg_try_advisory_xact_lock`: a session another claimer is claiming for
/// right now is skipped, as `SKIP LOCKED` skips rows). Materialised first,
/// so that only sessions with due entries are locked (the planner may
/// otherwise try the lock before the cheaper-looking `EXISTS`, and a
/// claimer would hold every session). A statement of its
/// own, so that the claim after it takes its snapshot once the locks are
/// held and sees every claim committed before them.
static LOCK_SESSIONS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "\
WITH due AS MATERIALIZED (
    SELECT s.id FROM sessions s
    WHERE s.status <> 'stopped'
      -- A linked device's messages go through its connection: only the
      -- server holding it claims them, and only while connected (else
      -- they wait queued).
      AND (s.provider <> 'whatsapp-web'
           OR (s.status = 'connected'
               AND EXISTS (SELECT 1 FROM session_holders h
                           WHERE h.session_id = s.id AND h.holder = $1 AND h.expires_at > now())))
      AND EXISTS (SELECT 1 FROM outbox o WHERE o.session_id = s.id AND o.next_attempt_at <= now())
)
SELECT id FROM due
WHERE pg_try_advisory_xact_lock({SESSION_CLAIM_LOCK_SPACE}, hashtext(id::text))"
    ))
});

/// Claims, for the sessions `$4` (whose claim locks the transaction holds),
/// up to `$2` due entries in all for worker `$1` and a lease of `$3`
/// seconds, and reads them with their messages and sessions. An entry is
/// due when its next attempt has come, no live lease holds it, and no
/// earlier queued entry to the same recipient of its session is still in
/// the outbox. A session gets at most `$5` minus its entries under a live
/// lease and, with a rate `$6` (per second), as many as its pace row
/// allows (a burst of one second's worth), which the claim moves on by one
/// step per entry. The claim moves each entry's next attempt to the
/// lease's end, so an entry whose dispatcher died is due again then. An
/// entry whose lease ended while the database was down waits one lease
/// more after the database (re)started: its dispatcher may be alive and
/// holding an outcome it could not record (a `sent` among them), and gets
/// that long to record it before anyone sends the message again.
static CLAIM_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "\
WITH room AS (
    SELECT s.id AS session_id, LEAST(
        $5 - (SELECT count(*) FROM outbox l WHERE l.session_id = s.id AND l.locked_until > now()),
        CASE WHEN $6::float8 IS NULL THEN $5 ELSE floor(extract(epoch FROM
            now() - GREATEST(p.next_send_at, now() - interval '1 second')) * $6::float8) END
    ) AS n
    FROM unnest($4::uuid[]) AS s(id) LEFT JOIN session_pace p ON p.session_id = s.id
), due AS (
    SELECT d.message_id, d.next_attempt_at FROM room CROSS JOIN LATERAL (
        SELECT o.message_id, o.next_attempt_at FROM outbox o
        WHERE o.session_id = room.session_id AND o.next_attempt_at <= now()
            AND (o.locked_until IS NULL OR o.locked_until <= now())
            AND (o.locked_until IS NULL OR o.locked_until > pg_postmaster_start_time()
                OR now() >= pg_postmaster_start_time() + make_interval(secs => $3))
            AND NOT EXISTS (
                SELECT 1 FROM outbox e
                WHERE e.session_id = o.session_id AND e.remote = o.remote
                    AND (e.queued_at, e.message_id) < (o.queued_at, o.message_id))
        ORDER BY o.next_attempt_at
        LIMIT GREATEST(room.n, 0)
        FOR UPDATE OF o SKIP LOCKED
    ) d
    ORDER BY d.next_attempt_at
    LIMIT $2
), claimed AS (
    UPDATE outbox o SET
        locked_by = $1,
        locked_until = now() + make_interval(secs => $3),
        next_attempt_at = now() + make_interval(secs => $3),
        attempts = o.attempts + 1
    FROM due WHERE o.message_id = due.message_id
    RETURNING o.message_id, o.attempts, o.session_id
), paced AS (
    INSERT INTO session_pace (session_id, next_send_at)
    SELECT c.session_id, now() - interval '1 second' + make_interval(secs => count(*) / $6::float8)
    FROM claimed c WHERE $6::float8 IS NOT NULL GROUP BY c.session_id
    ON CONFLICT (session_id) DO UPDATE SET next_send_at =
        GREATEST(session_pace.next_send_at, now() - interval '1 second')
        + (EXCLUDED.next_send_at - (now() - interval '1 second'))
)
SELECT c.attempts, {MESSAGE_COLUMNS}, s.workspace_id AS session_workspace_id, s.provider,
    s.settings, s.status AS session_status, s.last_error AS session_last_error,
    s.created_at AS session_created_at
FROM claimed c
JOIN messages m ON m.id = c.message_id
JOIN sessions s ON s.id = m.session_id
ORDER BY m.created_at, m.id"
    ))
});

/// Releases entries to be tried again after their own wait (`$2`:
/// seconds from now, by the database's clock, which claims go by), each
/// only while its claim (`$4`: attempt) is the entry's latest; `$5` tells
/// the attempts whose outcome is unknown (the wait is their grace).
static RETRY_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
UPDATE outbox o SET next_attempt_at = now() + make_interval(secs => i.wait),
    last_error = i.error, locked_by = NULL, locked_until = NULL,
    outcome_unknown_since = CASE WHEN i.unknown THEN now() END
FROM unnest($1::uuid[], $2::float8[], $3::text[], $4::int[], $5::bool[])
    AS i(id, wait, error, attempt, unknown)
WHERE o.message_id = i.id AND o.attempts = i.attempt",
    )
});

/// Removes entries and fails their messages (`$4`: when), each only while
/// its claim (`$5`: attempt) is the entry's latest: an outcome that arrives
/// after another dispatcher claimed or recorded the message (the lease ran
/// out) changes nothing.
static FAILED_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "\
WITH i AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $5::int[])
        AS i(id, code, message, attempt)
), dequeued AS (
    DELETE FROM outbox o USING i WHERE o.message_id = i.id AND o.attempts = i.attempt
    RETURNING o.message_id
), failed AS (
    UPDATE messages m SET status = 'failed', error_code = i.code, error_message = i.message,
        updated_at = GREATEST(m.updated_at, $4)
    FROM dequeued d JOIN i ON i.id = d.message_id
    WHERE m.id = d.message_id AND {rank} < {failed}
    RETURNING m.id, i.code, i.message
)
INSERT INTO message_status_history (message_id, status, at, error_code, error_message)
SELECT id, 'failed', $4, code, message FROM failed",
        rank = rank_sql("m.status"),
        failed = MessageStatus::Failed.rank(),
    ))
});

/// Fails the messages `$1` whose entries no process could read, each only
/// while its claim `$2` is the entry's latest: the entry is removed and the
/// message `failed` with the reason `$3` and the code `$4`, whatever status
/// it holds (one this version cannot read, perhaps).
static DEAD_LETTER_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
WITH i AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[]) AS i(id, attempt, message)
), dequeued AS (
    DELETE FROM outbox o USING i WHERE o.message_id = i.id AND o.attempts = i.attempt
    RETURNING o.message_id
), failed AS (
    UPDATE messages m SET status = 'failed', error_code = $4, error_message = i.message,
        updated_at = GREATEST(m.updated_at, now())
    FROM dequeued d JOIN i ON i.id = d.message_id
    WHERE m.id = d.message_id
    RETURNING m.id, i.message
)
INSERT INTO message_status_history (message_id, status, at, error_code, error_message)
SELECT id, 'failed', now(), $4, message FROM failed",
    )
});

/// The outcomes of one `record` call, by kind, as bindable columns.
#[derive(Debug, Default)]
struct Outcomes {
    sent_ids: Vec<Uuid>,
    sent_provider_ids: Vec<String>,
    retry_ids: Vec<Uuid>,
    retry_waits: Vec<f64>,
    retry_errors: Vec<String>,
    retry_attempts: Vec<i32>,
    retry_unknown: Vec<bool>,
    failed_ids: Vec<Uuid>,
    failed_codes: Vec<Option<String>>,
    failed_messages: Vec<String>,
    failed_attempts: Vec<i32>,
}

impl Outcomes {
    /// The outcomes, which came at `at` (see [`Outbox::record`]).
    fn new(results: &[(Claim, DispatchOutcome)], at: DateTime<Utc>) -> Self {
        let mut o = Self::default();
        for (claim, outcome) in results {
            let id = claim.message.as_uuid();
            // Attempts are counted in an int column; one past it matches no claim.
            let attempt = i32::try_from(claim.attempt).unwrap_or(-1);
            match outcome {
                DispatchOutcome::Sent {
                    provider_message_id,
                } => {
                    o.sent_ids.push(id);
                    o.sent_provider_ids.push(provider_message_id.clone());
                }
                DispatchOutcome::Retry {
                    at: retry_at,
                    error,
                } => o.push_retry(id, *retry_at - at, error, attempt, false),
                DispatchOutcome::Unknown { retry_at, error } => {
                    o.push_retry(id, *retry_at - at, error, attempt, true);
                }
                DispatchOutcome::Failed(e) => {
                    o.failed_ids.push(id);
                    o.failed_codes.push(e.code.clone());
                    o.failed_messages.push(e.message.clone());
                    o.failed_attempts.push(attempt);
                }
            }
        }
        o
    }

    fn push_retry(
        &mut self,
        id: Uuid,
        wait: chrono::Duration,
        error: &str,
        attempt: i32,
        unknown: bool,
    ) {
        self.retry_ids.push(id);
        // Microseconds: exact in a float8 for any wait of up to about 285
        // years.
        let wait = wait.num_microseconds().unwrap_or(i64::MAX);
        self.retry_waits.push(wait.max(0) as f64 / 1e6);
        self.retry_errors.push(error.to_owned());
        self.retry_attempts.push(attempt);
        self.retry_unknown.push(unknown);
    }

    /// Whether recording takes more than one statement, so needs an
    /// explicit transaction.
    fn needs_transaction(&self) -> bool {
        let kinds = [&self.retry_ids, &self.failed_ids]
            .iter()
            .filter(|ids| !ids.is_empty())
            .count();
        !self.sent_ids.is_empty() || kinds > 1
    }

    fn write(self, conn: &mut PgConnection, at: DateTime<Utc>) -> Result<(), StorageError> {
        if !self.retry_ids.is_empty() {
            RETRY_SQL
                .query()
                .bind::<Array<SqlUuid>, _>(self.retry_ids)
                .bind::<Array<Double>, _>(self.retry_waits)
                .bind::<Array<Text>, _>(self.retry_errors)
                .bind::<Array<Integer>, _>(self.retry_attempts)
                .bind::<Array<diesel::sql_types::Bool>, _>(self.retry_unknown)
                .execute(conn)?;
        }
        if !self.failed_ids.is_empty() {
            FAILED_SQL
                .query()
                .bind::<Array<SqlUuid>, _>(self.failed_ids)
                .bind::<Array<Nullable<Text>>, _>(self.failed_codes)
                .bind::<Array<Text>, _>(self.failed_messages)
                .bind::<Timestamptz, _>(at)
                .bind::<Array<Integer>, _>(self.failed_attempts)
                .execute(conn)?;
        }
        if !self.sent_ids.is_empty() {
            record_sent(conn, self.sent_ids, self.sent_provider_ids, at)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        pace: &SessionPace,
    ) -> Result<Vec<OutboxJob>, RepositoryError> {
        if limit == 0 || pace.concurrency == 0 {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        let cap = i64::from(pace.concurrency);
        // A rate that is not a positive number is no rate.
        let rate = pace.rate_per_sec.filter(|r| r.is_finite() && *r > 0.0);
        let rows: Vec<ClaimRow> = self
            .db
            .run(move |conn| {
                // Planned at each claim, unlike the record: a generic plan,
                // not knowing how few entries `LIMIT $n` takes, merge-joins
                // the claimed entries with the whole outbox (8-18 ms a claim
                // with 30,000 queued, against 0.3).
                conn.transaction::<_, StorageError, _>(|conn| {
                    let sessions: Vec<IdRow> = LOCK_SESSIONS_SQL
                        .query()
                        .bind::<Text, _>(&worker)
                        .load(conn)?;
                    if sessions.is_empty() {
                        return Ok(Vec::new());
                    }
                    Ok(CLAIM_SQL
                        .query()
                        .bind::<Text, _>(worker)
                        .bind::<diesel::sql_types::BigInt, _>(i64::from(limit))
                        .bind::<Double, _>(lease.as_secs_f64())
                        .bind::<Array<SqlUuid>, _>(
                            sessions.into_iter().map(|r| r.id).collect::<Vec<_>>(),
                        )
                        .bind::<diesel::sql_types::BigInt, _>(cap)
                        .bind::<Nullable<Double>, _>(rate)
                        .load(conn)?)
                })
            })
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        let mut dead: (Vec<Uuid>, Vec<i32>, Vec<String>) = Default::default();
        for row in rows {
            let id = row.message.id;
            let attempts = row.attempts;
            match row.into_job(self.secrets.as_ref()) {
                Ok(job) => jobs.push(job),
                // One entry this version cannot read (a row written by a
                // newer version mid rolling deploy, or edited by hand) must
                // not hold up the rest of the batch. It stays claimed until
                // its lease ends, so this process does not spin on it, and
                // another process (a newer version) may take it then; after
                // a few claims no process could, and it is failed with the
                // reason rather than claimed forever. Nothing was sent.
                Err(e) => {
                    tracing::error!(message_id = %id, attempts, error = %e, "outbox entry cannot be read; skipped until its lease ends");
                    if attempts >= UNREADABLE_CLAIMS {
                        dead.0.push(id);
                        dead.1.push(attempts);
                        dead.2.push(format!(
                            "the stored message could not be read after {attempts} claims, \
                             so it was never sent: {e}"
                        ));
                    }
                }
            }
        }
        if !dead.0.is_empty() {
            // Best effort: an entry not failed now is claimed and tried
            // again after its lease, as before.
            let (ids, attempts, reasons) = dead;
            let failed = self
                .db
                .run(move |conn| {
                    Ok(DEAD_LETTER_SQL
                        .query()
                        .bind::<Array<SqlUuid>, _>(ids)
                        .bind::<Array<Integer>, _>(attempts)
                        .bind::<Array<Text>, _>(reasons)
                        .bind::<Text, _>(UNREADABLE_CODE)
                        .execute(conn)?)
                })
                .await;
            if let Err(e) = failed {
                tracing::error!(error = %e, "unreadable outbox entries could not be failed");
            }
        }
        Ok(jobs)
    }

    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if results.is_empty() {
            return Ok(());
        }
        let outcomes = Outcomes::new(results, at);
        self.db
            .run(move |conn| {
                if outcomes.needs_transaction() {
                    with_generic_plans(conn, |conn| outcomes.write(conn, at))
                } else {
                    // One statement is a transaction of its own: spare the
                    // BEGIN and COMMIT round trips.
                    outcomes.write(conn, at)
                }
            })
            .await?;
        Ok(())
    }
}
