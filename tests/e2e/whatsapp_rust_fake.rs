//! WhatsApp Web sessions through the real adapter of the `whatsapp-rust`
//! engine, over a fake of its client (`whatsapp_web.engine =
//! "whatsapp-rust-fake"`): the fake emits the crate's own events (QR
//! codes, pair success, connected, server acks, receipts, logouts, bans)
//! and inbound batches, and records what is sent, uploaded and marked read.
//! Everything above the engine's socket runs as in production: the event
//! mapping, the durability hook, our ids as WhatsApp's, LID resolution,
//! media upload, logout and the supervisor.

use std::time::{Duration, Instant};

use chrono::Utc;
use maveraa_domain::messaging::SessionName;
use maveraa_server::Settings;
use maveraa_whatsapp_transport::whatsapp_web::derive_message_id;
use maveraa_whatsapp_transport::whatsapp_web::fake::{self, FakeClient};
use reqwest::Method;
use serde_json::{Value, json};
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::{Event, TempBanReason, TemporaryBan};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::download::MediaType;
use whatsapp_rust::wacore::upload::encrypt_media;
use whatsapp_rust::waproto::whatsapp as wa;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, json_of, spawn_app_with};
use crate::linked_sessions::{conversation, wait_session};

fn faked(s: &mut Settings) {
    s.whatsapp_web.engine = "whatsapp-rust-fake".into();
    s.whatsapp_web.poll_ms = 50;
    s.whatsapp_web.hold_secs = 3;
    s.whatsapp_web.simulator_qr_every_ms = 300;
    s.whatsapp_web.media_allow_private = true;
}

async fn post(app: &TestApp, path: &str, body: Value, status: u16) -> Value {
    json_of(
        app.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("request"),
        status,
    )
    .await
}

