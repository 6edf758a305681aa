//! Configuration: built-in defaults, `config/default.toml`,
//! `config/$MAVERAA_ENV.toml`, then `MAVERAA__SECTION__KEY` variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

mod dashboard;
mod events;
mod validate;

pub use dashboard::DashboardSection;
pub use events::{EventsSection, WebhooksSection, WhatsAppWebSection};

/// The defaults, compiled in so the binary runs from any folder.
const DEFAULTS: &str = include_str!("../../../../config/default.toml");

/// A value that must not be printed.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl Secret {
    /// The value; don't log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// All settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// API keys.
    pub auth: AuthSettings,
    /// WhatsApp providers.
    pub whatsapp: WhatsAppSettings,
    /// The outbox dispatcher.
    pub dispatcher: DispatcherSection,
    /// The simulator provider.
    pub simulator: SimulatorSettings,
    /// First-start conveniences.
    pub bootstrap: BootstrapSettings,
    /// The key that seals provider credentials in the database.
    pub secrets: SecretsSettings,
    /// Logging.
    pub log: LogSettings,
    /// The Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// Request rates per API key.
    pub rate_limits: RateLimitsSection,
    /// The event log.
    pub events: EventsSection,
    /// Webhook endpoints and their deliveries.
    pub webhooks: WebhooksSection,
    /// The dashboard's sign-ins.
    pub dashboard: DashboardSection,
    /// WhatsApp Web sessions (linked devices).
    pub whatsapp_web: WhatsAppWebSection,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    /// Worker threads; 0 is one per core.
    pub workers: usize,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Grace period on shutdown, in seconds.
    pub shutdown_timeout_secs: u64,
    /// Largest webhook body, in bytes.
    pub webhook_body_limit_bytes: usize,
    /// How long a request body may take to arrive, in seconds.
    pub body_timeout_secs: u64,
}

/// `[whatsapp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppSettings {
    /// Graph API base URL.
    pub cloud_api_base_url: String,
    /// Whole-request timeout, in ms.
    pub request_timeout_ms: u64,
    /// Connect timeout, in ms.
    pub connect_timeout_ms: u64,
}

/// `[dispatcher]`: the dispatch loops (workers, idle poll) and what
/// `Services::connect` turns into the domain's `DispatcherSettings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherSection {
    /// Dispatch loops; 0 disables sending.
    pub workers: usize,
    /// Claim size.
    pub batch_size: u32,
    /// Idle poll, in ms.
    pub idle_poll_ms: u64,
    /// Claim lease, in seconds.
    pub lease_secs: u64,
    /// Attempts before `failed`.
    pub max_attempts: u32,
    /// First backoff, in ms.
    pub backoff_base_ms: u64,
    /// Longest backoff, in seconds.
    pub backoff_max_secs: u64,
    /// Provider calls in flight at once per session, across all servers.
    pub session_concurrency: u32,
    /// Claims per second per session, across all servers; 0: no rate.
    pub session_rate_per_sec: f64,
    /// How long a send whose outcome is unknown waits for a status report
    /// naming it before it is sent again, in seconds.
    pub unknown_outcome_grace_secs: u64,
}

/// `[simulator]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Delay before `delivered`, in ms.
    pub delivered_after_ms: u64,
    /// Delay before `read`, in ms.
    pub read_after_ms: u64,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; empty runs the local server.
    pub url: Secret,
    /// Pool size.
    pub pool_max_size: u32,
    /// Idle connections kept.
    pub pool_min_idle: u32,
    /// Size of the read pool (generic plans); 0 disables it.
    pub read_pool_max_size: u32,
    /// Wait for a connection, in ms.
    pub acquire_timeout_ms: u64,
    /// Statement timeout, in ms.
    pub statement_timeout_ms: u64,
    /// How long a start waits for PostgreSQL to accept connections, in
    /// seconds; 0 gives up at the first refusal.
    pub startup_wait_secs: u64,
    /// The local server.
    pub local: LocalDatabaseSettings,
}

/// `[database.local]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDatabaseSettings {
    /// Folder of the cluster.
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// The database to use in it.
    pub database: String,
}

