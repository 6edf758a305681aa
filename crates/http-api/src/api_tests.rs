//! Route-level tests: the real handlers and use cases over a real
//! PostgreSQL (a database per test), through actix's test service (no
//! socket). Only the providers are stand-ins: a transport that refuses and
//! a webhook decoder that trusts one signature.

use std::sync::Arc;
use std::time::Duration;

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use chrono::Utc;
use maveraa_auth::ApiKeyHasher;
use maveraa_domain::api_key::{ApiKey, ApiKeyHash};
use maveraa_domain::messaging::{
    CloudApiSettings, DeliveryError, InboundMessage, Message, MessageContent, MessageStatus,
    ProviderEvent, ProviderSettings, SecretString, Session, SessionName, SessionStatus, WaId,
};
use maveraa_domain::ports::{
    ApiKeyCodec, ApiKeyRepository, DispatchOutcome, MessageRepository, Outbox, SessionRepository,
    TransportFactory, WebhookDecoder, WorkspaceRepository,
};
use maveraa_domain::transport::{TransportError, WhatsAppTransport};
use maveraa_domain::usecases::{
    ApiKeyService, ContactService, InboxService, MessagingService, SessionService,
};
use maveraa_domain::{
    ApiKeyId, MessageId, SessionId, SystemClock, Workspace, WorkspaceId, WorkspaceName,
};
use maveraa_storage::testing::TestDatabase;
use maveraa_storage::{Database, PgStore, PoolSettings};
use serde_json::{Value, json};

use crate::{ApiState, HttpSettings, configure};

// Keys of the real format, hashed by the real codec.
const KEY_A: &str = "mvr_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "mvr_live_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const APP_SECRET: &str = "app-secret-xyz";
const GOOD_SIGNATURE: &str = "sha256=good";

fn hash_of(key: &str) -> ApiKeyHash {
    ApiKeyHasher::new(None)
        .hash(key)
        .expect("a well-formed key")
}

/// The providers' side: a transport whose provider refuses the
/// credentials, and a decoder that trusts one signature and reads any JSON
/// object as one inbound text.
struct Providers;

impl TransportFactory for Providers {
    fn transport_for(&self, _: &Session) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        Err(TransportError::Permanent {
            code: Some("190".into()),
            message: "access token expired".into(),
        })
    }
}

impl WebhookDecoder for Providers {
    fn verify_signature(&self, app_secret: &str, _: &[u8], signature: Option<&str>) -> bool {
        app_secret == APP_SECRET && signature == Some(GOOD_SIGNATURE)
    }
    fn decode(&self, body: &[u8]) -> Result<Vec<ProviderEvent>, String> {
        if body.starts_with(b"{") {
            Ok(vec![ProviderEvent::Message(InboundMessage {
                provider_message_id: "wamid.1".into(),
                from: WaId::from_trusted("6281234567890".into()),
                push_name: Some("John Doe".into()),
                content: MessageContent::Text { body: "hi".into() },
                timestamp: Utc::now(),
            })])
        } else {
            Err("expected a JSON object".into())
        }
    }
}

struct World {
    state: ApiState,
    store: Arc<PgStore>,
    ws_a: WorkspaceId,
    simulator: Session,
    cloud: Session,
    // Last: the database is dropped after everything that uses it.
    _db: TestDatabase,
}

fn session(ws: WorkspaceId, name: &str, provider: ProviderSettings) -> Session {
    Session {
        id: SessionId::new(),
        workspace_id: ws,
        name: SessionName::from_trusted(name.into()),
        provider,
        status: SessionStatus::Connected,
        last_error: None,
        created_at: Utc::now(),
    }
}

/// The services over `store`, as the server wires them.
fn state_over(store: Arc<PgStore>) -> ApiState {
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
        inbox: InboxService::new(
            store.clone(),
            store.clone(),
            providers.clone(),
            providers,
            clock,
        ),
        health: store,
    }
}

