//! The dashboard in headless Chromium (issue 15): the first account by its
//! link, an API key made on the Settings page, used and revoked; a contact
//! added through the form and found in the API; a reply from the inbox to
//! a simulator session whose ticks change by themselves; a wrong password
//! and the lockout; a forged form refused; the pages at 375 px; a phone
//! linked on the Sessions page (with the simulated WhatsApp Web).
//!
//! With `MAVERAA_SCREENSHOTS=<folder>`, the walk-through also saves the
//! main pages' screenshots there (`docs/screenshots` in the README).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, MOBILE_WIDTH, WAIT, run_browser_test};
use crate::helpers::{TestApp, spawn_app};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";

/// Opens the first-account link and fills it in; lands signed in.
async fn set_up(b: &Browser, app: &TestApp) -> anyhow::Result<()> {
    let token = app
        .services
        .accounts
        .issue_setup_token()
        .await?
        .ok_or_else(|| anyhow::anyhow!("an account exists already"))?;
    b.goto(&app.url(&format!("/setup?token={token}"))).await?;
    b.wait_for_text("Create the first account", WAIT).await?;
    b.fill("input[name=email]", EMAIL).await?;
    b.fill("input[name=password]", PASSWORD).await?;
    b.click("button[type=submit]").await?;
    b.wait_for_text("API keys", WAIT).await?;
    Ok(())
}

async fn shot(b: &Browser, name: &str) -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var("MAVERAA_SCREENSHOTS") {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/{name}.png"), b.screenshot_png().await?)?;
    }
    Ok(())
}

