//! Runs linked devices' connections (WhatsApp Web sessions): each session
//! on one server at a time, under a hold in PostgreSQL that the server
//! renews and another server takes over once it runs out (its server
//! died). What a connection reports is recorded (status, QR code, the
//! linked account) and its messages stored before they are acknowledged;
//! what the API asks of a session (a pairing code, a logout) is taken from
//! the database and done here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use maveraa_domain::SessionId;
use maveraa_domain::messaging::{LinkEvent, LinkUpdate, PairOutcome, Session};
use maveraa_domain::ports::{
    Link, LinkConnection, LinkEngine, LinkEventStream, ProviderEventSink, SessionLinks,
};
use maveraa_whatsapp_transport::{LiveLinks, PacedLink};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// What the supervisor works with.
#[derive(Clone)]
pub struct LinkSupervisor {
    /// This server's name in holds (its dispatcher's: only the holder
    /// claims a linked session's messages).
    pub holder: String,
    /// Link state and holds.
    pub links: Arc<dyn SessionLinks>,
    /// Opens connections.
    pub engine: Arc<dyn LinkEngine>,
    /// Stores what connections report.
    pub sink: Arc<dyn ProviderEventSink>,
    /// The connections open here, for the dispatcher.
    pub live: Arc<LiveLinks>,
    /// Rung when a session connects: its queued messages can go.
    pub outbox_bell: Arc<Notify>,
    /// How long a hold lasts unrenewed.
    pub hold: Duration,
    /// How often sessions and requests are looked for.
    pub poll: Duration,
    /// How long a message waits for its session to connect; `None`: forever.
    pub queued_for: Option<Duration>,
    /// The least time between two sends of a session (plus up to half of
    /// it at random).
    pub send_interval: Duration,
    /// How long an opened connection may say nothing before its session is
    /// shown `disconnected` (still trying): [`SILENT_START`] in the server.
    pub silent_after: Duration,
}

impl std::fmt::Debug for LinkSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSupervisor")
            .field("holder", &self.holder)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

/// A session running here.
struct Running {
    task: JoinHandle<bool>,
    stop: watch::Sender<bool>,
    since: tokio::time::Instant,
}

/// Sessions whose connection ended by itself: how many times in a row,
/// and when it may be opened again.
type Backoffs = HashMap<SessionId, (u32, tokio::time::Instant)>;

/// How long an opened connection may say nothing before its session is
/// shown `disconnected` (still trying).
pub const SILENT_START: Duration = Duration::from_secs(30);

/// How often messages waiting too long for their session are failed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Longest wait before a session whose connection ended is opened again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A connection that lasted this long starts its backoff over.
const HEALTHY: Duration = Duration::from_secs(60);

