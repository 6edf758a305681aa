//! Wiring: adapters into use cases, use cases into the HTTP API.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use maveraa_auth::{ApiKeyHasher, Argon2Passwords};
use maveraa_domain::SystemClock;
use maveraa_domain::ports::SessionPace;
use maveraa_domain::usecases::{
    ApiKeyService, ContactService, Dispatcher, DispatcherSettings, EventService, InboxService,
    MessagingService, RetryPolicy, SessionService, UserService, WorkspaceService,
};
use maveraa_http_api::metrics::HttpMetrics;
use maveraa_http_api::{ApiState, HttpSettings, RateLimiter, request_context};
use maveraa_storage::{
    Database, LocalPostgres, PgStore, RevocationEvent, RevocationListener, SealReport,
    SecretCipher, SecretKey, StorageError, run_migrations, seal_sessions,
    spawn_revocation_listener,
};
use maveraa_whatsapp_transport::{
    CloudApiConfig, Simulator, SimulatorConfig, Transports, build_http_client,
};
use tokio::sync::{Notify, watch};

use crate::settings::{Secret, Settings};

/// How many passwords are hashed at once: each takes 19 MiB and a core
/// for tens of milliseconds, on a 2-core machine.
const PASSWORD_HASHES_AT_ONCE: usize = 2;

/// The use cases over PostgreSQL, as the server and the admin commands use
/// them.
#[derive(Debug, Clone)]
pub struct Services {
    /// The store under everything.
    pub store: Arc<PgStore>,
    /// Contacts.
    pub contacts: ContactService,
    /// Workspaces.
    pub workspaces: WorkspaceService,
    /// API keys.
    pub api_keys: ApiKeyService,
    /// Dashboard users (argon2id passwords, two hashed at a time).
    pub users: UserService,
    /// The workspaces' event log.
    pub events: EventService,
    /// WhatsApp sessions.
    pub sessions: SessionService,
    /// Sending and reading messages.
    pub messaging: MessagingService,
    /// Conversations and provider events.
    pub inbox: InboxService,
    /// Sends the outbox; clone it per dispatch loop.
    pub dispatcher: Dispatcher,
    /// Rung when a message is queued, to wake an idle dispatch loop.
    pub outbox_bell: Arc<Notify>,
    /// The built-in simulator provider.
    pub simulator: Arc<Simulator>,
    /// Where the database is.
    pub database_url: Secret,
}

/// The database URL to use: the configured one, or the project-local
/// PostgreSQL, started when needed. Blocking.
///
/// # Errors
/// When the local PostgreSQL cannot be started.
pub fn database_url(settings: &Settings) -> anyhow::Result<String> {
    let configured = settings.database.url.expose().trim();
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let local = LocalPostgres {
        dir: settings.database.local.dir.clone(),
        port: settings.database.local.port,
        database: settings.database.local.database.clone(),
        ephemeral: false,
    };
    tracing::info!(dir = %local.dir.display(), port = local.port, "database.url is empty: using the project-local PostgreSQL");
    local.ensure_running().context(
        "starting the project-local PostgreSQL (set MAVERAA__DATABASE__URL to use another server)",
    )
}

