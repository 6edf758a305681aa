//! The dashboard over plain HTTP (the browser tests drive the same pages in
//! Chromium): the first account by its link, sign-in, sessions, CSRF,
//! lockout and the security headers.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

use crate::helpers::{TestApp, spawn_app};

/// A client that does not follow redirects (so they can be checked).
fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The session cookie an answer sets.
fn session_cookie(res: &Response) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("maveraa_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The value of the first `name="_csrf"` input of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field");
    let rest = &html[at + "name=\"_csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end")].to_owned()
}

/// Creates the first account through its link; the session cookie.
async fn first_owner(app: &TestApp, email: &str, password: &str) -> String {
    let token = app
        .services
        .accounts
        .issue_setup_token()
        .await
        .expect("token")
        .expect("no account yet");
    let c = client();
    let form = c
        .get(app.url(&format!("/setup?token={token}")))
        .send()
        .await
        .expect("setup form");
    assert_eq!(form.status(), 200);
    let res = c
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("email", email),
            ("password", password),
            ("workspaceName", "Shop"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&res).expect("signed in");
    // The link worked once.
    let again = c
        .get(app.url(&format!("/setup?token={token}")))
        .send()
        .await
        .expect("setup form");
    assert_eq!(again.status(), 404);
    cookie
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = client()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("page");
    (res.status(), res.text().await.expect("body"))
}

