//! What every route test needs: two workspaces over a real PostgreSQL (a
//! database per test), the services as the server wires them, stand-ins
//! for the providers, and one request through a freshly built app.

use std::sync::Arc;

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use chrono::Utc;
use maveraa_auth::ApiKeyHasher;
use maveraa_domain::api_key::{ApiKey, ApiKeyHash};
use maveraa_domain::messaging::{
    CloudApiSettings, InboundMessage, MessageContent, ProviderEvent, ProviderSettings,
    SecretString, Session, WaId,
};
use maveraa_domain::ports::{
    AccountEvents, ApiKeyCodec, ApiKeyRepository, SessionRepository, TransportFactory,
    WebhookProtocol, WebhookRefusal, WebhookRequest, WorkspaceRepository,
};
use maveraa_domain::transport::{OutboundMessage, TransportError, WhatsAppTransport};
use maveraa_domain::usecases::{
    ApiKeyService, ContactService, InboxService, MessagingService, SessionService,
};
use maveraa_domain::{ApiKeyId, SystemClock, Workspace, WorkspaceId, WorkspaceName};
use maveraa_http_api::{ApiState, HttpSettings, configure};
use maveraa_storage::testing::{TestDatabase, new_session};
use maveraa_storage::{Database, PgStore, PoolSettings};
use serde_json::Value;

// Keys of the real format, hashed by the real codec.
pub(crate) const KEY_A: &str = "mvr_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const KEY_B: &str = "mvr_live_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub(crate) const APP_SECRET: &str = "app-secret-xyz";
pub(crate) const GOOD_SIGNATURE: &str = "sha256=good";

fn hash_of(key: &str) -> ApiKeyHash {
    ApiKeyHasher::new(None)
        .hash(key)
        .expect("a well-formed key")
}

/// The providers' side: a transport whose provider refuses the
/// credentials, and a webhook protocol for Cloud API sessions that trusts
/// one signature, reads any JSON object as one inbound text and answers a
/// handshake with the session's verify token.
struct Providers;

/// The simulator's side: takes read receipts, as the real one does.
struct Receipts;

#[async_trait::async_trait]
impl WhatsAppTransport for Receipts {
    async fn send(&self, _: &OutboundMessage) -> Result<String, TransportError> {
        Err(TransportError::Permanent {
            code: None,
            message: "sends are not part of these tests".into(),
        })
    }

    async fn mark_read(
        &self,
        _: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        Ok(())
    }
}

impl TransportFactory for Providers {
    fn transport_for(&self, s: &Session) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        if s.provider == ProviderSettings::Simulator {
            return Ok(Arc::new(Receipts));
        }
        Err(TransportError::Permanent {
            code: Some("190".into()),
            message: "access token expired".into(),
        })
    }

    fn webhook_protocol(&self, session: &Session) -> Option<Arc<dyn WebhookProtocol>> {
        match session.provider {
            ProviderSettings::CloudApi(_) => Some(Arc::new(Providers)),
            _ => None,
        }
    }
}

fn cloud_settings(session: &Session) -> Option<&CloudApiSettings> {
    match &session.provider {
        ProviderSettings::CloudApi(settings) => Some(settings),
        _ => None,
    }
}

impl WebhookProtocol for Providers {
    fn handshake(
        &self,
        session: &Session,
        r: &WebhookRequest<'_>,
    ) -> Result<String, WebhookRefusal> {
        let token = cloud_settings(session).map(|s| s.verify_token.expose());
        match (r.query_param("hub.mode"), r.query_param("hub.challenge")) {
            (Some("subscribe"), Some(challenge)) if r.query_param("hub.verify_token") == token => {
                Ok(challenge.to_owned())
            }
            _ => Err(WebhookRefusal::VerificationRefused),
        }
    }

    fn precheck(&self, _session: &Session, headers: &[(&str, &str)]) -> Result<(), WebhookRefusal> {
        if headers.iter().any(|(k, _)| *k == "x-hub-signature-256") {
            Ok(())
        } else {
            Err(WebhookRefusal::BadSignature)
        }
    }

    fn open(
        &self,
        session: &Session,
        r: &WebhookRequest<'_>,
    ) -> Result<Vec<AccountEvents>, WebhookRefusal> {
        let secret = cloud_settings(session).map(|s| s.app_secret.expose());
        if secret != Some(APP_SECRET) || r.header("x-hub-signature-256") != Some(GOOD_SIGNATURE) {
            return Err(WebhookRefusal::BadSignature);
        }
        if !r.body.starts_with(b"{") {
            return Err(WebhookRefusal::Malformed("expected a JSON object".into()));
        }
        Ok(vec![AccountEvents {
            account: None,
            events: vec![ProviderEvent::Message(InboundMessage {
                provider_message_id: "wamid.1".into(),
                from: WaId::from_trusted("6281234567890".into()),
                push_name: Some("John Doe".into()),
                content: MessageContent::Text { body: "hi".into() },
                timestamp: Utc::now(),
            })],
        }])
    }

    fn vouches_for(&self, _: &Session, _: &Session) -> bool {
        false
    }
}

