//! The command line's arguments (clap), apart from what each command does.

use clap::{Parser, Subcommand};

/// Maveraa: a self-hosted WhatsApp CRM server.
#[derive(Debug, Parser)]
#[command(name = "maveraa", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the API (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Manage WhatsApp sessions (numbers).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Run a local stand-in for Meta's Cloud API that accepts every send
    /// (for load tests; stores nothing).
    #[command(name = "dev-provider")]
    DevProvider {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 18090)]
        port: u16,
    },
    /// The key that seals provider credentials in the database.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Manage the project-local PostgreSQL (used when database.url is empty).
    #[command(subcommand, name = "local-db")]
    LocalDb(LocalDbCommand),
}

/// `maveraa user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user who signs in with EMAIL; the password is read from
    /// standard input (one line), never from a flag, which would stay in
    /// the shell's history and the process list. Prints {"id", "email"}.
    Create {
        /// The sign-in address.
        #[arg(long)]
        email: String,
        /// The workspace the user joins.
        #[arg(long)]
        workspace: String,
        /// owner (manages members, keys and sessions) or member.
        #[arg(long, default_value = "owner")]
        role: String,
    },
}

/// `maveraa secrets ...`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key (base64) for secrets.key or a key file.
    #[command(name = "generate-key")]
    GenerateKey,
    /// Seal every stored credential again under the current key (values
    /// sealed under secrets.previous_keys included), so the previous keys
    /// are no longer needed; prints {"keyId", "sealed", "resealed",
    /// "unreadable"}. Fails while any credential stays unreadable.
    Rotate,
}

/// `maveraa workspace ...`
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace; prints {"id", "name"}.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List workspaces, one JSON line each.
    List,
}

/// `maveraa api-key ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Issue a key; prints {"id", "key"}. The only time the key is shown.
    Create {
        /// The workspace the key gives access to.
        #[arg(long)]
        workspace: String,
        /// A name to tell keys apart.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a workspace's keys (never the keys themselves), one JSON line each.
    List {
        /// The workspace.
        #[arg(long)]
        workspace: String,
    },
    /// Revoke a key: refused from the next request on.
    Revoke {
        /// The key's id (from `create` or `list`).
        id: String,
    },
    /// Set a key's own request rates (per second; 0 is no limit). A rate
    /// not given returns to the server's default (`rate_limits.*`).
    /// Running servers apply them from the key's next request.
    Limits {
        /// The key's id.
        id: String,
        /// Requests per second, sends aside.
        #[arg(long)]
        requests_per_sec: Option<u32>,
        /// Sends per second.
        #[arg(long)]
        sends_per_sec: Option<u32>,
    },
}

/// Providers a session can use.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderArg {
    /// The built-in simulator.
    Simulator,
    /// Meta's WhatsApp Cloud API.
    CloudApi,
    /// WhatsApp Web: a phone linked by QR code (`whatsapp_web.engine` on).
    WhatsappWeb,
}

/// `maveraa session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Connect a session; prints it, with its inbound webhook path.
    Create {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// The session's id within the workspace (the API's sessionId).
        #[arg(long)]
        id: String,
        /// Its provider.
        #[arg(long, value_enum)]
        provider: ProviderArg,
        /// Cloud API: the phone number id.
        #[arg(long, env = "MAVERAA_CLOUD_PHONE_NUMBER_ID")]
        phone_number_id: Option<String>,
        /// Cloud API: the access token (or MAVERAA_CLOUD_ACCESS_TOKEN, to keep it out of the process list).
        #[arg(long, env = "MAVERAA_CLOUD_ACCESS_TOKEN", hide_env_values = true)]
        access_token: Option<String>,
        /// Cloud API: the app secret that signs webhooks.
        #[arg(long, env = "MAVERAA_CLOUD_APP_SECRET", hide_env_values = true)]
        app_secret: Option<String>,
        /// Cloud API: the webhook verify token.
        #[arg(long, env = "MAVERAA_CLOUD_VERIFY_TOKEN", hide_env_values = true)]
        verify_token: Option<String>,
    },
    /// List a workspace's sessions, one JSON line each (never secrets).
    List {
        /// The workspace.
        #[arg(long)]
        workspace: String,
    },
    /// Delete a session with its messages and conversations.
    Delete {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// The session's id within the workspace.
        #[arg(long)]
        id: String,
    },
    /// Stop a session: its sends wait, queued, until it is started.
    Stop {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// The session's id within the workspace.
        #[arg(long)]
        id: String,
    },
    /// Start a stopped (or failed) session: its queued sends leave.
    Start {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// The session's id within the workspace.
        #[arg(long)]
        id: String,
    },
}

/// `maveraa local-db ...`
#[derive(Debug, Subcommand)]
pub enum LocalDbCommand {
    /// Start it (if needed) and print its URL.
    Start,
    /// Stop it.
    Stop,
}