#[tokio::test]
async fn the_first_account_signs_in_and_pages_need_a_session() {
    let app = spawn_app().await;
    // Without a session: to the login page, then back.
    let res = client()
        .get(app.url("/contacts?search=x"))
        .send()
        .await
        .expect("contacts");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
        Some("/login?next=/contacts%3Fsearch%3Dx")
    );
    let cookie = first_owner(&app, "owner@example.com", "correct horse battery").await;
    for path in [
        "/inbox",
        "/contacts",
        "/sessions",
        "/settings/api-keys",
        "/members",
        "/settings/password",
    ] {
        let res = client()
            .get(app.url(path))
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(
            h.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..])
        );
        assert!(h.get("referrer-policy").is_some());
        let html = res.text().await.expect("html");
        assert!(!html.contains("<script>"), "no inline script on {path}");
    }
    // The cookie is HttpOnly and SameSite=Lax.
    let token = app
        .services
        .accounts
        .issue_setup_token()
        .await
        .expect("token");
    assert!(token.is_none(), "no setup link once an account exists");
    let res = client()
        .post(app.url("/login"))
        .form(&[
            ("email", "owner@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "not over plain HTTP: {set}");
    // Logging out ends the session on the server.
    let second = session_cookie(&res).expect("cookie");
    let (_, html) = page(&app, &second, "/inbox").await;
    let res = client()
        .post(app.url("/logout"))
        .header(COOKIE, &second)
        .form(&[("_csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, _) = page(&app, &second, "/inbox").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the cookie no longer signs in"
    );
    // The first one still does.
    assert_eq!(page(&app, &cookie, "/inbox").await.0, 200);
}

#[tokio::test]
async fn a_forged_form_is_refused() {
    let app = spawn_app().await;
    let cookie = first_owner(&app, "owner@example.com", "correct horse battery").await;
    let (_, html) = page(&app, &cookie, "/settings/api-keys").await;
    let csrf = csrf_of(&html);
    // No token, a wrong token, or another site's origin: 403, no key made.
    for (form, origin) in [
        (vec![("name", "x")], None),
        (vec![("_csrf", "0000"), ("name", "x")], None),
        (
            vec![("_csrf", csrf.as_str()), ("name", "x")],
            Some("https://evil.example"),
        ),
    ] {
        let mut req = client()
            .post(app.url("/settings/api-keys"))
            .header(COOKIE, &cookie)
            .form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.expect("post");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{form:?} {origin:?}");
    }
    let keys = app
        .services
        .api_keys
        .list(app.workspace)
        .await
        .expect("keys");
    assert!(keys.iter().all(|k| k.name != "x"), "no key was made");
    // With the token and our origin: made, shown once.
    let res = client()
        .post(app.url("/settings/api-keys"))
        .header(COOKIE, &cookie)
        .header("origin", app.address.as_str())
        .form(&[("_csrf", csrf.as_str()), ("name", "website")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    let html = res.text().await.expect("html");
    assert!(html.contains("mvr_live_"), "the key is shown");
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    first_owner(&app, "owner@example.com", "correct horse battery").await;
    let login = |password: &'static str| {
        let app_url = app.url("/login");
        async move {
            client()
                .post(app_url)
                .form(&[("email", "owner@example.com"), ("password", password)])
                .send()
                .await
                .expect("login")
        }
    };
    for _ in 0..5 {
        assert_eq!(
            login("wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused, with when to come back.
    let res = login("correct horse battery").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(session_cookie(&res).is_none());
}

#[tokio::test]
async fn a_csv_imported_on_the_contacts_page_reports_each_bad_row_and_exports_back() {
    let app = spawn_app().await;
    let cookie = first_owner(&app, "owner@example.com", "correct horse battery").await;
    let (_, html) = page(&app, &cookie, "/contacts").await;
    let csrf = csrf_of(&html);
    let boundary = "XbOuNdArY";
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let csv = "name,phone,labels\r\nAnn Lee,6281111111111,\"Lead, VIP\"\r\nBad Row,123,\r\n";
    let body = format!(
        "{}{}--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n",
        part("_csrf", &csrf),
        part("onDuplicate", "skip"),
    );
    let res = client()
        .post(app.url("/contacts/import"))
        .header(COOKIE, &cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body.clone())
        .send()
        .await
        .expect("import");
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("1 created"), "{html}");
    assert!(html.contains("1 failed"), "{html}");
    assert!(
        html.contains("<td>3</td><td>phone</td>"),
        "the bad row named: {html}"
    );
    // Without the token: refused, nothing imported.
    let forged = body.replace(&csrf, "nope");
    let res = client()
        .post(app.url("/contacts/import"))
        .header(COOKIE, &cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(forged)
        .send()
        .await
        .expect("import");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Mistakes of the sender are 400s that say what to do, and import
    // nothing: no file, a choice no form offers, a body cut short.
    let post = |body: String| {
        client()
            .post(app.url("/contacts/import"))
            .header(COOKIE, &cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    for (body, says) in [
        (
            format!(
                "{}{}--{boundary}--\r\n",
                part("_csrf", &csrf),
                part("onDuplicate", "skip")
            ),
            "Choose a CSV file to import.",
        ),
        (
            body.replace(
                "name=\"onDuplicate\"\r\n\r\nskip",
                "name=\"onDuplicate\"\r\n\r\nmerge",
            ),
            "Choose what to do with contacts that exist already.",
        ),
        (
            body[..body.len() - 40].to_owned(),
            "The upload could not be read",
        ),
    ] {
        let res = post(body).await.expect("import");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = res.text().await.expect("html");
        assert!(html.contains(says), "{says}: {html}");
    }
    let res = client()
        .get(app.url("/contacts/export"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("csv");
    assert_eq!(
        text,
        "name,phone,labels\r\nAnn Lee,6281111111111,\"Lead, VIP\"\r\n"
    );
}

/// Signs in with a password; the session cookie, or the status.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> Result<String, StatusCode> {
    let res = client()
        .post(app.url("/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .expect("login");
    session_cookie(&res).ok_or(res.status())
}

async fn post_form(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> Response {
    client()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn owners_manage_members_and_a_password_change_ends_other_sessions() {
    let app = spawn_app().await;
    let owner = first_owner(&app, "owner@example.com", "correct horse battery").await;
    let (_, html) = page(&app, &owner, "/members").await;
    let csrf = csrf_of(&html);
    // A new member, with an initial password.
    let res = post_form(
        &app,
        &owner,
        "/members",
        &[
            ("_csrf", &csrf),
            ("email", "staff@example.com"),
            ("password", "initial password 1"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let staff = sign_in(&app, "staff@example.com", "initial password 1")
        .await
        .expect("the member signs in");
    // A member sees the members but may not change them, nor make keys.
    let (status, html) = page(&app, &staff, "/members").await;
    assert_eq!(status, 200);
    assert!(html.contains("owner@example.com") && !html.contains("Add a member"));
    let staff_csrf = csrf_of(&html);
    let res = post_form(
        &app,
        &staff,
        "/settings/api-keys",
        &[("_csrf", &staff_csrf), ("name", "mine")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The last owner cannot step down.
    let owner_id = html_id_of(&page(&app, &owner, "/members").await.1, "owner@example.com");
    let res = post_form(
        &app,
        &owner,
        &format!("/members/{owner_id}/role"),
        &[("_csrf", &csrf), ("role", "member")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("at least one owner")
    );

    // The member changes their password: their other session ends.
    let other = sign_in(&app, "staff@example.com", "initial password 1")
        .await
        .expect("second sign-in");
    let res = post_form(
        &app,
        &staff,
        "/settings/password",
        &[
            ("_csrf", &staff_csrf),
            ("currentPassword", "initial password 1"),
            ("newPassword", "my own password 2"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page(&app, &staff, "/inbox").await.0,
        200,
        "this one goes on"
    );
    assert_eq!(
        page(&app, &other, "/inbox").await.0,
        StatusCode::SEE_OTHER,
        "the other one ended"
    );
    assert_eq!(
        sign_in(&app, "staff@example.com", "initial password 1").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    sign_in(&app, "staff@example.com", "my own password 2")
        .await
        .expect("the new password works");

    // Removed: their session no longer opens this workspace.
    let staff_id = html_id_of(&page(&app, &owner, "/members").await.1, "staff@example.com");
    let res = post_form(
        &app,
        &owner,
        &format!("/members/{staff_id}/remove"),
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(&app, &staff, "/inbox").await.0, StatusCode::SEE_OTHER);
}

/// The user id in the members table's row of `email`.
fn html_id_of(html: &str, email: &str) -> String {
    let row = html
        .split("<tr>")
        .skip(1)
        .find(|r| r.contains(&format!("<td>{email}")))
        .expect("the member's row");
    let at = row.find("/members/").expect("a member link") + "/members/".len();
    row[at..at + 36].to_owned()
}

#[tokio::test]
async fn every_printed_setup_link_works_until_the_first_account_exists() {
    let app = spawn_app().await;
    // Two servers started: each printed its own link.
    let first = app
        .services
        .accounts
        .issue_setup_token()
        .await
        .expect("token")
        .expect("no account yet");
    let second = app
        .services
        .accounts
        .issue_setup_token()
        .await
        .expect("token")
        .expect("no account yet");
    for token in [&first, &second] {
        let res = client()
            .get(app.url(&format!("/setup?token={token}")))
            .send()
            .await
            .expect("form");
        assert_eq!(res.status(), 200);
    }
    let res = client()
        .post(app.url("/setup"))
        .form(&[
            ("token", first.as_str()),
            ("email", "owner@example.com"),
            ("password", "correct horse battery"),
            ("workspaceName", "Shop"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The other link is gone with the first account.
    let res = client()
        .post(app.url("/setup"))
        .form(&[
            ("token", second.as_str()),
            ("email", "intruder@example.com"),
            ("password", "correct horse battery"),
            ("workspaceName", "Shop"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_user_of_two_workspaces_switches_between_them() {
    use maveraa_domain::ports::UserRepository;
    let app = spawn_app().await;
    let cookie = first_owner(&app, "owner@example.com", "correct horse battery").await;
    let (branch, branch_key) = app.new_workspace("Branch").await;
    let (other, _) = app.new_workspace("Someone else's").await;
    let email = maveraa_domain::Email::parse("email", "owner@example.com").expect("email");
    let (user, _) = app
        .services
        .store
        .find_by_email(&email)
        .await
        .expect("find")
        .expect("the owner");
    app.services
        .store
        .add_membership(&maveraa_domain::Membership {
            user_id: user.id,
            workspace_id: branch,
            role: maveraa_domain::Role::Member,
        })
        .await
        .expect("membership");
    let res = app
        .request_as(&branch_key, reqwest::Method::POST, "/api/public/contacts")
        .json(&serde_json::json!({"name": "Branch Customer", "phone": "6281222333444"}))
        .send()
        .await
        .expect("contact");
    assert_eq!(res.status(), 201);
    let (_, html) = page(&app, &cookie, "/contacts").await;
    assert!(
        html.contains("Branch") && html.contains("name=\"workspace\""),
        "a switcher"
    );
    assert!(!html.contains("Branch Customer"), "Acme shown first");
    assert!(!html.contains("Someone else"), "only the user's workspaces");
    let csrf = csrf_of(&html);
    let res = post_form(
        &app,
        &cookie,
        "/workspace",
        &[("_csrf", &csrf), ("workspace", &branch.to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &cookie, "/contacts").await;
    assert!(html.contains("Branch Customer"), "Branch shown now");
    // As a member there: no key making.
    let (_, html) = page(&app, &cookie, "/settings/api-keys").await;
    assert!(!html.contains("Create a key"));
    // Not a workspace of theirs: refused.
    let res = post_form(
        &app,
        &cookie,
        "/workspace",
        &[("_csrf", &csrf), ("workspace", &other.to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A WhatsApp Web session from the dashboard: created, its QR code shown
/// (inline, refreshed by the live part), linked by a pairing code, shown
/// linked in the table, and logged out after a confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_is_linked_and_logged_out_from_the_dashboard() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.whatsapp_web.engine = "simulator".into();
        s.whatsapp_web.poll_ms = 50;
        s.whatsapp_web.hold_secs = 3;
        s.whatsapp_web.simulator_qr_every_ms = 300;
    })
    .await;
    let cookie = first_owner(&app, "owner@example.com", "a long password 1").await;
    let (_, html) = page(&app, &cookie, "/sessions").await;
    assert!(html.contains("value=\"whatsapp-web\""), "{html}");
    let csrf = csrf_of(&html);
    let res = post_form(
        &app,
        &cookie,
        "/sessions",
        &[
            ("_csrf", &csrf),
            ("sessionId", "phone"),
            ("provider", "whatsapp-web"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/sessions/phone/link");

    // The live part shows the QR code once the session waits for a scan.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, part) = page(&app, &cookie, "/sessions/phone/link?part=status").await;
        assert_eq!(status, 200);
        if part.contains("data-qr") {
            assert!(
                part.contains("src=\"data:image/png;base64,iVBORw0KGgo"),
                "{part}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no QR code: {part}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, html) = page(&app, &cookie, "/sessions/phone/link").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("data-refresh=\"/sessions/phone/link?part=status\""),
        "{html}"
    );

    // A bad number is named; a good one gets its code.
    let csrf = csrf_of(&html);
    let res = post_form(
        &app,
        &cookie,
        "/sessions/phone/pair-code",
        &[("_csrf", &csrf), ("phoneNumber", "12")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("phoneNumber: is too short")
    );
    let res = post_form(
        &app,
        &cookie,
        "/sessions/phone/pair-code",
        &[("_csrf", &csrf), ("phoneNumber", "6281234567890")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("<strong data-pair-code>SIMU-0987</strong>"),
        "{html}"
    );
    loop {
        let (_, part) = page(&app, &cookie, "/sessions/phone/link?part=status").await;
        if part.contains("Linked as +6281234567890 (Simulated phone)") {
            assert!(!part.contains("data-qr"), "no QR code once linked");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never linked: {part}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, table) = page(&app, &cookie, "/sessions?part=table").await;
    assert!(table.contains("href=\"/sessions/phone/logout\""), "{table}");

    // Logged out after asking.
    let (status, ask) = page(&app, &cookie, "/sessions/phone/logout").await;
    assert_eq!(status, 200);
    let res = post_form(
        &app,
        &cookie,
        "/sessions/phone/logout",
        &[("_csrf", &csrf_of(&ask))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/sessions?done=logout");
    loop {
        let (_, table) = page(&app, &cookie, "/sessions?part=table").await;
        if table.contains(">logged_out<") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never logged out: {table}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Not a page of another provider's session.
    let res = post_form(
        &app,
        &cookie,
        "/sessions",
        &[
            ("_csrf", &csrf),
            ("sessionId", "sim"),
            ("provider", "simulator"),
        ],
    )
    .await;
    assert_eq!(res.headers()[LOCATION], "/sessions?done=session");
    let (status, _) = page(&app, &cookie, "/sessions/sim/link").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_photo_is_downloaded_from_the_conversation_page() {
    use maveraa_whatsapp_transport::whatsapp_web::fake;
    use whatsapp_rust::Jid;
    use whatsapp_rust::wacore::download::MediaType;
    use whatsapp_rust::waproto::whatsapp as wa;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // WhatsApp's media host, with the photo encrypted as WhatsApp keeps it.
    let host = MockServer::start().await;
    let photo = b"\xff\xd8 Ana's receipt \xff\xd9";
    let sealed =
        whatsapp_rust::wacore::upload::encrypt_media(photo, MediaType::Image).expect("encrypt");
    Mock::given(method("GET"))
        .and(path("/v/t62/receipt.enc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(sealed.data_to_upload.clone()))
        .mount(&host)
        .await;
    let uri = host.uri();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.whatsapp_web.engine = "whatsapp-rust-fake".into();
        s.whatsapp_web.poll_ms = 50;
        s.whatsapp_web.hold_secs = 3;
        s.whatsapp_web.media_hosts = vec![uri];
    })
    .await;
    let cookie = first_owner(&app, "owner@example.com", "a long password 1").await;
    let (_, html) = page(&app, &cookie, "/sessions").await;
    let res = post_form(
        &app,
        &cookie,
        "/sessions",
        &[
            ("_csrf", &csrf_of(&html)),
            ("sessionId", "phone"),
            ("provider", "whatsapp-web"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let fake_engine = app.services.fake_whatsapp.clone().expect("the fake engine");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let client = loop {
        if let Some(c) = fake_engine.clients().pop() {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    client.scan("6281234567890", "Shop").await.expect("linked");
    let image = wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            direct_path: Some("/v/t62/receipt.enc".to_owned()),
            media_key: Some(sealed.media_key.to_vec()),
            file_enc_sha256: Some(sealed.file_enc_sha256.to_vec()),
            file_sha256: Some(sealed.file_sha256.to_vec()),
            file_length: Some(photo.len() as u64),
            mimetype: Some("image/jpeg".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .deliver(&[fake::inbound(
            Jid::pn("628555000111"),
            None,
            "AC0FFEE01",
            "Ana",
            image,
        )])
        .await
        .expect("stored");

    // The conversation shows the photo with a download link.
    let (status, html) = page(&app, &cookie, "/inbox/phone/628555000111").await;
    assert_eq!(status, 200);
    let at = html.find("href=\"/messages/").expect("a download link");
    let link = &html[at + "href=\"".len()..];
    let link = link[..link.find('"').expect("end")].to_owned();
    let res = client_get(&app, Some(&cookie), &link).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;")
    );
    assert_eq!(&res.bytes().await.expect("body")[..], photo);
    // Only for the signed in.
    let res = client_get(&app, None, &link).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn client_get(app: &TestApp, cookie: Option<&str>, path: &str) -> Response {
    let mut req = client().get(app.url(path));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.expect("request")
}