/// The cipher for provider credentials. The current key is, in this
/// order: `secrets.key`, the file `secrets.key_file`, or with no
/// `database.url` (the local default) `secrets.key` in
/// `database.local.dir`, created on first use. A configured database
/// without a key is refused: a key made up beside the configuration would
/// be lost with a container, and the credentials with it. Earlier keys
/// come from `secrets.previous_keys` and `secrets.previous_key_files`.
///
/// # Errors
/// No key where one is needed, or a key or file that cannot be read.
pub fn secret_cipher(settings: &Settings) -> anyhow::Result<SecretCipher> {
    let s = &settings.secrets;
    let current = if !s.key.expose().trim().is_empty() {
        SecretKey::parse(s.key.expose()).context("secrets.key (MAVERAA__SECRETS__KEY)")?
    } else if !s.key_file.as_os_str().is_empty() {
        SecretKey::from_file(&s.key_file).context("secrets.key_file")?
    } else if settings.database.url.expose().trim().is_empty() {
        let path = settings.database.local.dir.join("secrets.key");
        let (key, created) =
            SecretKey::load_or_create(&path).context("the local default's secrets key file")?;
        if created {
            tracing::warn!(path = %path.display(), key_id = key.id(), "created the key that seals provider credentials: back it up (without it the sessions' credentials are lost)");
        }
        key
    } else {
        anyhow::bail!(
            "database.url is set but no secrets key is: provider credentials are stored \
             encrypted under a key of yours. Set MAVERAA__SECRETS__KEY (make one with \
             `maveraa secrets generate-key`) or secrets.key_file, and keep a copy apart from \
             the database's backups"
        );
    };
    let mut previous = Vec::new();
    for (i, key) in s.previous_keys.iter().enumerate() {
        if !key.expose().trim().is_empty() {
            previous.push(
                SecretKey::parse(key.expose())
                    .with_context(|| format!("secrets.previous_keys[{i}]"))?,
            );
        }
    }
    for path in s
        .previous_key_files
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
    {
        previous.push(SecretKey::from_file(path).context("secrets.previous_key_files")?);
    }
    Ok(SecretCipher::new(current, previous))
}

/// Seals what an older version stored in clear, under the migrations'
/// lock; sessions the keys cannot open are refused (`strict`: a server
/// started with the wrong key), or only logged (admin commands, so a
/// session whose key is lost can still be listed and deleted).
///
/// # Errors
/// When the database fails, or `strict` and a session cannot be read.
pub fn seal_stored_secrets(
    url: &str,
    cipher: &SecretCipher,
    strict: bool,
) -> anyhow::Result<SealReport> {
    let report = seal_sessions(url, cipher, false).context("sealing stored credentials")?;
    if report.sealed > 0 {
        tracing::info!(
            sessions = report.sealed,
            key_id = cipher.current_key_id(),
            "sealed credentials stored in clear by an earlier version"
        );
    }
    for (session, why) in &report.unreadable {
        tracing::error!(%session, %why, "a session's credentials cannot be opened");
    }
    if strict && !report.unreadable.is_empty() {
        anyhow::bail!(
            "{} session(s) have credentials the configured secrets keys cannot open \
             (current key {}; see the log for which and why): start with the key they were \
             sealed under as secrets.key or in secrets.previous_keys",
            report.unreadable.len(),
            cipher.current_key_id()
        );
    }
    Ok(report)
}

