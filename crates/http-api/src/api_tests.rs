//! Route-level tests: the real handlers and use cases over in-memory fakes
//! of the ports, through actix's test service (no socket, no database).

use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use maveraa_domain::api_key::{ApiKey, ApiKeyHash, ApiKeySecret};
use maveraa_domain::messaging::{
    CloudApiSettings, Conversation, ConversationQuery, Direction, IdempotencyKey, InboundMessage,
    Message, MessageContent, MessageStatus, ProviderEvent, ProviderSettings, SecretString, Session,
    SessionName, SessionStatus, StatusChange, StatusUpdate, WaId,
};
use maveraa_domain::ports::{
    ApiKeyCodec, ApiKeyRepository, ContactRepository, EnqueueOutcome, HealthCheck,
    MessageRepository, SessionRepository, TransportFactory, WebhookDecoder, WorkspaceRepository,
};
use maveraa_domain::transport::{TransportError, WhatsAppTransport};
use maveraa_domain::usecases::{
    ApiKeyService, ContactService, InboxService, MessagingService, SessionService,
};
use maveraa_domain::{
    ApiKeyId, Contact, ContactId, ContactPage, ContactQuery, MessageId, RepositoryError, SessionId,
    SystemClock, Workspace, WorkspaceId, WorkspaceName,
};
use serde_json::{Value, json};

use crate::{ApiState, HttpSettings, configure};

const KEY_A: &str = "key-a";
const KEY_B: &str = "key-b";
const APP_SECRET: &str = "app-secret-xyz";
const GOOD_SIGNATURE: &str = "sha256=good";

#[derive(Default)]
struct State {
    workspaces: Vec<Workspace>,
    keys: Vec<(String, ApiKey)>,
    sessions: Vec<Session>,
    messages: Vec<Message>,
    idempotency: Vec<(WorkspaceId, String, MessageId, String)>,
    conversations: Vec<(WorkspaceId, Conversation, Option<String>)>,
    storage_down: bool,
}

/// Every port at once, in memory.
#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn state(&self) -> Result<MutexGuard<'_, State>, RepositoryError> {
        let s = self
            .0
            .lock()
            .map_err(|_| RepositoryError::Internal("poisoned".into()))?;
        if s.storage_down {
            return Err(RepositoryError::Unavailable("fake storage is down".into()));
        }
        Ok(s)
    }

    fn set_storage_down(&self, down: bool) {
        if let Ok(mut s) = self.0.lock() {
            s.storage_down = down;
        }
    }
}

fn hash_of(s: &str) -> ApiKeyHash {
    let mut bytes = [0u8; 32];
    for (i, b) in s.bytes().take(32).enumerate() {
        bytes[i] = b;
    }
    ApiKeyHash::from_bytes(bytes)
}