/// The fake client the server opened last for `name`, once it has one
/// other than `not` (a reopened connection).
async fn client_of(
    app: &TestApp,
    name: &str,
    not: Option<&FakeClient>,
) -> std::sync::Arc<FakeClient> {
    let id = app
        .services
        .sessions
        .get(app.workspace, &SessionName::parse("s", name).expect("name"))
        .await
        .expect("session")
        .id;
    let fake = app
        .services
        .fake_whatsapp
        .as_ref()
        .expect("the fake engine");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(c) = fake.client(id)
            && not.is_none_or(|n| !std::ptr::eq(n, c.as_ref()))
        {
            return c;
        }
        assert!(Instant::now() < deadline, "no client opened");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn messages_of(app: &TestApp, jid: &str) -> Vec<Value> {
    let page = json_of(
        app.request(
            Method::GET,
            &format!("/api/public/inbox/conversations/{jid}/messages?sessionId=phone"),
        )
        .send()
        .await
        .expect("request"),
        200,
    )
    .await;
    page["messages"].as_array().expect("messages").clone()
}

/// Marks `jid`'s conversation read through the API and waits until the
/// client sent the read receipt of `id` to `chat`.
async fn read_and_see_the_receipt(
    app: &TestApp,
    client: &FakeClient,
    jid: &str,
    id: &str,
    chat: &Jid,
) {
    post(
        app,
        &format!("/api/public/inbox/conversations/{jid}/read?sessionId=phone"),
        json!({}),
        200,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client
        .read_receipts()
        .iter()
        .any(|(c, i)| i == id && c == chat)
    {
        assert!(
            Instant::now() < deadline,
            "no read receipt of {id}: {:?}",
            client.read_receipts()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_adapter_links_sends_receives_and_unlinks_over_a_fake_client() {
    // Serves media to send by URL, and WhatsApp's media host for received
    // files.
    let files = MockServer::start().await;
    let host = files.uri();
    let app = spawn_app_with(move |s| {
        faked(s);
        s.whatsapp_web.media_hosts = vec![host];
    })
    .await;
    post(
        &app,
        "/api/public/sessions",
        json!({"sessionId": "phone", "provider": "whatsapp-web"}),
        201,
    )
    .await;

    // The crate's QR events become the session's QR, rotating.
    wait_session(&app, "phone", |s| s["status"] == "qr_required").await;
    let qr = |app: &TestApp| {
        let req = app.request(Method::GET, "/api/public/sessions/phone/qr?format=json");
        async move { json_of(req.send().await.expect("request"), 200).await }
    };
    let first = qr(&app).await["code"].as_str().expect("code").to_owned();
    assert!(first.starts_with("2@fake,"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while qr(&app).await["code"] == first.as_str() {
        assert!(Instant::now() < deadline, "the QR code never rotated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A pairing code from the client; the phone confirms it: pair success,
    // connected, the linked account read from the client.
    let client = client_of(&app, "phone", None).await;
    let code = post(
        &app,
        "/api/public/sessions/phone/pair-code",
        json!({"phoneNumber": "+62 812-3456-7890"}),
        200,
    )
    .await;
    assert_eq!(code, json!({"code": "FAKE-7890"}));
    let linked = wait_session(&app, "phone", |s| s["status"] == "connected").await;
    assert_eq!(
        linked["me"],
        json!({"id": "6281234567890@s.whatsapp.net", "pushName": "Fake phone"})
    );

    // A send goes out under a WhatsApp id derived from ours; the server's
    // ack makes it sent, receipts delivered then read, never backwards.
    let queued = post(
        &app,
        "/api/public/inbox/send",
        json!({"sessionId": "phone", "targetNumber": "6289876543210", "message": "Hi"}),
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id").to_owned();
    app.wait_for_message(&id, |m| m["status"] == "sent").await;
    let sends = client.sent();
    assert_eq!(sends.len(), 1);
    let ours: maveraa_domain::MessageId = id.parse().expect("our id");
    assert_eq!(sends[0].id, derive_message_id(ours));
    assert_eq!(sends[0].to, Jid::pn("6289876543210"));
    assert_eq!(sends[0].message.conversation.as_deref(), Some("Hi"));
    let budi_chat = Jid::pn("6289876543210");
    let wa_ids = [sends[0].id.clone()];
    client.emit(&fake::receipt(
        budi_chat.clone(),
        &wa_ids,
        ReceiptType::Read,
        Utc::now(),
    ));
    app.wait_for_message(&id, |m| m["status"] == "read").await;
    client.emit(&fake::receipt(
        budi_chat,
        &wa_ids,
        ReceiptType::Delivered,
        Utc::now(),
    ));
    // The late "delivered" is applied (or not) in order after a marker
    // event: a second send's ack proves the queue moved past it.
    let second = post(
        &app,
        "/api/public/inbox/send",
        json!({"sessionId": "phone", "targetNumber": "6289876543210", "message": "Again"}),
        202,
    )
    .await;
    let second = second["messageId"].as_str().expect("id").to_owned();
    app.wait_for_message(&second, |m| m["status"] == "sent")
        .await;
    let first_msg = app.wait_for_message(&id, |_| true).await;
    assert_eq!(first_msg["status"], "read", "never backwards: {first_msg}");

    // Media by URL: fetched by the server, uploaded through the client,
    // sent as an image message with its caption and MIME type.
    Mock::given(method("GET"))
        .and(path("/cat.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/png")
                .set_body_bytes(b"\x89PNG fake image".to_vec()),
        )
        .mount(&files)
        .await;
    let media = post(
        &app,
        "/api/public/inbox/send",
        json!({"sessionId": "phone", "targetNumber": "6289876543210", "message": "Look",
               "media": {"type": "image", "url": format!("{}/cat.png", files.uri())}}),
        202,
    )
    .await;
    let media_id = media["messageId"].as_str().expect("id").to_owned();
    app.wait_for_message(&media_id, |m| m["status"] == "sent")
        .await;
    assert_eq!(client.uploads().len(), 1);
    assert_eq!(client.uploads()[0].1, b"\x89PNG fake image");
    let image = client
        .sent()
        .last()
        .and_then(|s| s.message.image_message.as_option().cloned())
        .expect("an image message");
    assert_eq!(image.caption.as_deref(), Some("Look"));
    assert_eq!(image.mimetype.as_deref(), Some("image/png"));
    assert_eq!(image.file_length, Some(15));

    // Inbound through the durability hook: stored when the hook returns
    // (WhatsApp is acknowledged after that), once even when redelivered; a
    // LID sender with its number alongside is the number's conversation.
    let ana = "628555000111@s.whatsapp.net";
    let from_lid = fake::inbound(
        Jid::lid("123456789012345"),
        Some(Jid::pn("628555000111")),
        "AC0FFEE01",
        "Ana",
        fake::text("Is my order on its way?"),
    );
    for _ in 0..2 {
        client
            .deliver(std::slice::from_ref(&from_lid))
            .await
            .expect("stored");
        let conv = conversation(&app, ana)
            .await
            .expect("stored before the ack");
        assert_eq!(conv["unreadCount"], 1, "stored once: {conv}");
        assert_eq!(conv["pushName"], "Ana");
    }
    // A LID with no number alongside: resolved by the client's LID store
    // (the fake's knows "9<number>"), the same conversation.
    let lid_only = fake::inbound(
        Jid::lid("9628555000111"),
        None,
        "AC0FFEE02",
        "Ana",
        fake::text("Hello?"),
    );
    client.deliver(&[lid_only]).await.expect("stored");
    let conv = conversation(&app, ana).await.expect("conversation");
    assert_eq!(
        conv["unreadCount"], 2,
        "one person, one conversation: {conv}"
    );
    // Typed on the phone itself: outbound, not unread.
    let echo = fake::from_the_phone(
        Jid::pn_device("6281234567890", 0),
        Jid::pn("628555000111"),
        "3EB0PHONE01",
        fake::text("Yes, today!"),
    );
    client.deliver(&[echo]).await.expect("stored");
    let conv = conversation(&app, ana).await.expect("conversation");
    assert_eq!(conv["unreadCount"], 2, "{conv}");
    let messages = messages_of(&app, ana).await;
    let reply = messages
        .iter()
        .find(|m| m["text"] == "Yes, today!")
        .expect("the phone's reply");
    assert_eq!(reply["direction"], "outbound", "{reply}");

    // A received photo: its size and a download path on the message; the
    // file fetched from the media host and opened with the key its message
    // carried, as any server can (no connection needed).
    let photo = b"\xff\xd8 a received photo \xff\xd9";
    let sealed = encrypt_media(photo, MediaType::Image).expect("encrypt");
    Mock::given(method("GET"))
        .and(path("/v/t62.7118-24/photo.enc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(sealed.data_to_upload.clone()))
        .mount(&files)
        .await;
    let image_of = |direct_path: &str| wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            direct_path: Some(direct_path.to_owned()),
            media_key: Some(sealed.media_key.to_vec()),
            file_enc_sha256: Some(sealed.file_enc_sha256.to_vec()),
            file_sha256: Some(sealed.file_sha256.to_vec()),
            file_length: Some(photo.len() as u64),
            mimetype: Some("image/jpeg".to_owned()),
            caption: Some("My receipt".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let received = fake::inbound(
        Jid::pn_device("628555000111", 2),
        None,
        "AC0FFEE03",
        "Ana",
        image_of("/v/t62.7118-24/photo.enc"),
    );
    client.deliver(&[received]).await.expect("stored");
    let stored = messages_of(&app, ana).await;
    let image = stored
        .iter()
        .find(|m| m["type"] == "image")
        .expect("the photo")
        .clone();
    assert_eq!(image["media"]["size"], photo.len());
    assert_eq!(image["media"]["caption"], "My receipt");
    assert!(
        image["media"].get("locator").is_none(),
        "the key stays inside: {image}"
    );
    let file = app
        .request(
            Method::GET,
            image["media"]["download"].as_str().expect("download"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    assert_eq!(&file.bytes().await.expect("body")[..], photo);
    // A host answering another file than the message names: refused, gone.
    Mock::given(method("GET"))
        .and(path("/v/t62.7118-24/other.enc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"not the photo".to_vec()))
        .mount(&files)
        .await;
    let tampered = fake::inbound(
        Jid::pn_device("628555000111", 2),
        None,
        "AC0FFEE04",
        "Ana",
        image_of("/v/t62.7118-24/other.enc"),
    );
    client.deliver(&[tampered]).await.expect("stored");
    let stored = messages_of(&app, ana).await;
    let other = stored
        .iter()
        .find(|m| m["media"]["download"].is_string() && m["messageId"] != image["messageId"])
        .expect("the second photo")
        .clone();
    let (code, _) = crate::helpers::error_of(
        app.request(
            Method::GET,
            other["media"]["download"].as_str().expect("download"),
        )
        .send()
        .await
        .expect("request"),
        410,
    )
    .await;
    assert_eq!(code, "media_gone");

    // Marking the conversation read sends a read receipt for its latest
    // message through the client (WhatsApp reads all before it), to the
    // chat it came from.
    read_and_see_the_receipt(&app, &client, ana, "AC0FFEE04", &Jid::pn("628555000111")).await;

    // Logout through the API: the client is told, the device's state is
    // deleted, the messages stay; start shows a new QR code.
    let out = post(&app, "/api/public/sessions/phone/logout", json!({}), 200).await;
    assert_eq!(out["status"], "logged_out");
    assert!(client.was_logged_out());
    assert_eq!(
        maveraa_storage::testing::count_at(&app.db_url, "SELECT count(*) AS n FROM device_state"),
        0
    );
    post(&app, "/api/public/sessions/phone/start", json!({}), 200).await;
    wait_session(&app, "phone", |s| s["status"] == "qr_required").await;

    // Scanned again; then unlinked from the phone (WhatsApp's logged-out
    // event): logged out, not reconnecting.
    let client = client_of(&app, "phone", Some(&client)).await;
    client.scan("6281234567890", "Shop").await.expect("linked");
    wait_session(&app, "phone", |s| s["status"] == "connected").await;
    // A conversation read after the reconnection: its latest message came
    // on the earlier connection; the receipt goes to the sender's number.
    read_and_see_the_receipt(&app, &client, ana, "AC0FFEE04", &Jid::pn("628555000111")).await;
    client.emit(&fake::logged_out());
    let out = wait_session(&app, "phone", |s| s["status"] == "logged_out").await;
    assert!(
        out["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("LoggedOut")),
        "{out}"
    );

    // A temporary ban: failed, with its expiry.
    post(&app, "/api/public/sessions/phone/start", json!({}), 200).await;
    let client = client_of(&app, "phone", Some(&client)).await;
    wait_session(&app, "phone", |s| s["status"] == "qr_required").await;
    client.scan("6281234567890", "Shop").await.expect("linked");
    wait_session(&app, "phone", |s| s["status"] == "connected").await;
    client.emit(&Event::TemporaryBan(
        TemporaryBan::builder()
            .code(TempBanReason::SentToTooManyPeople)
            .expire(chrono::Duration::hours(2))
            .build(),
    ));
    let failed = wait_session(&app, "phone", |s| s["status"] == "failed").await;
    let why = failed["lastError"].as_str().expect("a reason");
    assert!(
        why.contains("temporarily banned") && why.contains("until"),
        "{why}"
    );
}