async fn status_of(app: &TestApp, key: &str) -> u16 {
    app.request_as(key, Method::GET, "/api/public/contacts")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_owner_sets_up_makes_a_key_uses_it_and_revokes_it() {
    let app = spawn_app().await;
    run_browser_test("dashboard_api_keys", async |b| {
        set_up(b, &app).await?;
        b.fill("input[name=name]", "website").await?;
        b.click("form[action='/settings/api-keys'] button").await?;
        let key = b.text("#new-key").await?;
        anyhow::ensure!(key.starts_with("mvr_live_"), "the key is shown: {key}");
        b.wait_for_text("shown only once", WAIT).await?;
        shot(b, "api-keys").await?;
        anyhow::ensure!(status_of(&app, &key).await == 200, "the new key works");
        // Reloading the page does not show it again.
        b.goto(&app.url("/settings/api-keys")).await?;
        b.wait_for("table", WAIT).await?;
        anyhow::ensure!(!b.html().await?.contains(&key), "shown once only");
        // Revoke it, after the confirmation.
        // The new key's row (the workspace has the test's key too).
        b.eval_js(
            "Array.from(document.querySelectorAll('tbody tr'))\
               .find(r => r.cells[0].textContent === 'website')\
               .querySelector('a[href$=\"/revoke\"]').click();",
            vec![],
        )
        .await?;
        b.wait_for_text("Revoke API key", WAIT).await?;
        b.click("button.danger").await?;
        b.wait_for_text("The key is revoked", WAIT).await?;
        let status = b
            .wait_until(
                "the key to be refused",
                Duration::from_secs(10),
                async || {
                    let s = status_of(&app, &key).await;
                    Ok((s == 401).then_some(s))
                },
            )
            .await?;
        anyhow::ensure!(status == 401);
        anyhow::ensure!(
            status_of(&app, &app.key).await == 200,
            "the other key still works"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_contact_added_through_the_form_is_in_the_api() {
    let app = spawn_app().await;
    run_browser_test("dashboard_contacts", async |b| {
        set_up(b, &app).await?;
        b.goto(&app.url("/contacts")).await?;
        b.fill("input[name=name]", "Jane Smith").await?;
        b.fill("input[name=phone]", "+62 812-3456-7890").await?;
        b.fill("input[name=labels]", "Lead, Website").await?;
        b.click("form[action='/contacts'][method=post] button")
            .await?;
        b.wait_for_text("Contact saved.", WAIT).await?;
        b.wait_for_text("6281234567890", WAIT).await?;
        shot(b, "contacts").await?;
        let list: Value = app
            .request(Method::GET, "/api/public/contacts?search=Jane")
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(list["total"] == 1, "{list}");
        anyhow::ensure!(list["contacts"][0]["phone"] == "6281234567890", "{list}");
        anyhow::ensure!(
            list["contacts"][0]["labels"] == json!(["Lead", "Website"]),
            "{list}"
        );
        // A bad phone is refused on the page, with the field named.
        b.fill("input[name=name]", "Bad").await?;
        b.fill("input[name=phone]", "123").await?;
        b.click("form[action='/contacts'][method=post] button")
            .await?;
        b.wait_for_text("phone:", WAIT).await?;
        // The page fits a phone.
        b.set_width(MOBILE_WIDTH).await?;
        if let Some(what) = b.horizontal_overflow().await? {
            anyhow::bail!("the contacts page scrolls sideways at 375 px: {what}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_reply_from_the_inbox_reaches_the_simulator_and_its_ticks_change() {
    let app = spawn_app().await;
    app.simulator_session("sim").await;
    let res = app
        .request(Method::POST, "/api/public/sessions/sim/simulate/inbound")
        .json(&json!({"from": "6281234567890", "pushName": "John Doe", "message": "Is my order on its way?"}))
        .send()
        .await
        .expect("inbound");
    assert_eq!(res.status(), 202);
    run_browser_test("dashboard_inbox", async |b| {
        set_up(b, &app).await?;
        b.goto(&app.url("/inbox")).await?;
        b.wait_for_text("John Doe", WAIT).await?;
        anyhow::ensure!(b.text(".badge.unread").await? == "1", "one unread");
        b.click("#conversations a").await?;
        b.wait_for_text("Is my order on its way?", WAIT).await?;
        b.fill("textarea[name=text]", "Yes, it ships today.")
            .await?;
        b.click("form.reply button").await?;
        b.wait_for_text("Yes, it ships today.", WAIT).await?;
        // The simulator reports delivered, then read; the page shows the
        // ticks change without a reload.
        b.wait_for("[data-tick=read]", Duration::from_secs(20))
            .await?;
        shot(b, "inbox").await?;
        // Opening the conversation marked it read.
        let list: Value = app
            .request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(list["conversations"][0]["unreadCount"] == 0, "{list}");
        b.set_width(MOBILE_WIDTH).await?;
        if let Some(what) = b.horizontal_overflow().await? {
            anyhow::bail!("the inbox scrolls sideways at 375 px: {what}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_ones_lock_the_account() {
    let app = spawn_app().await;
    run_browser_test("dashboard_lockout", async |b| {
        set_up(b, &app).await?;
        b.delete_all_cookies().await?;
        b.goto(&app.url("/sessions")).await?;
        // Not signed in: the login page, which returns here after.
        b.wait_for_text("Log in", WAIT).await?;
        for _ in 0..5 {
            b.fill("input[name=email]", EMAIL).await?;
            b.fill("input[name=password]", "not the password").await?;
            // The next attempt types into the answer, not the page before.
            b.submit("button[type=submit]").await?;
            b.wait_for_text("wrong", WAIT).await?;
        }
        b.fill("input[name=email]", EMAIL).await?;
        b.fill("input[name=password]", PASSWORD).await?;
        b.submit("button[type=submit]").await?;
        b.wait_for_text("Too many failed attempts", WAIT).await?;
        anyhow::ensure!(
            b.cookie("maveraa_session").await?.is_none(),
            "not signed in"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_forged_form_without_the_csrf_token_is_refused() {
    let app = spawn_app().await;
    run_browser_test("dashboard_csrf", async |b| {
        set_up(b, &app).await?;
        b.goto(&app.url("/settings/api-keys")).await?;
        b.wait_for("form[action='/settings/api-keys']", WAIT).await?;
        // The form without its token, as another site would post it.
        b.eval_js(
            "document.querySelector(\"form[action='/settings/api-keys'] input[name=_csrf]\").remove();",
            vec![],
        )
        .await?;
        b.fill("input[name=name]", "forged").await?;
        b.click("form[action='/settings/api-keys'] button").await?;
        b.wait_for_text("did not come from this site", WAIT).await?;
        let keys = app.services.api_keys.list(app.workspace).await?;
        anyhow::ensure!(keys.iter().all(|k| k.name != "forged"), "no key made");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_main_pages_fit_a_phone() {
    let app = spawn_app().await;
    app.simulator_session("sim").await;
    run_browser_test("dashboard_mobile", async |b| {
        set_up(b, &app).await?;
        for (path, name) in [
            ("/sessions", "sessions"),
            ("/members", "members"),
            ("/settings/api-keys", "api-keys-page"),
            ("/inbox", "inbox-empty"),
            ("/contacts", "contacts-empty"),
        ] {
            b.set_width(1280).await?;
            b.goto(&app.url(path)).await?;
            b.wait_for("main h1, main .inbox", WAIT).await?;
            if name == "sessions" {
                shot(b, "sessions").await?;
            }
            b.set_width(MOBILE_WIDTH).await?;
            if let Some(what) = b.horizontal_overflow().await? {
                anyhow::bail!("{path} scrolls sideways at 375 px: {what}");
            }
        }
        Ok(())
    })
    .await;
}

/// A WhatsApp Web session made on the Sessions page shows its QR code,
/// which changes by itself as it rotates; a pairing code links it, and the
/// page turns to "Linked as" without a reload. With the simulated engine:
/// no phone can scan here.
#[tokio::test]
async fn a_phone_is_linked_on_the_sessions_page() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.whatsapp_web.engine = "simulator".into();
        s.whatsapp_web.poll_ms = 100;
        s.whatsapp_web.hold_secs = 3;
        s.whatsapp_web.simulator_qr_every_ms = 1500;
    })
    .await;
    run_browser_test("dashboard_link", async |b| {
        set_up(b, &app).await?;
        b.goto(&app.url("/sessions")).await?;
        b.fill("input[name=sessionId]", "shop").await?;
        b.eval_js(
            "document.querySelector('select[name=provider]').value = 'whatsapp-web';",
            vec![],
        )
        .await?;
        b.click("form[action='/sessions'] button").await?;
        b.wait_for_text("Link a phone", WAIT).await?;
        // Read in one script: the live part may replace the image between
        // a lookup and a read.
        let qr_src = async || -> anyhow::Result<Option<String>> {
            Ok(b
                .eval_js(
                    "var i = document.querySelector('img[data-qr]'); return i ? i.getAttribute('src') : null;",
                    vec![],
                )
                .await?
                .as_str()
                .map(str::to_owned))
        };
        b.wait_for("img[data-qr]", Duration::from_secs(20)).await?;
        let first = b
            .wait_until("the QR code", WAIT, async || qr_src().await)
            .await?;
        anyhow::ensure!(first.starts_with("data:image/png;base64,"), "{first}");
        shot(b, "link").await?;
        // A new code replaces it without a reload.
        b.wait_until("a new QR code", Duration::from_secs(20), async || {
            let src = qr_src().await?;
            Ok(src.filter(|s| *s != first))
        })
        .await?;
        b.set_width(MOBILE_WIDTH).await?;
        if let Some(what) = b.horizontal_overflow().await? {
            anyhow::bail!("the link page scrolls sideways at 375 px: {what}");
        }
        b.fill("input[name=phoneNumber]", "6281234567890").await?;
        b.click("form[action$='/pair-code'] button").await?;
        b.wait_for("[data-pair-code]", WAIT).await?;
        anyhow::ensure!(b.text("[data-pair-code]").await? == "SIMU-0987");
        b.wait_for_text("Linked as +6281234567890", Duration::from_secs(20))
            .await?;
        Ok(())
    })
    .await;
}
