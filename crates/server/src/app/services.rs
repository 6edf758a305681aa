//! The use cases wired to their adapters, as the server and the admin
//! commands use them, and what connecting needs: the database URL, the
//! secrets key, migrations once the database answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use maveraa_auth::{ApiKeyHasher, Argon2Passwords};
use maveraa_domain::SystemClock;
use maveraa_domain::ports::SessionPace;
use maveraa_domain::usecases::{
    AccountPorts, AccountService, ApiKeyService, ContactService, Dispatcher, DispatcherSettings,
    EventService, InboxService, MessagingService, RetryPolicy, SessionService, UserService,
    WebhookDispatcher, WebhookService, WorkspaceService,
};
use maveraa_storage::{
    Database, LocalPostgres, PgStore, SealReport, SecretCipher, SecretKey, StorageError,
    run_migrations, seal_sessions,
};
use maveraa_whatsapp_transport::{
    CloudApiConfig, Simulator, SimulatorConfig, Transports, build_http_client,
};
use tokio::sync::Notify;

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
    /// Webhook endpoints.
    pub webhooks: WebhookService,
    /// Dashboard accounts and their sign-ins.
    pub accounts: AccountService,
    /// Delivers the event log to the endpoints; clone it per worker.
    pub webhook_dispatcher: WebhookDispatcher,
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
    /// Where the simulator reports (it holds it weakly: the inbox holds
    /// the simulator).
    pub simulator_sink: Arc<InboxService>,
    /// Runs WhatsApp Web sessions, unless `whatsapp_web.engine` is off.
    pub links: Option<crate::app::links::LinkSupervisor>,
    /// The simulated WhatsApp Web, when it is the engine (tests reach its
    /// connections through it).
    pub link_simulator: Option<Arc<maveraa_whatsapp_transport::LinkSimulator>>,
    /// The fake of the engine's client, when `whatsapp_web.engine` is
    /// `whatsapp-rust-fake` (tests drive it).
    pub fake_whatsapp: Option<Arc<maveraa_whatsapp_transport::FakeWhatsApp>>,
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
    for (id, why) in &report.unreadable {
        tracing::error!(%id, %why, "a session's credentials or a webhook endpoint's secret cannot be opened");
    }
    if strict && !report.unreadable.is_empty() {
        anyhow::bail!(
            "{} session(s) or webhook endpoint(s) have secrets the configured secrets keys cannot open \
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
        let live_links = transports.links().clone();
        let inbox = InboxService::new(
            store.clone(),
            store.clone(),
            transports.clone(),
            clock.clone(),
        );
        // The simulator reports delivery and read into the same sink as
        // every provider; the inbox holds the simulator (through the
        // transports), so the services own the sink.
        let simulator_sink = Arc::new(inbox.clone());
        let sink: Arc<dyn maveraa_domain::ports::ProviderEventSink> = simulator_sink.clone();
        simulator.set_sink_held_elsewhere(&sink);
        let outbox_bell = Arc::new(Notify::new());
        let bell = outbox_bell.clone();
        let d = &settings.dispatcher;
        // One name per server: its dispatcher claims with it, and it holds
        // linked sessions under it (only their holder sends for them).
        let server_name = format!("{}-{}", hostname(), std::process::id());
        let dispatcher = Dispatcher::new(
            store.clone(),
            transports,
            clock.clone(),
            DispatcherSettings {
                worker: server_name.clone(),
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
        let hooks = &settings.webhooks;
        let poster = maveraa_webhook_sender::HttpPoster::new(
            Duration::from_millis(hooks.timeout_ms.max(1)),
            hooks.allow_private_targets,
        )?;
        let webhook_dispatcher = WebhookDispatcher::new(
            store.clone(),
            Arc::new(poster),
            clock.clone(),
            hooks.policy(),
        );
        let web = &settings.whatsapp_web;
        let link_simulator = (web.engine == "simulator").then(|| {
            Arc::new(maveraa_whatsapp_transport::LinkSimulator::new(
                store.clone(),
                Duration::from_millis(web.simulator_qr_every_ms),
            ))
        });
        let fake_whatsapp = (web.engine == "whatsapp-rust-fake").then(|| {
            Arc::new(maveraa_whatsapp_transport::FakeWhatsApp::new(
                store.clone(),
                Duration::from_millis(web.simulator_qr_every_ms),
            ))
        });
        let media_downloads = maveraa_whatsapp_transport::MediaDownloads::new(
            Duration::from_millis(web.media_timeout_ms.max(1)),
            web.media_max_mb.saturating_mul(1_000_000),
            &settings.whatsapp.cloud_api_base_url,
            web.media_hosts.clone(),
        )
        .context("building the HTTP client for media downloads")?;
        let media_fetcher = || {
            maveraa_whatsapp_transport::MediaFetcher::new(
                Duration::from_millis(web.media_timeout_ms.max(1)),
                web.media_max_mb.saturating_mul(1_000_000),
                web.media_allow_private,
            )
            .context("building the HTTP client for media")
        };
        let engine: Option<Arc<dyn maveraa_domain::ports::LinkEngine>> = match web.engine.as_str() {
            "whatsapp-rust" => Some(Arc::new(
                maveraa_whatsapp_transport::WhatsAppWebEngine::new(store.clone())
                    .with_media(media_fetcher()?),
            )),
            "whatsapp-rust-fake" => match &fake_whatsapp {
                Some(fake) => Some(Arc::new(
                    maveraa_whatsapp_transport::WhatsAppWebEngine::over(
                        store.clone(),
                        fake.clone(),
                    )
                    .with_media(media_fetcher()?),
                )),
                None => None,
            },
            _ => link_simulator
                .clone()
                .map(|s| s as Arc<dyn maveraa_domain::ports::LinkEngine>),
        };
        let links = engine.map(|engine| crate::app::links::LinkSupervisor {
            holder: server_name,
            links: store.clone(),
            engine,
            sink: Arc::new(inbox.clone()),
            live: live_links,
            outbox_bell: outbox_bell.clone(),
            hold: Duration::from_secs(web.hold_secs.max(3)),
            poll: Duration::from_millis(web.poll_ms.max(1)),
            queued_for: (web.queued_for_hours > 0)
                .then(|| Duration::from_secs(web.queued_for_hours.saturating_mul(3600))),
            send_interval: Duration::from_millis(web.send_interval_ms),
            silent_after: crate::app::links::SILENT_START,
        });
        let mut sessions = SessionService::new(store.clone(), store.clone(), clock.clone());
        if links.is_some() {
            sessions = sessions.with_links(store.clone());
        }
        let hasher = Arc::new(Argon2Passwords::new(PASSWORD_HASHES_AT_ONCE));
        let accounts = AccountService::new(
            AccountPorts {
                users: store.clone(),
                sessions: store.clone(),
                workspaces: store.clone(),
                hasher: hasher.clone(),
                tokens: Arc::new(maveraa_auth::RandomTokens),
                clock: clock.clone(),
            },
            settings.dashboard.policy(),
        );
        Ok(Self {
            accounts,
            webhooks: WebhookService::new(
                store.clone(),
                clock.clone(),
                hooks.allow_private_targets,
            ),
            webhook_dispatcher,
            contacts: ContactService::new(store.clone(), clock.clone()),
            workspaces: WorkspaceService::new(store.clone(), clock.clone()),
            api_keys: ApiKeyService::new(store.clone(), store.clone(), codec, clock.clone()),
            events: EventService::new(store.clone()),
            users: UserService::new(store.clone(), store.clone(), hasher, clock.clone()),
            sessions,
            messaging: MessagingService::new(store.clone(), store.clone(), clock)
                .with_enqueue_hook(Arc::new(move || bell.notify_one()))
                .with_media(Arc::new(media_downloads)),
            inbox,
            dispatcher,
            outbox_bell,
            simulator,
            simulator_sink,
            links,
            link_simulator,
            fake_whatsapp,
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
