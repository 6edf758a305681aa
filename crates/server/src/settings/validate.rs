//! Checks of the settings that no single value's type can make: values
//! that must agree with each other, and limits that zero would break.

use super::{Settings, SettingsError};

/// Waits an outcome's recording may take, each up to
/// `database.acquire_timeout_ms`: for a database thread, then for a pooled
/// connection.
const RECORD_ACQUIRES: u64 = 2;
/// Statements an outcome's recording may run, each up to
/// `database.statement_timeout_ms`: the outcome, and the statuses the
/// provider reported before it (applied and then cleared).
const RECORD_STATEMENTS: u64 = 3;

impl Settings {
    /// Checks what no single value's type can.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        // A send not yet recorded when its lease ends may be claimed and
        // sent again by another process: the lease must outlast a send and
        // its recording at worst: a wait for a database thread and one for a
        // pooled connection (each up to the acquire timeout), then up to
        // three statements (the outcome, and the statuses that came before
        // it).
        let lease_ms = self.dispatcher.lease_secs.saturating_mul(1000);
        let send_ms = self.whatsapp.request_timeout_ms;
        let record_ms = self
            .database
            .acquire_timeout_ms
            .saturating_mul(RECORD_ACQUIRES)
            .saturating_add(
                self.database
                    .statement_timeout_ms
                    .saturating_mul(RECORD_STATEMENTS),
            );
        let needed_ms = send_ms
            .saturating_mul(2)
            .max(send_ms.saturating_add(record_ms));
        if lease_ms < needed_ms {
            return Err(SettingsError::Invalid(format!(
                "dispatcher.lease_secs ({}) must be at least {} s: twice \
                 whatsapp.request_timeout_ms ({send_ms} ms), and at least that timeout plus \
                 the longest recording of its outcome ({record_ms} ms: \
                 {RECORD_ACQUIRES} x database.acquire_timeout_ms and \
                 {RECORD_STATEMENTS} x database.statement_timeout_ms); \
                 a send not recorded when its lease ends could be sent again",
                self.dispatcher.lease_secs,
                needed_ms.div_ceil(1000)
            )));
        }
        let web = &self.whatsapp_web;
        if !matches!(
            web.engine.as_str(),
            "off" | "simulator" | "whatsapp-rust" | "whatsapp-rust-fake"
        ) {
            return Err(SettingsError::Invalid(format!(
                "whatsapp_web.engine must be \"off\", \"simulator\", \"whatsapp-rust\" or \"whatsapp-rust-fake\", not {:?}",
                web.engine
            )));
        }
        // A linked session's sends wait their turn inside its connection
        // (spaced send_interval_ms apart, each gap up to half again at
        // random) while their claims hold: the last of the
        // session_concurrency claimed at once waits for the others' turns,
        // then is sent and recorded like any send.
        if web.engine != "off" {
            let paced_ms = u64::from(self.dispatcher.session_concurrency)
                .saturating_mul(web.send_interval_ms)
                .saturating_mul(3)
                / 2;
            let linked_needed_ms = paced_ms.saturating_add(needed_ms);
            if lease_ms < linked_needed_ms {
                return Err(SettingsError::Invalid(format!(
                    "dispatcher.lease_secs ({}) must be at least {} s with linked sessions: \
                     dispatcher.session_concurrency ({}) sends spaced up to 1.5 x \
                     whatsapp_web.send_interval_ms ({} ms) apart wait under their claims, \
                     then {} s for the last one's send and recording; a send not recorded \
                     when its lease ends could be sent again. Lower the interval or the \
                     concurrency, or raise the lease",
                    self.dispatcher.lease_secs,
                    linked_needed_ms.div_ceil(1000),
                    self.dispatcher.session_concurrency,
                    web.send_interval_ms,
                    needed_ms.div_ceil(1000)
                )));
            }
        }
        // The holder renews every third of the hold: a renewal may take a
        // poll and a database round trip late without losing the session.
        if web.hold_secs < 3 || web.poll_ms == 0 || web.poll_ms > web.hold_secs * 1000 / 3 {
            return Err(SettingsError::Invalid(format!(
                "whatsapp_web.hold_secs ({}) must be at least 3, and whatsapp_web.poll_ms ({}) \
                 above 0 and at most a third of it",
                web.hold_secs, web.poll_ms
            )));
        }
        // A webhook claim renews its lease when it records: at least every
        // quarter lease, and after any delivery that took long. A lease
        // that runs out mid-delivery only sends that endpoint's last
        // deliveries again (at least once; receivers dedupe by event id),
        // so the lease need only outlast a delivery twice over, not the
        // slowest database as the dispatcher's must.
        let hook_lease_ms = self.webhooks.lease_secs.saturating_mul(1000);
        if hook_lease_ms < self.webhooks.timeout_ms.saturating_mul(2) {
            return Err(SettingsError::Invalid(format!(
                "webhooks.lease_secs ({}) must be at least twice webhooks.timeout_ms ({} ms): \
                 an endpoint whose lease runs out mid-delivery is taken over and its \
                 deliveries sent again",
                self.webhooks.lease_secs, self.webhooks.timeout_ms
            )));
        }
        self.dashboard
            .secure_cookies()
            .map_err(SettingsError::Invalid)?;
        let at_least_one = [
            (
                "dispatcher.batch_size",
                u64::from(self.dispatcher.batch_size),
            ),
            (
                "dispatcher.max_attempts",
                u64::from(self.dispatcher.max_attempts),
            ),
            (
                "whatsapp.request_timeout_ms",
                self.whatsapp.request_timeout_ms,
            ),
            (
                "whatsapp.connect_timeout_ms",
                self.whatsapp.connect_timeout_ms,
            ),
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
            (
                "server.webhook_body_limit_bytes",
                self.server.webhook_body_limit_bytes as u64,
            ),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
            (
                "database.pool_max_size",
                u64::from(self.database.pool_max_size),
            ),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            // 0 would be PostgreSQL's "no limit": the lease could not hold.
            (
                "database.statement_timeout_ms",
                self.database.statement_timeout_ms,
            ),
            ("auth.record_uses_secs", self.auth.record_uses_secs),
            ("dispatcher.idle_poll_ms", self.dispatcher.idle_poll_ms),
            (
                "dispatcher.session_concurrency",
                u64::from(self.dispatcher.session_concurrency),
            ),
            (
                "dispatcher.unknown_outcome_grace_secs",
                self.dispatcher.unknown_outcome_grace_secs,
            ),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(SettingsError::Invalid(format!("{key} must be at least 1")));
        }
        if !self.secrets.key.expose().trim().is_empty()
            && !self.secrets.key_file.as_os_str().is_empty()
        {
            return Err(SettingsError::Invalid(
                "secrets.key and secrets.key_file are both set: give the key one way".into(),
            ));
        }
        let rate = self.dispatcher.session_rate_per_sec;
        if !rate.is_finite() || rate < 0.0 {
            return Err(SettingsError::Invalid(format!(
                "dispatcher.session_rate_per_sec ({rate}) must be a number of messages per \
                 second, 0 for no rate"
            )));
        }
        if !matches!(
            self.log.format.to_ascii_lowercase().as_str(),
            "text" | "json"
        ) {
            return Err(SettingsError::Invalid(format!(
                "log.format is {:?}: it must be \"text\" or \"json\"",
                self.log.format
            )));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(SettingsError::Invalid(format!(
                "log.level {:?} is not a log filter (say \"info\", or \"maveraa=debug,info\"): {e}",
                self.log.level
            )));
        }
        Ok(())
    }
}