/// Two workspaces with a key each; A has a simulator and a Cloud API
/// session, B one simulator session.
async fn world() -> World {
    let db = TestDatabase::create();
    let store = Arc::new(PgStore::new(
        Database::connect(db.url(), &PoolSettings::default()).expect("pool"),
    ));
    let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
    let simulator = session(ws_a, "sim-1", ProviderSettings::Simulator);
    let cloud = session(
        ws_a,
        "cloud-1",
        ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: "1234567890".into(),
            access_token: SecretString::new("EAAsecret-token"),
            app_secret: SecretString::new(APP_SECRET),
            verify_token: SecretString::new("verify-me"),
        }),
    );
    let other = session(ws_b, "b-only", ProviderSettings::Simulator);
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
async fn call_with(w: &World, settings: HttpSettings, req: TestRequest) -> Answer {
    call_state(&w.state, settings, req).await
}

/// As [`call_with`], through the services of `state`.
async fn call_state(state: &ApiState, settings: HttpSettings, req: TestRequest) -> Answer {
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

async fn call(w: &World, req: TestRequest) -> Answer {
    call_with(w, HttpSettings::default(), req).await
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn error(&self) -> (u16, &str, Option<&str>) {
        (
            self.status.as_u16(),
            self.json["error"]["code"].as_str().unwrap_or("<none>"),
            self.json["error"]["field"].as_str(),
        )
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn send_req(body: &Value) -> TestRequest {
    TestRequest::post()
        .uri("/api/public/inbox/send")
        .insert_header(("X-API-Key", KEY_A))
        .set_json(body)
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .insert_header(("X-API-Key", KEY_A))
}

fn post(uri: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("X-API-Key", KEY_A))
}

#[actix_web::test]
async fn sessions_are_listed_without_secrets() {
    let w = world().await;
    let a = call(&w, get("/api/public/sessions")).await;
    assert_eq!(a.status, StatusCode::OK);
    let sessions = a.json["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 2, "only the caller's workspace: {}", a.json);
    assert_eq!(sessions[0]["sessionId"], "sim-1");
    assert_eq!(sessions[0]["provider"], "simulator");
    assert_eq!(sessions[0]["status"], "connected");
    assert_eq!(sessions[0]["lastError"], Value::Null);
    assert_eq!(
        sessions[0]["webhookUrl"],
        Value::Null,
        "the simulator takes no webhooks"
    );
    assert!(sessions[0].get("phoneNumberId").is_none());
    assert_eq!(sessions[1]["provider"], "cloud-api");
    assert_eq!(sessions[1]["phoneNumberId"], "1234567890");
    let text = a.json.to_string();
    for secret in ["EAAsecret-token", APP_SECRET, "verify-me"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[actix_web::test]
async fn new_routes_need_a_key() {
    let w = world().await;
    for req in [
        TestRequest::get().uri("/api/public/sessions"),
        TestRequest::get().uri("/api/public/inbox/conversations"),
        TestRequest::post().uri("/api/public/inbox/send"),
    ] {
        let a = call(&w, req).await;
        assert_eq!(a.error().1, "missing_api_key");
        assert_eq!(
            a.header("WWW-Authenticate"),
            Some("Bearer realm=\"maveraa\""),
            "a 401 says how to authenticate"
        );
    }
}

#[actix_web::test]
async fn send_queues_and_answers_202() {
    let w = world().await;
    let a = call(
        &w,
        send_req(&json!({
            "sessionId": "sim-1",
            "targetNumber": "+62 898-7654-3210",
            "message": "Your OTP code is 4567"
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    assert_eq!(a.json["status"], "queued");
    assert_eq!(a.json["sessionId"], "sim-1");
    assert_eq!(a.json["remoteJid"], "6289876543210@s.whatsapp.net");
    let id = a.json["messageId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        a.header("location"),
        Some(format!("/api/public/messages/{id}").as_str())
    );
    assert!(a.header("idempotent-replayed").is_none());

    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.json["messageId"], id.as_str());
    assert_eq!(m.json["direction"], "outbound");
    assert_eq!(m.json["type"], "text");
    assert_eq!(m.json["text"], "Your OTP code is 4567");
    assert_eq!(m.json["media"], Value::Null);
    assert_eq!(m.json["error"], Value::Null);
    assert_eq!(m.json["providerMessageId"], Value::Null);
    assert_eq!(m.json["statusHistory"][0]["status"], "queued");
    assert!(m.json["statusHistory"][0].get("error").is_none());
    assert!(
        m.json["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[actix_web::test]
async fn send_with_media() {
    let w = world().await;
    let a = call(
        &w,
        send_req(&json!({
            "sessionId": "sim-1",
            "targetNumber": "6289876543210",
            "message": "",
            "media": {"type": "document", "url": "https://example.com/a.pdf", "fileName": "a.pdf"}
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    let id = a.json["messageId"].as_str().unwrap_or_default().to_owned();
    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.json["type"], "document");
    assert_eq!(m.json["text"], Value::Null);
    assert_eq!(
        m.json["media"],
        json!({
            "type": "document", "url": "https://example.com/a.pdf", "providerMediaId": null,
            "mimeType": null, "caption": null, "fileName": "a.pdf"
        })
    );
}

#[actix_web::test]
async fn idempotent_sends_replay_and_conflict() {
    let w = world().await;
    let body = json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "hi"});
    let first = call(
        &w,
        send_req(&body).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    let again = call(
        &w,
        send_req(&body).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json, first.json);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let other = json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "bye"});
    let conflict = call(
        &w,
        send_req(&other).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    assert_eq!(
        conflict.error(),
        (409, "idempotency_key_reused", Some("Idempotency-Key"))
    );

    let bad = call(&w, send_req(&body).insert_header(("Idempotency-Key", "é"))).await;
    assert_eq!(
        bad.error(),
        (400, "validation_failed", Some("Idempotency-Key"))
    );
}

#[actix_web::test]
async fn send_errors() {
    let w = world().await;
    for (body, want) in [
        (
            json!({"sessionId": "nope", "targetNumber": "6289876543210", "message": "x"}),
            (404, "session_not_found", Some("sessionId")),
        ),
        // Another workspace's session is not found either.
        (
            json!({"sessionId": "b-only", "targetNumber": "6289876543210", "message": "x"}),
            (404, "session_not_found", Some("sessionId")),
        ),
        (
            json!({"sessionId": "sim-1", "message": "x"}),
            (400, "validation_failed", Some("targetNumber")),
        ),
        (
            json!({"sessionId": "sim-1", "targetNumber": 6289876543210_u64, "message": "x"}),
            (400, "validation_failed", Some("targetNumber")),
        ),
    ] {
        assert_eq!(call(&w, send_req(&body)).await.error(), want, "{body}");
    }
}

#[actix_web::test]
async fn unknown_messages_are_404() {
    let w = world().await;
    for uri in [
        "/api/public/messages/60d5ec",
        &format!("/api/public/messages/{}", MessageId::new()),
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), (404, "not_found", None));
    }
}

#[actix_web::test]
async fn simulated_inbound_shows_in_the_inbox() {
    let w = world().await;
    let a = call(
        &w,
        post("/api/public/sessions/sim-1/simulate/inbound").set_json(json!({
            "from": "6281234567890", "pushName": "John Doe", "message": "Hello there!"
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    assert!(
        a.json["providerMessageId"]
            .as_str()
            .is_some_and(|p| p.starts_with("sim-in-"))
    );

    let list = call(&w, get("/api/public/inbox/conversations")).await;
    assert_eq!(list.status, StatusCode::OK);
    let conv = &list.json["conversations"][0];
    let keys: Vec<&str> = conv
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys.len(),
        6,
        "exactly the reference's fields plus sessionId: {conv}"
    );
    assert_eq!(conv["remoteJid"], "6281234567890@s.whatsapp.net");
    assert_eq!(conv["pushName"], "John Doe");
    assert_eq!(conv["lastMessage"], "Hello there!");
    assert_eq!(conv["unreadCount"], 1);
    assert_eq!(conv["sessionId"], "sim-1");
    let ts = conv["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.ends_with('Z') && ts.len() == "2023-10-01T12:05:00.000000Z".len(),
        "{ts}"
    );

    for remote in [
        "6281234567890@s.whatsapp.net",
        "6281234567890%40s.whatsapp.net",
        "6281234567890",
    ] {
        let msgs = call(
            &w,
            get(&format!(
                "/api/public/inbox/conversations/{remote}/messages?sessionId=sim-1"
            )),
        )
        .await;
        assert_eq!(msgs.status, StatusCode::OK, "{}", msgs.json);
        assert_eq!(msgs.json["messages"][0]["direction"], "inbound");
        assert_eq!(msgs.json["messages"][0]["text"], "Hello there!");
        assert_eq!(msgs.json["messages"][0]["status"], "received");
        // Pages do not read histories: the field is absent, not empty.
        assert!(msgs.json["messages"][0].get("statusHistory").is_none());
    }

    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=sim-1"),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.json,
        json!({"remoteJid": "6281234567890@s.whatsapp.net", "sessionId": "sim-1", "unreadCount": 0})
    );
    let list = call(&w, get("/api/public/inbox/conversations?sessionId=sim-1")).await;
    assert_eq!(list.json["conversations"][0]["unreadCount"], 0);
}

#[actix_web::test]
async fn simulate_inbound_errors() {
    let w = world().await;
    let body = json!({"from": "6281234567890", "message": "hi"});
    let sim = |session: &str| post(&format!("/api/public/sessions/{session}/simulate/inbound"));
    assert_eq!(
        call(&w, sim("cloud-1").set_json(&body)).await.error(),
        (409, "not_a_simulator_session", None)
    );
    assert_eq!(
        call(&w, sim("nope").set_json(&body)).await.error().1,
        "session_not_found"
    );
    assert_eq!(
        call(&w, sim("b-only").set_json(&body)).await.error().1,
        "session_not_found"
    );
    // Numbers as a send's targetNumber takes them: a group's JID, or a
    // national number without its country code, would make a
    // conversation nobody could answer.
    for from in [
        "abc",
        "62811@g.us",
        "081234567890",
        "6281234567890@broadcast",
    ] {
        assert_eq!(
            call(
                &w,
                sim("sim-1").set_json(json!({"from": from, "message": "hi"}))
            )
            .await
            .error(),
            (400, "validation_failed", Some("from")),
            "{from}"
        );
    }
    for from in [
        "+62 812-3456-7890",
        "6281234567890@s.whatsapp.net",
        "6281234567890@c.us",
    ] {
        let a = call(
            &w,
            sim("sim-1").set_json(json!({"from": from, "message": "hi"})),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{from}: {}", a.json);
    }
    let list = call(&w, get("/api/public/inbox/conversations")).await;
    let jids: Vec<&str> = list.json["conversations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["remoteJid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(jids, vec!["6281234567890@s.whatsapp.net"], "one contact");
}

#[actix_web::test]
async fn inbox_query_and_path_errors() {
    let w = world().await;
    for (uri, want) in [
        (
            "/api/public/inbox/conversations?limit=0",
            (400, "validation_failed", Some("limit")),
        ),
        (
            "/api/public/inbox/conversations?before=yesterday",
            (400, "validation_failed", Some("before")),
        ),
        (
            "/api/public/inbox/conversations?sessionId=nope",
            (404, "session_not_found", Some("sessionId")),
        ),
        (
            "/api/public/inbox/conversations/6281234567890/messages",
            (400, "validation_failed", Some("sessionId")),
        ),
        (
            "/api/public/inbox/conversations/hello/messages?sessionId=sim-1",
            (400, "validation_failed", Some("remoteJid")),
        ),
        (
            "/api/public/inbox/conversations/6281234567890@g.us/messages?sessionId=sim-1",
            (400, "validation_failed", Some("remoteJid")),
        ),
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), want, "{uri}");
    }
    // A JID's forms all name the same contact, `+` encoded or not.
    for remote in [
        "6281234567890",
        "6281234567890@s.whatsapp.net",
        "6281234567890@c.us",
        "%2B6281234567890",
        "+6281234567890",
    ] {
        let a = call(
            &w,
            get(&format!(
                "/api/public/inbox/conversations/{remote}/messages?sessionId=sim-1"
            )),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{remote}: {}", a.json);
    }
    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=sim-1"),
    )
    .await;
    assert_eq!(read.error(), (404, "conversation_not_found", None));
}

#[actix_web::test]
async fn provider_read_failures_are_reported_not_fatal() {
    let w = world().await;
    let delivered = call(
        &w,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload("{}"),
    )
    .await;
    assert_eq!(delivered.json, json!({"received": 1}));
    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=cloud-1"),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json["unreadCount"], 0);
    assert!(
        read.json["providerError"]
            .as_str()
            .is_some_and(|e| e.contains("access token expired")),
        "{}",
        read.json
    );
}

#[actix_web::test]
async fn webhook_verification() {
    let w = world().await;
    let verify = |id: &str, token: &str| {
        TestRequest::get().uri(&format!(
            "/webhooks/whatsapp/{id}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=ch-1158201444"
        ))
    };
    let ok = call(&w, verify(&w.cloud.id.to_string(), "verify-me")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json, Value::String("ch-1158201444".into()));
    assert!(
        ok.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );

    let refused = call(&w, verify(&w.cloud.id.to_string(), "wrong")).await;
    assert_eq!(refused.error(), (403, "forbidden", None));
    for id in [
        "not-a-uuid".to_owned(),
        SessionId::new().to_string(),
        w.simulator.id.to_string(),
    ] {
        assert_eq!(
            call(&w, verify(&id, "verify-me")).await.error().0,
            404,
            "{id}"
        );
    }
}

#[actix_web::test]
async fn webhook_deliveries() {
    let w = world().await;
    let deliver = |signature: &str, body: &'static str| {
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", signature))
            .set_payload(body)
    };
    // No content type is required: the signature covers the raw bytes.
    let ok = call(&w, deliver(GOOD_SIGNATURE, "{}")).await;
    assert_eq!(
        (ok.status, ok.json),
        (StatusCode::OK, json!({"received": 1}))
    );
    assert_eq!(
        call(&w, deliver("sha256=bad", "{}")).await.error(),
        (401, "invalid_signature", None)
    );
    assert_eq!(
        call(&w, deliver(GOOD_SIGNATURE, "garbage")).await.error(),
        (400, "malformed_webhook", None)
    );
    let small = HttpSettings {
        webhook_body_limit: 4,
        ..HttpSettings::default()
    };
    assert_eq!(
        call_with(&w, small, deliver(GOOD_SIGNATURE, "{\"a\": 1}"))
            .await
            .error(),
        (413, "payload_too_large", None)
    );
    // The database unreachable: a 503, which the provider retries, and no
    // internals in the body.
    let unreachable = Database::connect(
        "postgres://postgres@127.0.0.1:1/none",
        &PoolSettings {
            min_idle: 0,
            acquire_timeout: Duration::from_millis(300),
            ..PoolSettings::default()
        },
    )
    .expect("a pool connects lazily");
    let down = call_state(
        &state_over(Arc::new(PgStore::new(unreachable))),
        HttpSettings::default(),
        deliver(GOOD_SIGNATURE, "{}"),
    )
    .await;
    assert_eq!(down.error(), (503, "service_unavailable", None));
    assert_eq!(down.header("retry-after"), Some("1"));
    let text = down.json.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("refused"),
        "{text}"
    );
}

#[actix_web::test]
async fn webhook_limit_is_separate_from_the_api_limit() {
    let w = world().await;
    let tight_api = HttpSettings {
        body_limit: 4,
        ..HttpSettings::default()
    };
    let ok = call_with(
        &w,
        tight_api,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload("{\"entry\": []}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let api = call_with(
        &w,
        tight_api,
        send_req(&json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "hi"})),
    )
    .await;
    assert_eq!(api.error().0, 413);

    // Meta's deliveries may be up to 3 MB: the default takes them.
    let three_mb = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1000 * 1000));
    let big = call(
        &w,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload(three_mb),
    )
    .await;
    assert_eq!(big.status, StatusCode::OK, "{}", big.json);
}

#[actix_web::test]
async fn other_methods_are_405() {
    let w = world().await;
    for req in [
        TestRequest::delete().uri("/api/public/contacts"),
        TestRequest::delete().uri("/api/public/inbox/send"),
        TestRequest::post().uri("/api/public/sessions"),
        TestRequest::put().uri("/api/public/inbox/conversations"),
        TestRequest::delete().uri("/api/public/messages/x"),
        TestRequest::get().uri("/api/public/inbox/conversations/1/read"),
        TestRequest::delete().uri("/webhooks/whatsapp/x"),
    ] {
        let a = call(&w, req).await;
        assert_eq!(a.error().1, "method_not_allowed");
        assert!(a.header("Allow").is_some(), "a 405 lists what is allowed");
    }
    for (req, allow) in [
        (
            TestRequest::delete().uri("/api/public/contacts"),
            "GET, HEAD, POST",
        ),
        (
            TestRequest::put().uri("/api/public/contacts/x"),
            "GET, HEAD, PATCH, DELETE",
        ),
        (TestRequest::get().uri("/api/public/inbox/send"), "POST"),
    ] {
        assert_eq!(call(&w, req).await.header("Allow"), Some(allow));
    }
}

#[actix_web::test]
async fn a_message_read_back_keeps_its_history_and_errors() {
    let w = world().await;
    let now = Utc::now();
    let id = MessageId::new();
    let failure = DeliveryError {
        code: Some("131026".into()),
        message: "undeliverable".into(),
    };
    let message = Message {
        id,
        workspace_id: w.ws_a,
        session_id: w.cloud.id,
        session_name: w.cloud.name.clone(),
        remote: WaId::from_trusted("6281234567890".into()),
        direction: maveraa_domain::messaging::Direction::Outbound,
        content: MessageContent::Text { body: "x".into() },
        status: MessageStatus::Queued,
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        created_at: now,
        updated_at: now,
        history: Vec::new(),
    };
    w.store.enqueue(&message, None).await.expect("enqueue");
    let jobs = w
        .store
        .claim("test", 10, Duration::from_secs(60))
        .await
        .expect("claim");
    w.store
        .record(&[(jobs[0].claim(), DispatchOutcome::Failed(failure))], now)
        .await
        .expect("record");
    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.json["status"], "failed");
    assert_eq!(m.json["providerMessageId"], Value::Null);
    assert_eq!(
        m.json["error"],
        json!({"code": "131026", "message": "undeliverable"})
    );
    assert_eq!(m.json["statusHistory"][0]["status"], "queued");
    assert_eq!(m.json["statusHistory"][1]["status"], "failed");
    assert_eq!(m.json["statusHistory"][1]["error"]["code"], "131026");
    // Not visible from another workspace.
    let other = call(
        &w,
        TestRequest::get()
            .uri(&format!("/api/public/messages/{id}"))
            .insert_header(("X-API-Key", KEY_B)),
    )
    .await;
    assert_eq!(other.error(), (404, "not_found", None));
}