#[async_trait]
impl WorkspaceRepository for Fake {
    async fn insert(&self, w: &Workspace) -> Result<(), RepositoryError> {
        self.state()?.workspaces.push(w.clone());
        Ok(())
    }
    async fn get(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepositoryError> {
        Ok(self
            .state()?
            .workspaces
            .iter()
            .find(|w| w.id == id)
            .cloned())
    }
    async fn list(&self) -> Result<Vec<Workspace>, RepositoryError> {
        Ok(self.state()?.workspaces.clone())
    }
}

#[async_trait]
impl ApiKeyRepository for Fake {
    async fn insert(&self, _: &ApiKey, _: &ApiKeyHash) -> Result<(), RepositoryError> {
        Err(RepositoryError::Internal("unused".into()))
    }
    async fn find_by_hash(&self, hash: &ApiKeyHash) -> Result<Option<ApiKey>, RepositoryError> {
        Ok(self
            .state()?
            .keys
            .iter()
            .find(|(k, _)| hash_of(k) == *hash)
            .map(|(_, key)| key.clone()))
    }
    async fn list(&self, _: WorkspaceId) -> Result<Vec<ApiKey>, RepositoryError> {
        Ok(Vec::new())
    }
    async fn get(&self, _: ApiKeyId) -> Result<Option<ApiKey>, RepositoryError> {
        Ok(None)
    }
    async fn revoke(&self, _: ApiKeyId, _: DateTime<Utc>) -> Result<bool, RepositoryError> {
        Ok(false)
    }
}

impl ApiKeyCodec for Fake {
    fn generate(&self) -> (ApiKeySecret, ApiKeyHash) {
        (ApiKeySecret::new("unused".into()), hash_of("unused"))
    }
    fn hash(&self, presented: &str) -> Option<ApiKeyHash> {
        Some(hash_of(presented))
    }
}

#[async_trait]
impl ContactRepository for Fake {
    async fn insert(&self, _: &Contact) -> Result<(), RepositoryError> {
        Err(RepositoryError::Internal("unused".into()))
    }
    async fn get(&self, _: WorkspaceId, _: ContactId) -> Result<Option<Contact>, RepositoryError> {
        Ok(None)
    }
    async fn list(&self, _: WorkspaceId, _: &ContactQuery) -> Result<ContactPage, RepositoryError> {
        Ok(ContactPage {
            total: 0,
            contacts: Vec::new(),
        })
    }
    async fn update(&self, _: &Contact) -> Result<bool, RepositoryError> {
        Ok(false)
    }
    async fn delete(&self, _: WorkspaceId, _: ContactId) -> Result<bool, RepositoryError> {
        Ok(false)
    }
}

#[async_trait]
impl HealthCheck for Fake {
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.state().map(|_| ())
    }
}

#[async_trait]
impl SessionRepository for Fake {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        self.state()?.sessions.push(session.clone());
        Ok(())
    }
    async fn get_by_name(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Option<Session>, RepositoryError> {
        Ok(self
            .state()?
            .sessions
            .iter()
            .find(|s| s.workspace_id == workspace && &s.name == name)
            .cloned())
    }
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        Ok(self.state()?.sessions.iter().find(|s| s.id == id).cloned())
    }
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Session>, RepositoryError> {
        Ok(self
            .state()?
            .sessions
            .iter()
            .filter(|s| s.workspace_id == workspace)
            .cloned()
            .collect())
    }
    async fn delete(&self, _: WorkspaceId, _: &SessionName) -> Result<bool, RepositoryError> {
        Ok(false)
    }
    async fn set_status(
        &self,
        _: SessionId,
        _: SessionStatus,
        _: Option<String>,
    ) -> Result<(), RepositoryError> {
        Ok(())
    }
}

