//! The command line: `serve` (the default), `migrate`, and the admin
//! commands, which print one JSON line each.

use anyhow::{Context, bail};
use chrono::SecondsFormat;
use maveraa_domain::messaging::{
    CloudApiSettings, ProviderSettings, SecretString, Session, SessionName,
};
use maveraa_domain::{
    ApiKey, ApiKeyError, ApiKeyId, Email, KeyRateLimits, Password, Role, SessionError, UserError,
    Workspace, WorkspaceError, WorkspaceId,
};
use serde_json::json;

use crate::app::{Application, Services, database_url, seal_stored_secrets, secret_cipher};
use crate::settings::Settings;
use crate::telemetry;

mod args;

pub use args::*;

/// A time as the API writes it: RFC 3339 in UTC, microseconds, `Z`.
fn wire_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn workspace_json(w: &Workspace) -> serde_json::Value {
    json!({"id": w.id.to_string(), "name": w.name.as_str(), "createdAt": wire_time(w.created_at)})
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    json!({
        "id": k.id.to_string(),
        "workspaceId": k.workspace_id.to_string(),
        "name": k.name,
        "prefix": k.prefix,
        "createdAt": wire_time(k.created_at),
        "revokedAt": k.revoked_at.map(wire_time),
        "lastUsedAt": k.last_used_at.map(wire_time),
        "rateLimits": {
            "requestsPerSec": k.rate_limits.requests_per_sec,
            "sendsPerSec": k.rate_limits.sends_per_sec,
        },
    })
}

fn session_json(s: &Session) -> serde_json::Value {
    let mut v = json!({
        "sessionId": s.name.as_str(),
        "id": s.id.to_string(),
        "workspaceId": s.workspace_id.to_string(),
        "provider": s.provider.kind().as_str(),
        "status": s.status.as_str(),
        "lastError": s.last_error,
        "webhookUrl": maveraa_http_api::webhook_path(s),
        "createdAt": wire_time(s.created_at),
    });
    if let ProviderSettings::CloudApi(c) = &s.provider {
        v["phoneNumberId"] = json!(c.phone_number_id);
    }
    if let Some(me) = &s.me {
        v["me"] = json!({"id": me.jid, "pushName": me.push_name});
    }
    v
}