/// `[secrets]`: where the key sealing provider credentials comes from
/// (see `app::secret_cipher` for the order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    /// The current key, 32 bytes in base64 or hex; empty: `key_file`.
    pub key: Secret,
    /// A file holding the current key; empty: `key`, or the local default.
    pub key_file: PathBuf,
    /// Earlier keys, still opening values sealed under them until
    /// `maveraa secrets rotate` has run.
    pub previous_keys: Vec<Secret>,
    /// Files holding earlier keys.
    pub previous_key_files: Vec<PathBuf>,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC pepper for key digests; empty means plain SHA-256.
    pub api_key_pepper: Secret,
    /// How often the keys' last uses are written, in seconds.
    pub record_uses_secs: u64,
}

/// `[bootstrap]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    /// Create a default workspace and key when there is no workspace.
    pub default_workspace: bool,
}

/// `[rate_limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    /// Requests per second per key, sends aside; 0 is no limit.
    pub requests_per_sec: u32,
    /// Sends per second per key; 0 is no limit.
    pub sends_per_sec: u32,
    /// Seconds of its rate a key may spend at once (at least 1).
    pub burst_secs: u32,
}

impl RateLimitsSection {
    /// The limiter's settings.
    pub fn limiter(&self) -> maveraa_http_api::RateLimitSettings {
        maveraa_http_api::RateLimitSettings {
            requests_per_sec: self.requests_per_sec,
            sends_per_sec: self.sends_per_sec,
            burst_secs: self.burst_secs.max(1),
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics` is served (`host:port`), apart from the public
    /// port; empty turns it off.
    pub address: String,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Tracing filter.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl DatabaseSettings {
    /// The pool settings these describe.
    pub fn pool(&self) -> maveraa_storage::PoolSettings {
        maveraa_storage::PoolSettings {
            max_size: self.pool_max_size,
            min_idle: self.pool_min_idle,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            generic_plans: false,
        }
    }
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read, a value has the wrong type, or a key is
    /// unknown (a misspelt one would otherwise be ignored). Not a `source`:
    /// its text is already in this error's.
    #[error("configuration: {0}")]
    Config(config::ConfigError),
    /// Values that are each well-formed but do not work together.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl From<config::ConfigError> for SettingsError {
    fn from(e: config::ConfigError) -> Self {
        Self::Config(e)
    }
}

impl Settings {
    /// The built-in defaults alone, ignoring files and the environment
    /// (tests start from these).
    ///
    /// # Errors
    /// Never in practice: the defaults are compiled in and tested.
    pub fn defaults() -> Result<Self, SettingsError> {
        Ok(Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?
            .try_deserialize()?)
    }

    /// Reads the configuration from files and the environment.
    ///
    /// # Errors
    /// [`SettingsError`] on an unreadable file, a value of the wrong type or
    /// values that do not work together.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = match std::env::var_os("MAVERAA_CONFIG_DIR") {
            // Named on purpose: a folder that is not there is a mistake.
            Some(dir) if !Path::new(&dir).is_dir() => {
                return Err(SettingsError::Invalid(format!(
                    "MAVERAA_CONFIG_DIR {} is not a folder",
                    Path::new(&dir).display()
                )));
            }
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from("config"),
        };
        let env = std::env::var("MAVERAA_ENV").ok();
        if let Some(env) = env.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            let file = dir.join(format!("{env}.toml"));
            if !file.is_file() {
                // Optional by design (settings may all come from the
                // environment), but a misspelt name should not pass unseen.
                eprintln!(
                    "warning: MAVERAA_ENV is {env} but {} does not exist; using the defaults \
                     and the environment",
                    file.display()
                );
            }
        }
        Self::load_from(&dir, env.as_deref(), None)
    }

    /// Reads the built-in defaults, `dir/default.toml`, `dir/{env}.toml` and
    /// the `MAVERAA__SECTION__KEY` variables (of the process, or `vars`),
    /// each over the one before, then checks the result.
    fn load_from(
        dir: &Path,
        env: Option<&str>,
        vars: Option<config::Map<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false));
        if let Some(env) = env.map(str::trim).filter(|e| !e.is_empty()) {
            builder =
                builder.add_source(File::from(dir.join(format!("{env}.toml"))).required(false));
        }
        let settings: Self = builder
            .add_source(
                Environment::with_prefix("MAVERAA")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // Only these are lists ("a,b"); keys hold no comma.
                    .list_separator(",")
                    .with_list_parse_key("secrets.previous_keys")
                    .with_list_parse_key("secrets.previous_key_files")
                    .source(vars),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("maveraa-settings-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        dir
    }

    fn vars(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn files_then_the_environment_each_override_the_one_before() {
        let dir = dir_with(&[
            (
                "default.toml",
                "[server]\nport = 1111\nhost = \"10.0.0.1\"\n",
            ),
            ("staging.toml", "[server]\nport = 2222\n"),
        ]);
        let s = Settings::load_from(
            &dir,
            Some("staging"),
            vars(&[
                ("MAVERAA__SERVER__HOST", "0.0.0.0"),
                ("MAVERAA__DATABASE__URL", "postgres://db.example/maveraa"),
            ]),
        )
        .expect("load");
        assert_eq!(s.server.port, 2222, "staging.toml over default.toml");
        assert_eq!(s.server.host, "0.0.0.0", "the environment over both");
        assert_eq!(s.database.url.expose(), "postgres://db.example/maveraa");
        let defaults = Settings::defaults().expect("defaults");
        assert_eq!(
            s.dispatcher.lease_secs, defaults.dispatcher.lease_secs,
            "what no source sets keeps its built-in default"
        );

        let without_env = Settings::load_from(&dir, None, vars(&[])).expect("load");
        assert_eq!(
            (without_env.server.port, without_env.server.host.as_str()),
            (1111, "10.0.0.1")
        );
        let missing_env_file = Settings::load_from(&dir, Some("prod"), vars(&[])).expect("load");
        assert_eq!(missing_env_file.server.port, 1111);
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn secrets_keys_come_from_variables_and_never_print() {
        let dir = dir_with(&[]);
        let key = "bWF2ZXJhYSB0ZXN0IGtleSwgbmV2ZXIgcmVhbCEhISE=";
        let s = Settings::load_from(
            &dir,
            None,
            vars(&[
                ("MAVERAA__SECRETS__KEY", key),
                ("MAVERAA__SECRETS__PREVIOUS_KEYS", "a2V5MQ==,a2V5Mg=="),
                ("MAVERAA__SERVER__HOST", "127.0.0.1"),
            ]),
        )
        .expect("load");
        assert_eq!(s.secrets.key.expose(), key);
        let previous: Vec<&str> = s.secrets.previous_keys.iter().map(Secret::expose).collect();
        assert_eq!(previous, ["a2V5MQ==", "a2V5Mg=="], "a comma-separated list");
        assert_eq!(s.server.host, "127.0.0.1", "other values are not lists");
        let shown = format!("{s:?}");
        assert!(!shown.contains(key) && !shown.contains("a2V5MQ"), "{shown}");

        let both = Settings::load_from(
            &dir,
            None,
            vars(&[
                ("MAVERAA__SECRETS__KEY", key),
                ("MAVERAA__SECRETS__KEY_FILE", "/etc/maveraa/key"),
            ]),
        );
        assert!(
            matches!(&both, Err(SettingsError::Invalid(m)) if m.contains("both set")),
            "{both:?}"
        );
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn linked_sessions_paced_longer_than_the_lease_are_refused() {
        let dir = dir_with(&[]);
        let defaults = Settings::load_from(
            &dir,
            None,
            vars(&[("MAVERAA__WHATSAPP_WEB__ENGINE", "simulator")]),
        );
        assert!(defaults.is_ok(), "the defaults fit: {defaults:?}");
        let slow = Settings::load_from(
            &dir,
            None,
            vars(&[
                ("MAVERAA__WHATSAPP_WEB__ENGINE", "simulator"),
                ("MAVERAA__WHATSAPP_WEB__SEND_INTERVAL_MS", "5000"),
            ]),
        );
        let Err(SettingsError::Invalid(why)) = slow else {
            panic!("8 sends 7.5 s apart under a 90-s lease are refused: {slow:?}")
        };
        assert!(why.contains("whatsapp_web.send_interval_ms"), "{why}");
        // Without linked sessions, the interval does not matter.
        let off = Settings::load_from(
            &dir,
            None,
            vars(&[("MAVERAA__WHATSAPP_WEB__SEND_INTERVAL_MS", "5000")]),
        );
        assert!(off.is_ok(), "{off:?}");
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn values_of_the_wrong_type_or_that_clash_are_refused() {
        let dir = dir_with(&[]);
        let wrong_type =
            Settings::load_from(&dir, None, vars(&[("MAVERAA__SERVER__PORT", "eighty")]));
        assert!(matches!(wrong_type, Err(SettingsError::Config(_))));

        let short_lease = Settings::load_from(
            &dir,
            None,
            vars(&[
                ("MAVERAA__DISPATCHER__LEASE_SECS", "15"),
                ("MAVERAA__WHATSAPP__REQUEST_TIMEOUT_MS", "10000"),
            ]),
        );
        let Err(SettingsError::Invalid(why)) = short_lease else {
            panic!("a lease shorter than two send timeouts is refused: {short_lease:?}")
        };
        assert!(why.contains("dispatcher.lease_secs"), "{why}");
        let short_for_recording = Settings::load_from(
            &dir,
            None,
            vars(&[("MAVERAA__DISPATCHER__LEASE_SECS", "64")]),
        );
        let Err(SettingsError::Invalid(why)) = short_for_recording else {
            panic!(
                "a lease shorter than a send (10 s) and its longest recording \
                 (2 x 5 s + 3 x 15 s) is refused: {short_for_recording:?}"
            )
        };
        assert!(why.contains("at least 65 s"), "{why}");
        assert!(
            Settings::load_from(
                &dir,
                None,
                vars(&[("MAVERAA__DISPATCHER__LEASE_SECS", "65")])
            )
            .is_ok(),
            "the default timeouts' 65 s is enough"
        );
        let no_batch = Settings::load_from(
            &dir,
            None,
            vars(&[("MAVERAA__DISPATCHER__BATCH_SIZE", "0")]),
        );
        assert!(
            matches!(&no_batch, Err(SettingsError::Invalid(why)) if why.contains("batch_size")),
            "{no_batch:?}"
        );
        for (key, value, named) in [
            ("MAVERAA__DISPATCHER__MAX_ATTEMPTS", "0", "max_attempts"),
            (
                "MAVERAA__WHATSAPP__REQUEST_TIMEOUT_MS",
                "0",
                "request_timeout_ms",
            ),
            ("MAVERAA__SERVER__BODY_LIMIT_BYTES", "0", "body_limit_bytes"),
            (
                "MAVERAA__DATABASE__ACQUIRE_TIMEOUT_MS",
                "0",
                "acquire_timeout_ms",
            ),
            (
                "MAVERAA__DATABASE__STATEMENT_TIMEOUT_MS",
                "0",
                "statement_timeout_ms",
            ),
            ("MAVERAA__LOG__FORMAT", "xml", "log.format"),
            ("MAVERAA__LOG__LEVEL", "[[[", "log.level"),
            (
                "MAVERAA__DISPATCHER__SESSION_CONCURRENCY",
                "0",
                "session_concurrency",
            ),
            (
                "MAVERAA__DISPATCHER__SESSION_RATE_PER_SEC",
                "-1",
                "session_rate_per_sec",
            ),
            (
                "MAVERAA__DISPATCHER__SESSION_RATE_PER_SEC",
                "NaN",
                "session_rate_per_sec",
            ),
            (
                "MAVERAA__DISPATCHER__UNKNOWN_OUTCOME_GRACE_SECS",
                "0",
                "unknown_outcome_grace_secs",
            ),
        ] {
            let refused = Settings::load_from(&dir, None, vars(&[(key, value)]));
            assert!(
                matches!(&refused, Err(SettingsError::Invalid(why)) if why.contains(named)),
                "{key}={value}: {refused:?}"
            );
        }
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn a_misspelt_key_is_refused_not_ignored() {
        let dir = dir_with(&[("default.toml", "[server]\nprot = 9000\n")]);
        let in_file = Settings::load_from(&dir, None, vars(&[]));
        let Err(SettingsError::Config(why)) = &in_file else {
            panic!("a file's unknown key is refused: {in_file:?}")
        };
        assert!(why.to_string().contains("prot"), "{why}");
        std::fs::remove_dir_all(dir).expect("clean up");

        let dir = dir_with(&[]);
        let in_env = Settings::load_from(&dir, None, vars(&[("MAVERAA__SERVER__PROT", "9000")]));
        let Err(SettingsError::Config(why)) = &in_env else {
            panic!("a variable's unknown key is refused: {in_env:?}")
        };
        assert!(why.to_string().contains("prot"), "{why}");
        // The error's text is said once, not again as its source.
        let text = SettingsError::Config(config::ConfigError::Message("x".into()));
        assert!(std::error::Error::source(&text).is_none());
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