impl Services {
    /// Resolves the database and the secrets key, applies pending
    /// migrations, seals credentials stored in clear, opens the pool and
    /// wires the use cases. Blocking: call it from a blocking thread or
    /// before the runtime starts.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated, no secrets key is
    /// configured, or the keys cannot open every stored credential.
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect_checked(settings, true)
    }

    /// As [`Services::connect`], but stored credentials the keys cannot
    /// open are only logged (the admin commands).
    ///
    /// # Errors
    /// As [`Services::connect`], but for unreadable credentials.
    pub fn connect_for_admin(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect_checked(settings, false)
    }

    fn connect_checked(settings: &Settings, strict: bool) -> anyhow::Result<Self> {
        let cipher = secret_cipher(settings)?;
        let url = database_url(settings)?;
        let wait = Duration::from_secs(settings.database.startup_wait_secs);
        let applied = migrate_when_reachable(&url, wait)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
        seal_stored_secrets(&url, &cipher, strict)?;
        let db = Database::connect(&url, &settings.database.pool())
            .context("connecting to PostgreSQL")?;
        let mut store = PgStore::new(db).with_secrets(cipher);
        if settings.database.read_pool_max_size > 0 {
            let mut reads = settings.database.pool();
            reads.max_size = settings.database.read_pool_max_size;
            reads.min_idle = reads.min_idle.min(reads.max_size);
            reads.generic_plans = true;
            store = store.with_reads(
                Database::connect(&url, &reads)
                    .context("connecting the read pool to PostgreSQL")?,
            );
        }
        let store = Arc::new(store);
        let clock = Arc::new(SystemClock);
        let pepper = settings.auth.api_key_pepper.expose();
        let codec = Arc::new(ApiKeyHasher::new(Some(pepper)));

        let wa = &settings.whatsapp;
        let cloud = CloudApiConfig {
            base_url: wa.cloud_api_base_url.clone(),
            request_timeout: Duration::from_millis(wa.request_timeout_ms),
            connect_timeout: Duration::from_millis(wa.connect_timeout_ms),
        };
        let http = build_http_client(&cloud).context("building the HTTP client for providers")?;
        let simulator = Arc::new(Simulator::new(SimulatorConfig {
            delivered_after: Duration::from_millis(settings.simulator.delivered_after_ms),
            read_after: Duration::from_millis(settings.simulator.read_after_ms),
        }));
        let transports = Arc::new(Transports::new(http, &cloud.base_url, simulator.clone()));
        let inbox = InboxService::new(
            store.clone(),
            store.clone(),
            transports.clone(),
            clock.clone(),
        );
        // The simulator reports delivery and read into the same sink as
        // every provider.
        simulator.set_sink(Arc::new(inbox.clone()));
        let outbox_bell = Arc::new(Notify::new());
        let bell = outbox_bell.clone();
        let d = &settings.dispatcher;
        let dispatcher = Dispatcher::new(
            store.clone(),
            transports,
            clock.clone(),
            DispatcherSettings {
                worker: format!("{}-{}", hostname(), std::process::id()),
                batch_size: d.batch_size.max(1),
                lease: Duration::from_secs(d.lease_secs.max(1)),
                retry: RetryPolicy {
                    max_attempts: d.max_attempts.max(1),
                    base_delay: Duration::from_millis(d.backoff_base_ms),
                    max_delay: Duration::from_secs(d.backoff_max_secs),
                },
                pace: SessionPace {
                    concurrency: d.session_concurrency.max(1),
                    rate_per_sec: (d.session_rate_per_sec > 0.0).then_some(d.session_rate_per_sec),
                },
                unknown_outcome_grace: Duration::from_secs(d.unknown_outcome_grace_secs),
            },
        )
        .with_session_status(store.clone());
        Ok(Self {
            contacts: ContactService::new(store.clone(), clock.clone()),
            workspaces: WorkspaceService::new(store.clone(), clock.clone()),
            api_keys: ApiKeyService::new(store.clone(), store.clone(), codec, clock.clone()),
            events: EventService::new(store.clone()),
            users: UserService::new(
                store.clone(),
                store.clone(),
                Arc::new(Argon2Passwords::new(PASSWORD_HASHES_AT_ONCE)),
                clock.clone(),
            ),
            sessions: SessionService::new(store.clone(), store.clone(), clock.clone()),
            messaging: MessagingService::new(store.clone(), store.clone(), clock)
                .with_enqueue_hook(Arc::new(move || bell.notify_one())),
            inbox,
            dispatcher,
            outbox_bell,
            simulator,
            store,
            database_url: url.into(),
        })
    }
}

