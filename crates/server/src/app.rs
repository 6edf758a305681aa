//! Wiring: adapters into use cases, use cases into the HTTP API.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer};
use anyhow::Context;
use maveraa_auth::ApiKeyHasher;
use maveraa_domain::SystemClock;
use maveraa_domain::usecases::{ApiKeyService, ContactService, WorkspaceService};
use maveraa_http_api::{ApiState, HttpSettings, request_context};
use maveraa_storage::{
    Database, LocalPostgres, PgStore, RevocationEvent, run_migrations, spawn_revocation_listener,
};

use crate::settings::{Secret, Settings};

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

impl Services {
    /// Resolves the database, applies pending migrations, opens the pool
    /// and wires the use cases. Blocking: call it from a blocking thread or
    /// before the runtime starts.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = database_url(settings)?;
        let applied = run_migrations(&url).context("applying database migrations")?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
        let db = Database::connect(&url, &settings.database.pool())
            .context("connecting to PostgreSQL")?;
        let store = Arc::new(PgStore::new(db));
        let clock = Arc::new(SystemClock);
        let pepper = settings.auth.api_key_pepper.expose();
        let codec = Arc::new(ApiKeyHasher::new(Some(pepper)));
        Ok(Self {
            contacts: ContactService::new(store.clone(), clock.clone()),
            workspaces: WorkspaceService::new(store.clone(), clock.clone()),
            api_keys: ApiKeyService::new(store.clone(), store.clone(), codec, clock),
            store,
            database_url: url.into(),
        })
    }
}

/// A bound, not yet running HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    services: Services,
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
        spawn_revocation_listener(services.database_url.expose().to_owned(), move |event| {
            match event {
                RevocationEvent::Listening => keys.enable_cache(),
                RevocationEvent::Revoked(id) => keys.forget(id),
                RevocationEvent::Lost => keys.disable_cache(),
            }
        })?;
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let state = ApiState {
            contacts: services.contacts.clone(),
            api_keys: services.api_keys.clone(),
            health: services.store.clone(),
        };
        let http = HttpSettings {
            body_limit: settings.server.body_limit_bytes,
        };
        let mut server = HttpServer::new(move || {
            let state = state.clone();
            App::new()
                // gzip/br for clients that ask (a 10,000-contact list shrinks ~10x).
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .configure(|cfg| maveraa_http_api::configure(cfg, state, http))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(10));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            services,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The wired use cases.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