pub(crate) struct World {
    pub(crate) state: ApiState,
    pub(crate) store: Arc<PgStore>,
    pub(crate) ws_a: WorkspaceId,
    pub(crate) simulator: Session,
    pub(crate) cloud: Session,
    // Last: the database is dropped after everything that uses it.
    pub(crate) _db: TestDatabase,
}

/// The services over `store`, as the server wires them.
pub(crate) fn state_over(store: Arc<PgStore>) -> ApiState {
    let providers = Arc::new(Providers);
    let clock = Arc::new(SystemClock);
    ApiState {
        contacts: ContactService::new(store.clone(), clock.clone()),
        api_keys: ApiKeyService::new(
            store.clone(),
            store.clone(),
            Arc::new(ApiKeyHasher::new(None)),
            clock.clone(),
        ),
        sessions: SessionService::new(store.clone(), store.clone(), clock.clone()),
        messaging: MessagingService::new(store.clone(), store.clone(), clock.clone()),
        inbox: InboxService::new(store.clone(), store.clone(), providers, clock.clone()),
        events: maveraa_domain::usecases::EventService::new(store.clone()),
        webhooks: maveraa_domain::usecases::WebhookService::new(
            store.clone(),
            clock.clone(),
            false,
        ),
        accounts: maveraa_domain::usecases::AccountService::new(
            maveraa_domain::usecases::AccountPorts {
                users: store.clone(),
                sessions: store.clone(),
                workspaces: store.clone(),
                hasher: Arc::new(maveraa_auth::Argon2Passwords::new(1)),
                tokens: Arc::new(maveraa_auth::RandomTokens),
                clock,
            },
            maveraa_domain::SessionPolicy::default(),
        ),
        health: store,
        rate_limits: Arc::default(),
    }
}

/// Two workspaces with a key each; A has a simulator and a Cloud API
/// session, B one simulator session.
pub(crate) async fn world() -> World {
    let db = TestDatabase::create();
    let store = Arc::new(
        PgStore::new(Database::connect(db.url(), &PoolSettings::default()).expect("pool"))
            .with_secrets(maveraa_storage::testing::test_cipher()),
    );
    let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
    let simulator = new_session(ws_a, "sim-1", ProviderSettings::Simulator);
    let cloud = new_session(
        ws_a,
        "cloud-1",
        ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: "1234567890".into(),
            access_token: SecretString::new("EAAsecret-token"),
            app_secret: SecretString::new(APP_SECRET),
            verify_token: SecretString::new("verify-me"),
        }),
    );
    let other = new_session(ws_b, "b-only", ProviderSettings::Simulator);
    for (ws, key) in [(ws_a, KEY_A), (ws_b, KEY_B)] {
        let workspace = Workspace {
            id: ws,
            name: WorkspaceName::from_trusted("w".into()),
            created_at: Utc::now(),
        };
        WorkspaceRepository::insert(store.as_ref(), &workspace)
            .await
            .expect("workspace");
        let record = ApiKey {
            id: ApiKeyId::new(),
            workspace_id: ws,
            name: "k".into(),
            prefix: "k".into(),
            created_at: Utc::now(),
            revoked_at: None,
            last_used_at: None,
            rate_limits: maveraa_domain::KeyRateLimits::default(),
        };
        ApiKeyRepository::insert(store.as_ref(), &record, &hash_of(key))
            .await
            .expect("key");
    }
    for s in [&simulator, &cloud, &other] {
        SessionRepository::insert(store.as_ref(), s)
            .await
            .expect("session");
    }
    World {
        state: state_over(store.clone()),
        store,
        ws_a,
        simulator,
        cloud,
        _db: db,
    }
}

/// One request through a freshly built app; the fake keeps its state
/// across calls. Answers the status, headers and the body as JSON (or as a
/// JSON string when it is not JSON).
pub(crate) async fn call_with(w: &World, settings: HttpSettings, req: TestRequest) -> Answer {
    call_state(&w.state, settings, req).await
}

/// As [`call_with`], through the services of `state`.
pub(crate) async fn call_state(
    state: &ApiState,
    settings: HttpSettings,
    req: TestRequest,
) -> Answer {
    let state = state.clone();
    let app = init_service(App::new().configure(move |cfg| configure(cfg, state, settings))).await;
    let res = call_service(&app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = read_body(res).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Answer {
        status,
        headers,
        json,
    }
}

pub(crate) async fn call(w: &World, req: TestRequest) -> Answer {
    call_with(w, HttpSettings::default(), req).await
}

#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

impl Answer {
    pub(crate) fn error(&self) -> (u16, &str, Option<&str>) {
        (
            self.status.as_u16(),
            self.json["error"]["code"].as_str().unwrap_or("<none>"),
            self.json["error"]["field"].as_str(),
        )
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn send_req(body: &Value) -> TestRequest {
    TestRequest::post()
        .uri("/api/public/inbox/send")
        .insert_header(("X-API-Key", KEY_A))
        .set_json(body)
}

pub(crate) fn get(uri: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .insert_header(("X-API-Key", KEY_A))
}

pub(crate) fn post(uri: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("X-API-Key", KEY_A))
}
