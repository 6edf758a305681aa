//! Wiring: adapters into use cases (`services`), use cases into the HTTP
//! API, and the background loops (`workers`) around it.

pub mod links;
mod services;
mod workers;

pub use services::{Services, database_url, seal_stored_secrets, secret_cipher};
use workers::{deliver_webhooks, dispatch_loop, keep_event_log, record_key_uses};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use maveraa_http_api::metrics::HttpMetrics;
use maveraa_http_api::{ApiState, HttpSettings, RateLimiter, request_context};
use maveraa_storage::{RevocationEvent, RevocationListener, spawn_revocation_listener};
use tokio::sync::{Notify, watch};

use crate::settings::Settings;

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
    host: String,
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
    webhook_workers: usize,
    webhook_poll: Duration,
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
            webhooks: services.webhooks.clone(),
            accounts: services.accounts.clone(),
        };
        let http = HttpSettings {
            body_limit: settings.server.body_limit_bytes,
            webhook_body_limit: settings.server.webhook_body_limit_bytes,
            body_timeout: Duration::from_secs(settings.server.body_timeout_secs),
            dashboard: maveraa_http_api::dashboard::DashboardSettings {
                secure_cookies: settings
                    .dashboard
                    .secure_cookies()
                    .map_err(anyhow::Error::msg)?,
            },
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
            host: settings.server.host.clone(),
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
            webhook_workers: settings.webhooks.workers,
            webhook_poll: Duration::from_millis(settings.webhooks.poll_ms.max(1)),
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
        announce_setup(self.services.accounts.clone(), self.host.clone(), self.port).await;
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
        let webhook_bell = Arc::new(Notify::new());
        let deliveries: Vec<_> = (0..self.webhook_workers)
            .map(|_| {
                tokio::spawn(deliver_webhooks(
                    self.services.webhook_dispatcher.clone(),
                    webhook_bell.clone(),
                    self.webhook_poll,
                    stop_rx.clone(),
                ))
            })
            .collect();
        let event_log = tokio::spawn(keep_event_log(
            self.services.events.clone(),
            self.services.webhook_dispatcher.clone(),
            webhook_bell,
            self.event_sequence_every,
            self.event_retention,
            stop_rx.clone(),
        ));
        let links = self
            .services
            .links
            .clone()
            .map(|supervisor| tokio::spawn(supervisor.run(stop_rx.clone())));
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
        for l in loops.into_iter().chain(deliveries) {
            let _ = l.await;
        }
        let _ = uses.await;
        let _ = event_log.await;
        if let Some(links) = links {
            let _ = links.await;
        }
        result
    }
}

/// While no dashboard account exists, prints a one-time link (valid for
/// an hour) that creates the first one. On standard output, not in the
/// log: the link is a credential.
async fn announce_setup(
    accounts: maveraa_domain::usecases::AccountService,
    host: String,
    port: u16,
) {
    match accounts.issue_setup_token().await {
        Ok(Some(token)) => {
            let host = match host.as_str() {
                "0.0.0.0" | "::" | "" => "localhost",
                h => h,
            };
            tracing::warn!(
                "no dashboard account exists: open the setup link printed on standard \
                 output (valid for an hour), or run `maveraa user create`"
            );
            println!(
                "Create the first dashboard account (this link works once, for an hour): \
                 http://{host}:{}/setup?token={token}",
                port
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not check for dashboard accounts"),
    }
}