#[async_trait]
impl MessageRepository for Fake {
    async fn enqueue(
        &self,
        message: &Message,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<EnqueueOutcome, RepositoryError> {
        let mut s = self.state()?;
        if let Some(k) = idempotency {
            let hit = s
                .idempotency
                .iter()
                .find(|(w, key, _, _)| *w == message.workspace_id && *key == k.key)
                .cloned();
            if let Some((_, _, id, fingerprint)) = hit {
                let first = s.messages.iter().find(|m| m.id == id).cloned();
                if let Some(message) = first {
                    return Ok(EnqueueOutcome::Existing {
                        message: Box::new(message),
                        fingerprint,
                    });
                }
            }
            s.idempotency.push((
                message.workspace_id,
                k.key.clone(),
                message.id,
                k.fingerprint.clone(),
            ));
        }
        s.messages.push(message.clone());
        Ok(EnqueueOutcome::Created)
    }
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<Message>, RepositoryError> {
        Ok(self
            .state()?
            .messages
            .iter()
            .find(|m| m.workspace_id == workspace && m.id == id)
            .cloned())
    }
    async fn list_for_conversation(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        let mut out: Vec<Message> = self
            .state()?
            .messages
            .iter()
            .filter(|m| m.workspace_id == workspace && m.session_id == session)
            .filter(|m| &m.remote == remote && before.is_none_or(|b| m.created_at < b))
            .cloned()
            .collect();
        out.reverse();
        out.truncate(limit as usize);
        Ok(out)
    }
    async fn record_inbound(
        &self,
        session: &Session,
        id: MessageId,
        m: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let mut s = self.state()?;
        s.messages.push(Message {
            id,
            workspace_id: session.workspace_id,
            session_id: session.id,
            session_name: session.name.clone(),
            remote: m.from.clone(),
            direction: Direction::Inbound,
            content: m.content.clone(),
            status: MessageStatus::Received,
            provider_message_id: Some(m.provider_message_id.clone()),
            error: None,
            provider_timestamp: Some(m.timestamp),
            created_at: received_at,
            updated_at: received_at,
            history: Vec::new(),
        });
        let conv = s
            .conversations
            .iter_mut()
            .find(|(_, c, _)| c.session_id == session.id && c.remote == m.from);
        match conv {
            Some((_, c, last)) => {
                c.unread_count += 1;
                c.last_message = m.content.preview();
                *last = Some(m.provider_message_id.clone());
            }
            None => s.conversations.push((
                session.workspace_id,
                Conversation {
                    session_id: session.id,
                    session_name: session.name.clone(),
                    remote: m.from.clone(),
                    push_name: m.push_name.clone(),
                    last_message: m.content.preview(),
                    last_message_at: m.timestamp,
                    unread_count: 1,
                },
                Some(m.provider_message_id.clone()),
            )),
        }
        Ok(true)
    }
    async fn apply_status(&self, _: SessionId, _: &StatusUpdate) -> Result<bool, RepositoryError> {
        self.state().map(|_| true)
    }
    async fn list_conversations(
        &self,
        workspace: WorkspaceId,
        query: &ConversationQuery,
    ) -> Result<Vec<Conversation>, RepositoryError> {
        Ok(self
            .state()?
            .conversations
            .iter()
            .filter(|(w, c, _)| *w == workspace && query.session.is_none_or(|s| s == c.session_id))
            .map(|(_, c, _)| c.clone())
            .take(query.limit as usize)
            .collect())
    }
    async fn mark_conversation_read(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
    ) -> Result<Option<Option<String>>, RepositoryError> {
        let mut s = self.state()?;
        Ok(s.conversations
            .iter_mut()
            .find(|(w, c, _)| *w == workspace && c.session_id == session && &c.remote == remote)
            .map(|(_, c, last)| {
                c.unread_count = 0;
                last.clone()
            }))
    }
}

impl TransportFactory for Fake {
    fn transport_for(&self, _: &Session) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        Err(TransportError::Permanent {
            code: Some("190".into()),
            message: "access token expired".into(),
        })
    }
}

impl WebhookDecoder for Fake {
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
    fake: Fake,
    state: ApiState,
    ws_a: WorkspaceId,
    simulator: Session,
    cloud: Session,
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

fn world() -> World {
    let fake = Fake::default();
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
    if let Ok(mut s) = fake.0.lock() {
        for (ws, key) in [(ws_a, KEY_A), (ws_b, KEY_B)] {
            s.workspaces.push(Workspace {
                id: ws,
                name: WorkspaceName::from_trusted("w".into()),
                created_at: Utc::now(),
            });
            s.keys.push((
                key.into(),
                ApiKey {
                    id: ApiKeyId::new(),
                    workspace_id: ws,
                    name: "k".into(),
                    prefix: "k".into(),
                    created_at: Utc::now(),
                    revoked_at: None,
                    last_used_at: None,
                },
            ));
        }
        s.sessions = vec![simulator.clone(), cloud.clone(), other];
    }
    let p = Arc::new(fake.clone());
    let clock = Arc::new(SystemClock);
    let state = ApiState {
        contacts: ContactService::new(p.clone(), clock.clone()),
        api_keys: ApiKeyService::new(p.clone(), p.clone(), p.clone(), clock.clone()),
        sessions: SessionService::new(p.clone(), p.clone(), clock.clone()),
        messaging: MessagingService::new(p.clone(), p.clone(), clock.clone()),
        inbox: InboxService::new(p.clone(), p.clone(), p.clone(), p.clone(), clock),
        health: p,
    };
    World {
        fake,
        state,
        ws_a,
        simulator,
        cloud,
    }
}

/// One request through a freshly built app; the fake keeps its state
/// across calls. Answers the status, headers and the body as JSON (or as a
/// JSON string when it is not JSON).
async fn call_with(w: &World, settings: HttpSettings, req: TestRequest) -> Answer {
    let state = w.state.clone();
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
    let w = world();
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
    let w = world();
    for req in [
        TestRequest::get().uri("/api/public/sessions"),
        TestRequest::get().uri("/api/public/inbox/conversations"),
        TestRequest::post().uri("/api/public/inbox/send"),
    ] {
        assert_eq!(call(&w, req).await.error().1, "missing_api_key");
    }
}

#[actix_web::test]
async fn send_queues_and_answers_202() {
    let w = world();
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
    let w = world();
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
    let w = world();
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
    let w = world();
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
    let w = world();
    for uri in [
        "/api/public/messages/60d5ec",
        &format!("/api/public/messages/{}", MessageId::new()),
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), (404, "not_found", None));
    }
}

