//! The server's background loops: dispatching the outbox, recording API
//! keys' uses, keeping the event log in order and in bounds. Each stops
//! when its `stop` watch turns true, finishing what it holds first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maveraa_domain::usecases::{ApiKeyService, Dispatcher, EventService, WebhookDispatcher};
use tokio::sync::{Notify, watch};

/// Runs one dispatch loop until `stop` turns true; the batch in flight is
/// finished first, so no claimed message is abandoned mid-send.
pub(super) async fn dispatch_loop(
    dispatcher: Dispatcher,
    bell: Arc<Notify>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            // Outcomes storage could not take yet: one last try, since a
            // `sent` lost here would be sent again after its lease.
            if let Err(e) = dispatcher.record_unrecorded().await {
                tracing::error!(error = %e, "dispatcher: stopping with outcomes not recorded; \
                    their messages are claimed again after the lease");
            }
            return;
        }
        match dispatcher.run_once().await {
            Ok(0) => {
                tokio::select! {
                    _ = bell.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher: outbox unavailable; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Records the API keys' uses every `every` until `stop` turns true, and
/// once more then, so a graceful stop loses none.
pub(super) async fn record_key_uses(
    keys: ApiKeyService,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = keys.record_uses().await {
            tracing::warn!(error = %e, "could not record API key uses; kept for the next try");
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// Events placed per sequencing round.
const SEQUENCE_BATCH: u32 = 5000;

/// Places committed events in the log every `every` (at once again when a
/// round was full) and turns them into webhook deliveries, ringing `bell`
/// when there are some; deletes events and finished deliveries older than
/// `retention` once an hour; until `stop` turns true. Every server runs it;
/// one places (and one fans out) at a time.
pub(super) async fn keep_event_log(
    events: EventService,
    webhooks: WebhookDispatcher,
    bell: Arc<Notify>,
    every: Duration,
    retention: chrono::TimeDelta,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_prune: Option<Instant> = None;
    loop {
        let full = match events.sequence(SEQUENCE_BATCH).await {
            Ok(n) => n as u64 >= u64::from(SEQUENCE_BATCH),
            Err(e) => {
                tracing::warn!(error = %e, "could not place events in the log; trying again");
                false
            }
        };
        // Until the fan-out has caught up with what is placed.
        loop {
            match webhooks.fan_out(SEQUENCE_BATCH).await {
                Ok(0) => break,
                Ok(n) => {
                    bell.notify_waiters();
                    if (n as u64) < u64::from(SEQUENCE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not fan events out to webhooks; trying again");
                    break;
                }
            }
        }
        if full {
            continue;
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(Instant::now());
            let before = chrono::Utc::now() - retention;
            if let Err(e) = events.prune(before).await {
                tracing::warn!(error = %e, "could not delete old events; trying again in an hour");
            }
            if let Err(e) = webhooks.prune(before).await {
                tracing::warn!(error = %e, "could not delete old webhook deliveries; trying again in an hour");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Delivers webhooks until `stop` turns true: one endpoint at a time,
/// looking again at once after a round, and after `poll` (or the `bell`)
/// when nothing was due. A stop waits for the round in flight.
pub(super) async fn deliver_webhooks(
    webhooks: WebhookDispatcher,
    bell: Arc<Notify>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match webhooks.run_once().await {
            Ok(Some(counts)) => {
                crate::metrics::record_webhook_deliveries(&counts);
            }
            Ok(None) => {
                tokio::select! {
                    () = bell.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: storage unavailable; retrying in 1 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