impl LinkSupervisor {
    /// Runs until `stop` turns true, then closes the connections it holds
    /// and lets their holds go, so another server takes them at once.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut running: HashMap<SessionId, Running> = HashMap::new();
        let mut backoffs = Backoffs::new();
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            self.round(&mut running, &mut backoffs).await;
            if let Some(waited) = self.queued_for
                && last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY)
            {
                last_sweep = Some(tokio::time::Instant::now());
                match self.links.fail_unsent(waited).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        messages = n,
                        "linked sessions: messages failed after waiting too long for their session to connect"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "linked sessions: cannot fail expired messages")
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => {}
            }
        }
        for (_, r) in running.drain() {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
    }

    async fn round(&self, running: &mut HashMap<SessionId, Running>, backoffs: &mut Backoffs) {
        let sessions = match self.links.runnable().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "linked sessions: storage unavailable; trying again");
                return;
            }
        };
        // Connections that ended: opened again after a backoff that grows
        // while they keep ending soon.
        let ended: Vec<SessionId> = running
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(id, _)| *id)
            .collect();
        let now = tokio::time::Instant::now();
        for id in ended {
            let Some(r) = running.remove(&id) else {
                continue;
            };
            let asked = r.task.await.unwrap_or(false);
            if asked {
                backoffs.remove(&id);
                continue;
            }
            let count = match backoffs.get(&id) {
                Some((n, _)) if now.duration_since(r.since) < HEALTHY => n + 1,
                _ => 1,
            };
            let wait = Duration::from_secs(1u64 << count.min(6)).min(MAX_BACKOFF);
            tracing::info!(session = %id, ended_in_a_row = count, wait_secs = wait.as_secs(), "linked session: connection ended; opening it again");
            backoffs.insert(id, (count, now + wait));
        }
        // Sessions stopped, logged out or deleted: their connections close.
        // Each stays listed until it has (a later round collects it), so a
        // session started again meanwhile is not opened twice.
        let wanted: std::collections::HashSet<SessionId> = sessions.iter().map(|s| s.id).collect();
        for (id, r) in running.iter() {
            if !wanted.contains(id) {
                let _ = r.stop.send(true);
            }
        }
        backoffs.retain(|id, _| wanted.contains(id));
        for session in sessions {
            if running.contains_key(&session.id)
                || backoffs.get(&session.id).is_some_and(|(_, at)| now < *at)
            {
                continue;
            }
            match self.links.hold(session.id, &self.holder, self.hold).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "linked sessions: cannot take a hold");
                    continue;
                }
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let me = self.clone();
            let id = session.id;
            let task = tokio::spawn(async move { me.run_session(session, stop_rx).await });
            running.insert(
                id,
                Running {
                    task,
                    stop: stop_tx,
                    since: now,
                },
            );
        }
    }

    /// Runs one session until its connection ends, its hold is lost or
    /// `stop`. Returns whether it ended because it was asked to.
    async fn run_session(&self, session: Session, mut stop: watch::Receiver<bool>) -> bool {
        let id = session.id;
        self.record(id, &LinkUpdate::Starting).await;
        let Link {
            connection,
            mut events,
        } = match self.engine.open(&session).await {
            Ok(link) => link,
            Err(e) => {
                self.record(id, &LinkUpdate::Disconnected(e.to_string()))
                    .await;
                let _ = self.links.release(id, &self.holder).await;
                return false;
            }
        };
        self.live.insert(
            id,
            Arc::new(PacedLink::new(connection.clone(), self.send_interval, 0.5)),
        );
        let mut renew = tokio::time::interval(self.hold / 3);
        let mut requests = tokio::time::interval(self.poll);
        // An engine that cannot reach WhatsApp may say nothing while it
        // retries: after a while the session says so rather than stay
        // `starting` (its first event replaces this).
        let silent = tokio::time::sleep(self.silent_after);
        tokio::pin!(silent);
        let mut heard = false;
        let asked = loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => {
                        heard = true;
                        if self.handle(&session, connection.as_ref(), event).await {
                            break true;
                        }
                    }
                    None => break false,
                },
                () = &mut silent, if !heard => {
                    heard = true;
                    self.record(id, &LinkUpdate::Disconnected(
                        "WhatsApp not reached yet; still trying".into(),
                    ))
                    .await;
                }
                _ = renew.tick() => {
                    match self.links.hold(id, &self.holder, self.hold).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(session = %id, "linked session: another server holds it now; closing here");
                            break true;
                        }
                        // Kept while it lasts; the next renewal tries again.
                        Err(e) => tracing::warn!(session = %id, error = %e, "linked session: cannot renew its hold"),
                    }
                }
                _ = requests.tick() => {
                    if self.serve_requests(id, connection.as_ref()).await {
                        break true;
                    }
                }
                _ = stop.changed() => break true,
            }
        };
        self.live.remove(id);
        connection.close().await;
        drain(events.as_mut()).await;
        let _ = self.links.release(id, &self.holder).await;
        asked
    }

    /// Records `event`; returns whether the session has ended (logged out).
    async fn handle(
        &self,
        session: &Session,
        connection: &dyn LinkConnection,
        event: LinkEvent,
    ) -> bool {
        let _ = connection;
        match event {
            LinkEvent::Provider { events, ack } => {
                let stored = match self.sink.deliver(session, events).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(session = %session.id, error = %e, "linked session: events not stored; WhatsApp will deliver them again");
                        false
                    }
                };
                if let Some(ack) = ack {
                    ack.send(stored);
                }
                false
            }
            other => {
                let Some(update) = LinkUpdate::from_event(&other) else {
                    return false;
                };
                self.record(session.id, &update).await;
                match update {
                    LinkUpdate::Connected(_) => {
                        self.outbox_bell.notify_one();
                        false
                    }
                    LinkUpdate::LoggedOut(_) => true,
                    _ => false,
                }
            }
        }
    }

    /// Does what the API asked; returns whether the session has ended.
    async fn serve_requests(&self, id: SessionId, connection: &dyn LinkConnection) -> bool {
        let requests = match self.links.take_requests(id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "linked session: cannot read requests");
                return false;
            }
        };
        if let Some(phone) = requests.pair_phone {
            let outcome = match connection.pair_code(&phone).await {
                Ok(code) => PairOutcome::Code(code),
                Err(e) => PairOutcome::Failed(e.to_string()),
            };
            if let Err(e) = self.links.answer_pair_code(id, &outcome).await {
                tracing::warn!(session = %id, error = %e, "linked session: pairing code not recorded");
            }
        }
        if requests.logout {
            if let Err(e) = connection.logout().await {
                tracing::warn!(session = %id, error = %e, "linked session: WhatsApp not told of the logout; its keys are deleted anyway");
            }
            self.record(
                id,
                &LinkUpdate::LoggedOut(Some("logged out by its owner".into())),
            )
            .await;
            return true;
        }
        false
    }

    async fn record(&self, id: SessionId, update: &LinkUpdate) {
        if let Err(e) = self.links.record(id, update).await {
            tracing::warn!(session = %id, error = %e, status = update.status().as_str(), "linked session: status not recorded");
        }
    }
}

/// Reads what a closed connection still reports, acknowledging nothing
/// (so WhatsApp delivers it again to whoever holds the session next).
async fn drain(events: &mut dyn LinkEventStream) {
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        while let Some(event) = events.next().await {
            if let LinkEvent::Provider { ack: Some(ack), .. } = event {
                ack.send(false);
            }
        }
    })
    .await;
}