fn session_failure(err: SessionError, workspace: &str, id: &str) -> anyhow::Error {
    match err {
        SessionError::WorkspaceNotFound => anyhow::anyhow!("no workspace with id {workspace}"),
        SessionError::Duplicate => anyhow::anyhow!("the workspace has a session {id:?} already"),
        SessionError::NotFound => anyhow::anyhow!("no session {id:?} in workspace {workspace}"),
        // The domain names fields as the API does; here they are flags.
        SessionError::Validation(v) => {
            let flag = match v.field.as_str() {
                "phoneNumberId" => "--phone-number-id",
                "accessToken" => "--access-token",
                "appSecret" => "--app-secret",
                "verifyToken" => "--verify-token",
                "sessionId" => "--id",
                other => other,
            };
            anyhow::anyhow!("{flag} {}", v.message)
        }
        other => anyhow::anyhow!(other),
    }
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
        Command::DevProvider { port } => crate::dev_provider::run(port),
        Command::Migrate => {
            let cipher = secret_cipher(&settings)?;
            let url = database_url(&settings)?;
            let applied = maveraa_storage::run_migrations(&url)?;
            let report = seal_stored_secrets(&url, &cipher, true)?;
            println!(
                "{}",
                json!({"applied": applied, "sealedSessions": report.sealed})
            );
            Ok(())
        }
        Command::Secrets(SecretsCommand::GenerateKey) => {
            let (key, text) = maveraa_storage::SecretKey::generate()?;
            println!("{}", json!({"key": text.as_str(), "keyId": key.id()}));
            Ok(())
        }
        Command::Secrets(SecretsCommand::Rotate) => {
            let cipher = secret_cipher(&settings)?;
            let url = database_url(&settings)?;
            maveraa_storage::run_migrations(&url)?;
            let report = maveraa_storage::seal_sessions(&url, &cipher, true)?;
            for (id, why) in &report.unreadable {
                tracing::error!(%id, %why, "a session's credentials or a webhook endpoint's secret cannot be opened");
            }
            println!(
                "{}",
                json!({
                    "keyId": cipher.current_key_id(),
                    "sealed": report.sealed,
                    "resealed": report.resealed,
                    "unreadable": report.unreadable.len(),
                })
            );
            if !report.unreadable.is_empty() {
                bail!(
                    "{} session(s) or webhook endpoint(s) could not be opened with the configured keys and still need \
                     the key they were sealed under (see the log)",
                    report.unreadable.len()
                );
            }
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
        Command::Session(cmd) => admin(&settings, |services| async move {
            match cmd {
                SessionCommand::Create {
                    workspace,
                    id,
                    provider,
                    phone_number_id,
                    access_token,
                    app_secret,
                    verify_token,
                } => {
                    let ws = parse_workspace(&workspace)?;
                    let name = SessionName::parse("--id", &id)?;
                    let settings = match provider {
                        ProviderArg::Simulator => ProviderSettings::Simulator,
                        ProviderArg::WhatsappWeb => ProviderSettings::WhatsAppWeb,
                        ProviderArg::CloudApi => {
                            let need = |v: Option<String>, flag: &str| {
                                v.filter(|v| !v.trim().is_empty())
                                    .with_context(|| format!("--provider cloud-api needs {flag}"))
                            };
                            ProviderSettings::CloudApi(CloudApiSettings {
                                phone_number_id: need(phone_number_id, "--phone-number-id")?,
                                access_token: SecretString::new(need(
                                    access_token,
                                    "--access-token",
                                )?),
                                app_secret: SecretString::new(need(app_secret, "--app-secret")?),
                                verify_token: SecretString::new(need(
                                    verify_token,
                                    "--verify-token",
                                )?),
                            })
                        }
                    };
                    let session = services
                        .sessions
                        .create(ws, name, settings)
                        .await
                        .map_err(|e| session_failure(e, &workspace, &id))?;
                    println!("{}", session_json(&session));
                }
                SessionCommand::List { workspace } => {
                    let ws = parse_workspace(&workspace)?;
                    // As `api-key list` does: an unknown id is a mistake,
                    // not a workspace without sessions.
                    services.workspaces.get(ws).await.map_err(|e| match e {
                        WorkspaceError::NotFound => {
                            anyhow::anyhow!("no workspace with id {workspace}")
                        }
                        other => anyhow::anyhow!(other),
                    })?;
                    for s in services
                        .sessions
                        .list(ws)
                        .await
                        .map_err(|e| session_failure(e, &workspace, ""))?
                    {
                        println!("{}", session_json(&s));
                    }
                }
                SessionCommand::Delete { workspace, id } => {
                    let ws = parse_workspace(&workspace)?;
                    let name = SessionName::parse("--id", &id)?;
                    services
                        .sessions
                        .delete(ws, &name)
                        .await
                        .map_err(|e| session_failure(e, &workspace, &id))?;
                    println!("{}", json!({"deleted": id}));
                }
                SessionCommand::Stop { workspace, id } => {
                    let ws = parse_workspace(&workspace)?;
                    let name = SessionName::parse("--id", &id)?;
                    let session = services
                        .sessions
                        .stop(ws, &name)
                        .await
                        .map_err(|e| session_failure(e, &workspace, &id))?;
                    println!("{}", session_json(&session));
                }
                SessionCommand::Start { workspace, id } => {
                    let ws = parse_workspace(&workspace)?;
                    let name = SessionName::parse("--id", &id)?;
                    let session = services
                        .sessions
                        .start(ws, &name)
                        .await
                        .map_err(|e| session_failure(e, &workspace, &id))?;
                    println!("{}", session_json(&session));
                }
            }
            Ok(())
        }),
        Command::User(UserCommand::Create {
            email,
            workspace,
            role,
        }) => {
            let ws = parse_workspace(&workspace)?;
            let email = Email::parse("--email", &email)
                .map_err(|e| anyhow::anyhow!("{} {}", e.field, e.message))?;
            let role = Role::parse("--role", &role)
                .map_err(|e| anyhow::anyhow!("{} {}", e.field, e.message))?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let typed = line.strip_suffix('\n').unwrap_or(&line);
            let typed = typed.strip_suffix('\r').unwrap_or(typed);
            let password = Password::parse("password", typed)
                .map_err(|e| anyhow::anyhow!("the password (standard input) {}", e.message))?;
            admin(&settings, |services| async move {
                match services.users.create(email, &password, ws, role).await {
                    Ok(user) => {
                        println!(
                            "{}",
                            json!({"id": user.id.to_string(), "email": user.email.as_str()})
                        );
                        Ok(())
                    }
                    Err(UserError::WorkspaceNotFound) => bail!("no workspace with id {workspace}"),
                    Err(UserError::Duplicate) => bail!("a user with this email exists already"),
                    Err(e) => Err(anyhow::anyhow!(e)),
                }
            })
        }
        Command::ApiKey(cmd) => admin(&settings, |services| async move {
            match cmd {
                ApiKeyCommand::Create { workspace, name } => {
                    let ws = parse_workspace(&workspace)?;
                    // A blank name is no name: the key gets the default.
                    let name = name.filter(|n| !n.trim().is_empty());
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
                ApiKeyCommand::Limits {
                    id,
                    requests_per_sec,
                    sends_per_sec,
                } => {
                    let key_id: ApiKeyId = id
                        .parse()
                        .with_context(|| format!("{id:?} is not an API key id"))?;
                    let limits = KeyRateLimits {
                        requests_per_sec,
                        sends_per_sec,
                    };
                    match services.api_keys.set_rate_limits(key_id, limits).await {
                        Ok(k) => {
                            // As for a revocation: servers hear it within
                            // milliseconds.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            println!("{}", key_json(&k));
                        }
                        Err(ApiKeyError::NotFound) => bail!("no API key with id {id}"),
                        Err(e) => return Err(key_failure(e, None)),
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
    quiet.database.read_pool_max_size = 0;
    let services = Services::connect_for_admin(&quiet)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(action(services))
}

/// On a start with no workspace, creates "Default" and, when stdout is a
/// terminal, a key for it, printed there once. Otherwise stdout is a log
/// someone keeps (`docker compose logs`, a journal) and a key printed there
/// would stay readable: no key is made, and the output says how to make one
/// (`maveraa api-key create`), on every start until the workspace has one.
async fn bootstrap(services: &Services, port: u16, host: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let workspace = match services
        .workspaces
        .create_first("Default")
        .await
        .map_err(workspace_failure)?
    {
        Some(created) => created,
        None => match unfinished_first_start(services).await? {
            Some(workspace) => workspace,
            None => return Ok(()),
        },
    };
    let id = workspace.id;
    if !std::io::stdout().is_terminal() {
        println!(
            "\nFirst start: the workspace \"Default\" ({id}) has no API key yet.\n\
             No key is printed here, since this output is not a terminal and may be kept\n\
             in logs. Create one with:\n\n    \
             maveraa api-key create --workspace {id}\n\n\
             (in a container: docker compose exec maveraa maveraa api-key create --workspace {id})\n"
        );
        tracing::info!(workspace = %id, "first start: no API key printed (stdout is not a terminal); create one with `maveraa api-key create`");
        return Ok(());
    }
    let (_, secret) = services
        .api_keys
        .create(id, Some("bootstrap"))
        .await
        .map_err(|e| key_failure(e, None))?;
    let key = secret.expose();
    println!(
        "\nFirst start: created the workspace \"Default\" ({id}) and an API key for it.\n\
         This key is shown once; keep it safe:\n\n    {key}\n\n\
         Try it:\n    curl -H \"X-API-Key: {key}\" http://{host}:{port}/api/public/contacts\n"
    );
    Ok(())
}

/// The workspace of a first start that stopped between creating the
/// workspace and its key (the two are separate steps): the only workspace,
/// named "Default", that has never had a key. Its key is made now, so a
/// newcomer is never left without one.
async fn unfinished_first_start(services: &Services) -> anyhow::Result<Option<Workspace>> {
    let mut all = services
        .workspaces
        .list()
        .await
        .map_err(workspace_failure)?;
    if all.len() != 1 || all[0].name.as_str() != "Default" {
        return Ok(None);
    }
    let workspace = all.remove(0);
    let keys = services
        .api_keys
        .list(workspace.id)
        .await
        .map_err(|e| key_failure(e, None))?;
    Ok(keys.is_empty().then_some(workspace))
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let port = app.port();
        if settings.bootstrap.default_workspace {
            bootstrap(app.services(), port, &settings.server.host).await?;
        }
        tracing::info!(host = %settings.server.host, port, "maveraa is serving");
        if let Some(metrics_port) = app.metrics_port() {
            tracing::info!(port = metrics_port, "metrics at /metrics on their own port");
        }
        app.run_until_stopped().await?;
        tracing::info!("maveraa stopped");
        Ok(())
    })
}
