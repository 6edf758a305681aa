//! Configuration: built-in defaults, `config/default.toml`,
//! `config/$MAVERAA_ENV.toml`, then `MAVERAA__SECTION__KEY` variables.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any folder.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

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
    pub dispatcher: DispatcherConfig,
    /// The simulator provider.
    pub simulator: SimulatorSettings,
    /// First-start conveniences.
    pub bootstrap: BootstrapSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
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
}

/// `[whatsapp]`
#[derive(Debug, Clone, Deserialize)]
pub struct WhatsAppSettings {
    /// Graph API base URL.
    pub cloud_api_base_url: String,
    /// Whole-request timeout, in ms.
    pub request_timeout_ms: u64,
    /// Connect timeout, in ms.
    pub connect_timeout_ms: u64,
}

/// `[dispatcher]`
#[derive(Debug, Clone, Deserialize)]
pub struct DispatcherConfig {
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
}

/// `[simulator]`
#[derive(Debug, Clone, Deserialize)]
pub struct SimulatorSettings {
    /// Delay before `delivered`, in ms.
    pub delivered_after_ms: u64,
    /// Delay before `read`, in ms.
    pub read_after_ms: u64,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
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
    /// The local server.
    pub local: LocalDatabaseSettings,
}

/// `[database.local]`
#[derive(Debug, Clone, Deserialize)]
pub struct LocalDatabaseSettings {
    /// Folder of the cluster.
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// The database to use in it.
    pub database: String,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HMAC pepper for key digests; empty means plain SHA-256.
    pub api_key_pepper: Secret,
}

/// `[bootstrap]`
#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    /// Create a default workspace and key when there is no workspace.
    pub default_workspace: bool,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
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
    /// A source could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
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
    /// [`SettingsError`] on an unreadable file or a value of the wrong type.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var_os("MAVERAA_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false));
        if let Ok(env) = std::env::var("MAVERAA_ENV")
            && !env.trim().is_empty()
        {
            builder = builder
                .add_source(File::from(dir.join(format!("{}.toml", env.trim()))).required(false));
        }
        let config = builder
            .add_source(
                Environment::with_prefix("MAVERAA")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?;
        Ok(config.try_deserialize()?)
    }
}
