//! The command line: `serve` (the default), `migrate`, and the admin
//! commands, which print one JSON line each.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use maveraa_domain::{ApiKey, ApiKeyError, ApiKeyId, Workspace, WorkspaceError, WorkspaceId};
use serde_json::json;

use crate::app::{Application, Services, database_url};
use crate::settings::Settings;
use crate::telemetry;

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
    /// Manage the project-local PostgreSQL (used when database.url is empty).
    #[command(subcommand, name = "local-db")]
    LocalDb(LocalDbCommand),
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
}

/// `maveraa local-db ...`
#[derive(Debug, Subcommand)]
pub enum LocalDbCommand {
    /// Start it (if needed) and print its URL.
    Start,
    /// Stop it.
    Stop,
}

fn workspace_json(w: &Workspace) -> serde_json::Value {
    json!({"id": w.id.to_string(), "name": w.name.as_str(), "createdAt": w.created_at.to_rfc3339()})
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    json!({
        "id": k.id.to_string(),
        "workspaceId": k.workspace_id.to_string(),
        "name": k.name,
        "prefix": k.prefix,
        "createdAt": k.created_at.to_rfc3339(),
        "revokedAt": k.revoked_at.map(|t| t.to_rfc3339()),
    })
}

fn parse_workspace(id: &str) -> anyhow::Result<WorkspaceId> {
    id.parse()
        .with_context(|| format!("{id:?} is not a workspace id"))
}

fn workspace_failure(err: WorkspaceError) -> anyhow::Error {
    anyhow::anyhow!(err)
}

fn key_failure(err: ApiKeyError, workspace: Option<&str>) -> anyhow::Error {
    match (err, workspace) {
        (ApiKeyError::WorkspaceNotFound, Some(w)) => anyhow::anyhow!("no workspace with id {w}"),
        (err, _) => anyhow::anyhow!(err),
    }
}

/// Runs a command to completion.
///
/// # Errors
/// Whatever stops the command: configuration, database, bad arguments.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => {
            let url = database_url(&settings)?;
            let applied = maveraa_storage::run_migrations(&url)?;
            println!("{}", json!({"applied": applied}));
            Ok(())
        }
        Command::LocalDb(cmd) => {
            let local = maveraa_storage::LocalPostgres {
                dir: settings.database.local.dir.clone(),
                port: settings.database.local.port,
                database: settings.database.local.database.clone(),
                ephemeral: false,
            };
            match cmd {
                LocalDbCommand::Start => println!("{}", json!({"url": local.ensure_running()?})),
                LocalDbCommand::Stop => {
                    local.stop()?;
                    println!("{}", json!({"stopped": true}));
                }
            }
            Ok(())
        }
        Command::Workspace(cmd) => admin(&settings, |services| async move {
            match cmd {
                WorkspaceCommand::Create { name } => {
                    let w = services
                        .workspaces
                        .create(&name)
                        .await
                        .map_err(workspace_failure)?;
                    println!(
                        "{}",
                        json!({"id": w.id.to_string(), "name": w.name.as_str()})
                    );
                }
                WorkspaceCommand::List => {
                    for w in services
                        .workspaces
                        .list()
                        .await
                        .map_err(workspace_failure)?
                    {
                        println!("{}", workspace_json(&w));
                    }
                }
            }
            Ok(())
        }),
        Command::ApiKey(cmd) => admin(&settings, |services| async move {
            match cmd {
                ApiKeyCommand::Create { workspace, name } => {
                    let ws = parse_workspace(&workspace)?;
                    let (key, secret) = services
                        .api_keys
                        .create(ws, name.as_deref())
                        .await
                        .map_err(|e| key_failure(e, Some(&workspace)))?;
                    println!(
                        "{}",
                        json!({"id": key.id.to_string(), "key": secret.expose()})
                    );
                }
                ApiKeyCommand::List { workspace } => {
                    let ws = parse_workspace(&workspace)?;
                    let keys = services
                        .api_keys
                        .list(ws)
                        .await
                        .map_err(|e| key_failure(e, Some(&workspace)))?;
                    for k in keys {
                        println!("{}", key_json(&k));
                    }
                }
                ApiKeyCommand::Revoke { id } => {
                    let key_id: ApiKeyId = id
                        .parse()
                        .with_context(|| format!("{id:?} is not an API key id"))?;
                    match services.api_keys.revoke(key_id).await {
                        Ok(k) => {
                            // Running servers hear the revocation through a
                            // PostgreSQL notification within milliseconds;
                            // give them that long before reporting success.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            println!("{}", key_json(&k));
                        }
                        Err(ApiKeyError::NotFound) => bail!("no API key with id {id}"),
                        Err(e) => return Err(key_failure(e, None)),
                    }
                }
            }
            Ok(())
        }),
    }
}

/// Connects, then runs one async admin action on a small runtime.
fn admin<F, Fut>(settings: &Settings, action: F) -> anyhow::Result<()>
where
    F: FnOnce(Services) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut quiet = settings.clone();
    quiet.database.pool_min_idle = 0;
    quiet.database.pool_max_size = 2;
    let services = Services::connect(&quiet)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(action(services))
}

/// On a start with no workspace, creates "Default" and prints a key for it.
async fn bootstrap(services: &Services, port: u16, host: &str) -> anyhow::Result<()> {
    if !services
        .workspaces
        .list()
        .await
        .map_err(workspace_failure)?
        .is_empty()
    {
        return Ok(());
    }
    let workspace = services
        .workspaces
        .create("Default")
        .await
        .map_err(workspace_failure)?;
    let (_, secret) = services
        .api_keys
        .create(workspace.id, Some("bootstrap"))
        .await
        .map_err(|e| key_failure(e, None))?;
    let key = secret.expose();
    println!(
        "\nFirst start: created the workspace \"Default\" ({id}) and an API key for it.\n\
         This key is shown once; keep it safe:\n\n    {key}\n\n\
         Try it:\n    curl -H \"X-API-Key: {key}\" http://{host}:{port}/api/public/contacts\n",
        id = workspace.id
    );
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let port = app.port();
        if settings.bootstrap.default_workspace {
            bootstrap(app.services(), port, &settings.server.host).await?;
        }
        tracing::info!(host = %settings.server.host, port, "maveraa is serving");
        app.run_until_stopped().await?;
        tracing::info!("maveraa stopped");
        Ok(())
    })
}
