use std::ops::{Deref, DerefMut};
use std::process::Child;
use std::time::Duration;

use maveraa_domain::WorkspaceId;
use maveraa_server::{Application, Services, Settings, StopHandle};
use maveraa_storage::testing::{TEST_SECRETS_KEY, TestDatabase};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// A running server on its own database, with one workspace and a key.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub services: Services,
    pub workspace: WorkspaceId,
    pub key: String,
    pub db: Option<TestDatabase>,
    pub db_url: String,
    /// Where `/metrics` is served, when the settings turned it on.
    pub metrics_port: Option<u16>,
    stop: StopHandle,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A spawned `maveraa` process, killed and reaped when dropped, so a failed
/// assertion leaves nothing running.
pub struct Spawned(pub Child);

impl Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Already ended when the test stopped it itself: nothing to do.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Spawned {
    /// SIGTERM, then waits (at most 30 s) for the process to exit: a
    /// graceful stop finishes the batches in flight, so once it has exited
    /// it sends nothing more.
    pub fn stop_gracefully(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().expect("try_wait").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `maveraa` binary on `db_url`, listening on `port` with one worker,
/// its log at `warn` and its output discarded; callers add arguments and
/// variables (later ones win).
pub fn server_command(db_url: &str, port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_maveraa"));
    cmd.env("MAVERAA__DATABASE__URL", db_url)
        .env("MAVERAA__SECRETS__KEY", TEST_SECRETS_KEY)
        .env("MAVERAA__SERVER__PORT", port.to_string())
        // Tests run servers side by side: no fixed metrics port.
        .env("MAVERAA__METRICS__ADDRESS", "")
        .env("MAVERAA__RATE_LIMITS__REQUESTS_PER_SEC", "0")
        .env("MAVERAA__RATE_LIMITS__SENDS_PER_SEC", "0")
        .env("MAVERAA__SERVER__WORKERS", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Runs a `maveraa` command on `db_url` (with the tests' secrets key):
/// whether it succeeded, its stdout and its stderr.
pub fn maveraa(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maveraa"))
        .args(args)
        .env("MAVERAA__DATABASE__URL", db_url)
        .env("MAVERAA__METRICS__ADDRESS", "")
        .env("MAVERAA__SECRETS__KEY", TEST_SECRETS_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run maveraa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_ready(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {port} did not start");
}

pub fn test_settings(db_url: &str) -> Settings {
    let mut settings = Settings::defaults().expect("built-in defaults parse");
    settings.database.url = db_url.to_owned().into();
    settings.secrets.key = TEST_SECRETS_KEY.to_owned().into();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.server.shutdown_timeout_secs = 1;
    settings.bootstrap.default_workspace = false;
    settings.database.pool_min_idle = 0;
    settings.database.read_pool_max_size = 2;
    settings.database.pool_max_size = 8;
    settings.database.acquire_timeout_ms = 2000;
    // Fast feedback: the simulator reports at once, the dispatcher polls
    // often and retries quickly.
    settings.simulator.delivered_after_ms = 50;
    settings.simulator.read_after_ms = 100;
    settings.dispatcher.idle_poll_ms = 20;
    settings.dispatcher.backoff_base_ms = 50;
    settings.dispatcher.backoff_max_secs = 1;
    settings.whatsapp.cloud_api_base_url = "http://127.0.0.1:9".into();
    settings.whatsapp.request_timeout_ms = 2000;
    // Apps run side by side: no fixed metrics port.
    settings.metrics.address = String::new();
    // Tests send bursts; the rate limit tests set their own.
    settings.rate_limits.requests_per_sec = 0;
    settings.rate_limits.sends_per_sec = 0;
    // Receivers run on loopback; retries come quickly; a lost claim is
    // taken over within seconds.
    settings.webhooks.allow_private_targets = true;
    settings.webhooks.poll_ms = 20;
    settings.webhooks.retry_base_ms = 100;
    settings.webhooks.retry_max_secs = 1;
    settings.webhooks.lease_secs = 5;
    settings.webhooks.timeout_ms = 2000;
    // Linked sessions send at once.
    settings.whatsapp_web.send_interval_ms = 0;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create();
    let db_url = db.url().to_owned();
    let mut settings = test_settings(&db_url);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let metrics_port = app.metrics_port();
    let stop = app.stop_handle();
    let running = Some(tokio::spawn(app.run_until_stopped()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut test = TestApp {
        address,
        client,
        services,
        workspace: WorkspaceId::new(),
        key: String::new(),
        db: Some(db),
        db_url,
        metrics_port,
        stop,
        running,
    };
    let (workspace, key) = test.new_workspace("Acme").await;
    test.workspace = workspace;
    test.key = key;
    test
}

impl TestApp {
    /// Stops the server gracefully and waits (at most 30 s) until it has:
    /// its dispatch loops finished their batches, so nothing more reaches a
    /// provider. What a provider received by then is all it ever will.
    pub async fn stop(&mut self) {
        self.stop.stop();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(30), running)
                .await
                .expect("the server stops within 30 s")
                .expect("the server task")
                .expect("the server ran");
        }
    }

    /// Creates another workspace and a key for it.
    pub async fn new_workspace(&self, name: &str) -> (WorkspaceId, String) {
        let ws = self
            .services
            .workspaces
            .create(name)
            .await
            .expect("workspace");
        let (_, secret) = self
            .services
            .api_keys
            .create(ws.id, None)
            .await
            .expect("key");
        (ws.id, secret.expose().to_owned())
    }

    /// Connects a simulator session named `name` to this app's workspace.
    pub async fn simulator_session(&self, name: &str) {
        self.session(
            self.workspace,
            name,
            maveraa_domain::messaging::ProviderSettings::Simulator,
        )
        .await;
    }

    /// Connects a Cloud API session; returns its global id (webhook path).
    pub async fn cloud_session(&self, name: &str, app_secret: &str, verify_token: &str) -> String {
        self.cloud_session_for(name, "1234567890", app_secret, verify_token)
            .await
    }

    /// Connects a Cloud API session for the number `phone_number_id`.
    pub async fn cloud_session_for(
        &self,
        name: &str,
        phone_number_id: &str,
        app_secret: &str,
        verify_token: &str,
    ) -> String {
        use maveraa_domain::messaging::{CloudApiSettings, ProviderSettings, SecretString};
        self.session(
            self.workspace,
            name,
            ProviderSettings::CloudApi(CloudApiSettings {
                phone_number_id: phone_number_id.into(),
                access_token: SecretString::new("EAAtest-token"),
                app_secret: SecretString::new(app_secret),
                verify_token: SecretString::new(verify_token),
            }),
        )
        .await
    }

    pub async fn session(
        &self,
        workspace: WorkspaceId,
        name: &str,
        provider: maveraa_domain::messaging::ProviderSettings,
    ) -> String {
        let name = maveraa_domain::messaging::SessionName::parse("sessionId", name).expect("name");
        self.services
            .sessions
            .create(workspace, name, provider)
            .await
            .expect("session")
            .id
            .to_string()
    }

    /// `POST /api/public/inbox/send` with this app's key.
    pub async fn send(&self, body: Value) -> Response {
        self.request(Method::POST, "/api/public/inbox/send")
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Polls `GET /api/public/messages/{id}` until `done` holds (10 s at most).
    pub async fn wait_for_message(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let res = self
                .request(Method::GET, &format!("/api/public/messages/{id}"))
                .send()
                .await
                .expect("request");
            let body: Value = res.json().await.expect("json");
            if done(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "message never got there: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Reads `GET /api/public/events{query}` until it holds `n` events (10 s
    /// at most): events are placed in the log a moment after their commit.
    pub async fn events(&self, query: &str, n: usize) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let page = json_of(
                self.request(Method::GET, &format!("/api/public/events{query}"))
                    .send()
                    .await
                    .expect("feed"),
                200,
            )
            .await;
            let have = page["events"].as_array().map_or(0, Vec::len);
            if have >= n {
                return page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{have} of {n} events after 10 s: {page}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request carrying this app's key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.key, method, path)
    }

    pub fn request_as(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("X-API-Key", key)
    }

    pub async fn create_contact(&self, body: Value) -> Response {
        self.request(Method::POST, "/api/public/contacts")
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn list(&self, query: &str) -> Value {
        let res = self
            .request(Method::GET, &format!("/api/public/contacts{query}"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "list{query}");
        res.json().await.expect("json")
    }
}

/// Reads a response's JSON body, checking its status first.
pub async fn json_of(res: Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Checks an error body has the one documented shape and returns
/// (code, field).
pub async fn error_of(res: Response, status: u16) -> (String, Option<String>) {
    let body = json_of(res, status).await;
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object: {body}"));
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `error` at the top: {body}"
    );
    let code = error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {body}"))
        .to_owned();
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    (
        code,
        error
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_owned),
    )
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}