#[actix_web::test]
async fn simulated_inbound_shows_in_the_inbox() {
    let w = world();
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
    let w = world();
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
    assert_eq!(
        call(
            &w,
            sim("sim-1").set_json(json!({"from": "abc", "message": "hi"}))
        )
        .await
        .error(),
        (400, "validation_failed", Some("from"))
    );
}

#[actix_web::test]
async fn inbox_query_and_path_errors() {
    let w = world();
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
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), want, "{uri}");
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
    let w = world();
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
    let w = world();
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
    let w = world();
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
    w.fake.set_storage_down(true);
    let down = call(&w, deliver(GOOD_SIGNATURE, "{}")).await;
    assert_eq!(down.error(), (503, "service_unavailable", None));
    assert!(!down.json.to_string().contains("fake storage"));
}

#[actix_web::test]
async fn webhook_limit_is_separate_from_the_api_limit() {
    let w = world();
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
}

#[actix_web::test]
async fn other_methods_are_405() {
    let w = world();
    for req in [
        TestRequest::delete().uri("/api/public/contacts"),
        TestRequest::delete().uri("/api/public/inbox/send"),
        TestRequest::post().uri("/api/public/sessions"),
        TestRequest::put().uri("/api/public/inbox/conversations"),
        TestRequest::delete().uri("/api/public/messages/x"),
        TestRequest::get().uri("/api/public/inbox/conversations/1/read"),
        TestRequest::delete().uri("/webhooks/whatsapp/x"),
    ] {
        assert_eq!(call(&w, req).await.error().1, "method_not_allowed");
    }
}

#[actix_web::test]
async fn a_message_read_back_keeps_its_history_and_errors() {
    let w = world();
    let now = Utc::now();
    let id = MessageId::new();
    let failure = maveraa_domain::messaging::MessageError {
        code: Some("131026".into()),
        message: "undeliverable".into(),
    };
    if let Ok(mut s) = w.fake.0.lock() {
        s.messages.push(Message {
            id,
            workspace_id: w.ws_a,
            session_id: w.cloud.id,
            session_name: w.cloud.name.clone(),
            remote: WaId::from_trusted("6281234567890".into()),
            direction: Direction::Outbound,
            content: MessageContent::Text { body: "x".into() },
            status: MessageStatus::Failed,
            provider_message_id: Some("wamid.9".into()),
            error: Some(failure.clone()),
            provider_timestamp: None,
            created_at: now,
            updated_at: now,
            history: vec![
                StatusChange {
                    status: MessageStatus::Queued,
                    at: now,
                    error: None,
                },
                StatusChange {
                    status: MessageStatus::Failed,
                    at: now,
                    error: Some(failure),
                },
            ],
        });
    }
    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.json["status"], "failed");
    assert_eq!(m.json["providerMessageId"], "wamid.9");
    assert_eq!(
        m.json["error"],
        json!({"code": "131026", "message": "undeliverable"})
    );
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