/// Applies pending migrations, first waiting up to `wait` for PostgreSQL
/// to accept connections: a server started with (or before) its database,
/// or while it restarts, comes up by itself instead of exiting into a
/// restart loop. Only a refused connection is waited for; any other error
/// stops the start at once. Blocking.
fn migrate_when_reachable(url: &str, wait: Duration) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match run_migrations(url) {
            Ok(applied) => return Ok(applied),
            Err(StorageError::Connection(e)) if started.elapsed() < wait => {
                let left = wait.saturating_sub(started.elapsed());
                let pause = delay.min(left);
                // The error names host and port, never the password; libpq
                // writes it on several lines, a log line is one.
                let error = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::warn!(
                    %error,
                    retry_in_ms = pause.as_millis() as u64,
                    gives_up_in_secs = left.as_secs(),
                    "waiting for PostgreSQL (database.url) to accept connections"
                );
                std::thread::sleep(pause);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(StorageError::Connection(e)) => {
                return Err(anyhow::anyhow!(e)).with_context(|| {
                    format!(
                        "PostgreSQL did not accept connections within database.startup_wait_secs ({} s)",
                        wait.as_secs()
                    )
                });
            }
            Err(e) => return Err(e).context("applying database migrations"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "maveraa".into())
}

/// SIGINT (Ctrl-C) and SIGTERM, both of which stop the server gracefully.
/// Installed before the port takes connections, so a signal that comes
/// with the first requests still stops it gracefully.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Takes SIGINT and SIGTERM over from their default (ending the
    /// process at once) from now on.
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either, and names it.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Runs one dispatch loop until `stop` turns true; the batch in flight is
/// finished first, so no claimed message is abandoned mid-send.
async fn dispatch_loop(
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
async fn record_key_uses(keys: ApiKeyService, every: Duration, mut stop: watch::Receiver<bool>) {
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
/// round was full), and deletes those older than `retention` once an hour,
/// until `stop` turns true. Every server runs it; one places at a time.
async fn keep_event_log(
    events: EventService,
    every: Duration,
    retention: chrono::TimeDelta,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_prune: Option<Instant> = None;
    loop {
        match events.sequence(SEQUENCE_BATCH).await {
            Ok(n) if n as u64 >= u64::from(SEQUENCE_BATCH) => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not place events in the log; trying again"),
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(Instant::now());
            if let Err(e) = events.prune(chrono::Utc::now() - retention).await {
                tracing::warn!(error = %e, "could not delete old events; trying again in an hour");
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

/// Stops a running [`Application`] as SIGTERM would: requests in flight
/// are answered and each dispatch loop finishes its batch. For embedders
/// and tests, which cannot signal their own process.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<Notify>);

impl StopHandle {
    /// Asks the application to stop; effective even before it runs.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// A bound, not yet running HTTP server, and its dispatch loops.
pub struct Application {
    port: u16,
    server: Server,
    signals: StopSignals,
    stop: Arc<Notify>,
    /// Stopped and joined when the application ends.
    _revocations: RevocationListener,
    services: Services,
    dispatch_workers: usize,
    idle_poll: Duration,
    record_uses_every: Duration,
    /// `/metrics` on its own address, and its port, unless turned off.
    metrics: Option<(Server, u16)>,
    event_sequence_every: Duration,
    event_retention: chrono::TimeDelta,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects (see [`Services::connect`]) and binds the listener; port 0
    /// picks a free port, which [`Application::port`] tells.
    ///
    /// # Errors
    /// When the database cannot be used or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let s = settings.clone();
        let services = tokio::task::spawn_blocking(move || Services::connect(&s))
            .await
            .context("start-up task")??;
        Self::with_services(&settings, services)
    }

    /// Binds the HTTP server over already connected services.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn with_services(settings: &Settings, services: Services) -> anyhow::Result<Self> {
        // Verified keys are remembered only while revocations can be heard.
        let keys = services.api_keys.clone();
        let revocations =
            spawn_revocation_listener(services.database_url.expose().to_owned(), move |event| {
                match event {
                    RevocationEvent::Listening => keys.enable_cache(),
                    RevocationEvent::Revoked(id) => keys.forget(id),
                    RevocationEvent::Lost => keys.disable_cache(),
                }
            })?;
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let signals = StopSignals::install().context("installing the SIGINT/SIGTERM handlers")?;
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let state = ApiState {
            contacts: services.contacts.clone(),
            api_keys: services.api_keys.clone(),
            sessions: services.sessions.clone(),
            messaging: services.messaging.clone(),
            inbox: services.inbox.clone(),
            health: services.store.clone(),
            rate_limits: Arc::new(RateLimiter::new(settings.rate_limits.limiter())),
            events: services.events.clone(),
        };
        let http = HttpSettings {
            body_limit: settings.server.body_limit_bytes,
            webhook_body_limit: settings.server.webhook_body_limit_bytes,
            body_timeout: Duration::from_secs(settings.server.body_timeout_secs),
        };
        let http_metrics = web::Data::new(HttpMetrics::default());
        let metrics = match settings.metrics.address.trim() {
            "" => None,
            address => Some(crate::metrics::server(
                address,
                http_metrics.clone(),
                services.dispatcher.clone(),
                services.store.clone(),
            )?),
        };
        let mut server = HttpServer::new(move || {
            let state = state.clone();
            App::new()
                .app_data(http_metrics.clone())
                // gzip/br for clients that ask (a 10,000-contact list shrinks ~10x).
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .configure(|cfg| maveraa_http_api::configure(cfg, state, http))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(10))
        // Ours (see `run_until_stopped`): actix stops at once on SIGINT,
        // dropping the answers of requests it has already carried out.
        .disable_signals();
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            signals,
            stop: Arc::new(Notify::new()),
            _revocations: revocations,
            services,
            dispatch_workers: settings.dispatcher.workers,
            idle_poll: Duration::from_millis(settings.dispatcher.idle_poll_ms.max(1)),
            record_uses_every: Duration::from_secs(settings.auth.record_uses_secs.max(1)),
            metrics,
            event_sequence_every: Duration::from_millis(settings.events.sequence_every_ms.max(1)),
            event_retention: chrono::TimeDelta::days(i64::from(
                settings.events.retention_days.max(1),
            )),
        })
    }

    /// The port `/metrics` is served on, unless `metrics.address` is empty.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The wired use cases.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// A handle that stops the application gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Serves and dispatches until SIGINT/SIGTERM or its [`StopHandle`];
    /// then drains in-flight
    /// requests, lets each dispatch loop finish its batch and records the
    /// API keys' last uses.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let loops: Vec<_> = (0..self.dispatch_workers)
            .map(|_| {
                tokio::spawn(dispatch_loop(
                    self.services.dispatcher.clone(),
                    self.services.outbox_bell.clone(),
                    self.idle_poll,
                    stop_rx.clone(),
                ))
            })
            .collect();
        let event_log = tokio::spawn(keep_event_log(
            self.services.events.clone(),
            self.event_sequence_every,
            self.event_retention,
            stop_rx.clone(),
        ));
        let uses = tokio::spawn(record_key_uses(
            self.services.api_keys.clone(),
            self.record_uses_every,
            stop_rx.clone(),
        ));
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let handle = self.server.handle();
        let stop = self.stop.clone();
        let signals = tokio::spawn(async move {
            let signal = tokio::select! {
                signal = self.signals.recv() => signal,
                () = stop.notified() => "a stop request",
            };
            tracing::info!(signal, "stopping: finishing requests in flight");
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        let _ = uses.await;
        let _ = event_log.await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut s = Settings::defaults().expect("defaults");
        s.database.url = "postgres://db.example/maveraa".to_owned().into();
        s
    }

    #[test]
    fn the_key_comes_from_the_setting_or_its_file_and_is_required_with_a_database_url() {
        let missing = secret_cipher(&settings()).expect_err("no key, no start");
        assert!(missing.to_string().contains("no secrets key"), "{missing}");

        let (key, text) = SecretKey::generate().expect("key");
        let mut from_value = settings();
        from_value.secrets.key = text.to_string().into();
        assert_eq!(
            secret_cipher(&from_value).expect("key").current_key_id(),
            key.id()
        );

        let file = std::env::temp_dir().join(format!("maveraa-key-{}", uuid::Uuid::now_v7()));
        std::fs::write(&file, format!("{}\n", text.as_str())).expect("write");
        let mut from_file = settings();
        from_file.secrets.key_file = file.clone();
        let (old, old_text) = SecretKey::generate().expect("key");
        from_file.secrets.previous_keys = vec![old_text.to_string().into()];
        let cipher = secret_cipher(&from_file);
        std::fs::remove_file(&file).expect("clean up");
        let cipher = cipher.expect("key file");
        assert_eq!(cipher.current_key_id(), key.id());
        assert!(
            format!("{cipher:?}").contains(old.id()),
            "the old key opens too"
        );

        let mut bad = settings();
        bad.secrets.key = "c2hvcnQ=".to_owned().into();
        let why = format!("{:#}", secret_cipher(&bad).expect_err("5 bytes"));
        assert!(
            why.contains("MAVERAA__SECRETS__KEY") && why.contains("5 bytes"),
            "{why}"
        );
    }
}
