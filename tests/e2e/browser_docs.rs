//! `/docs` in a real browser (headless Chromium, through the harness in
//! `browser.rs`): the page renders with its style sheet under its
//! Content-Security-Policy, its links work, and it fits a phone's width.

use serde_json::{Value, json};

use crate::browser::{MOBILE_WIDTH, WAIT, run_browser_test, try_browser_test};
use crate::helpers::{json_of, spawn_app};

#[tokio::test]
async fn the_docs_page_renders_in_chromium_and_fits_a_phone() {
    let app = spawn_app().await;
    let document: Value = json_of(
        app.client
            .get(format!("{}/api/openapi.json", app.address))
            .send()
            .await
            .expect("the document"),
        200,
    )
    .await;
    let url = format!("{}/docs", app.address);
    run_browser_test("docs_page_in_chromium", async |b| {
        b.goto(&url).await?;
        b.wait_for("h1", WAIT).await?;
        assert_eq!(b.title().await?, "Maveraa API");
        assert_eq!(
            json!(b.text("h1 small").await?),
            document["info"]["version"],
            "the heading shows the document's version"
        );
        assert_eq!(
            b.text("a[href='/api/openapi.json']").await?,
            "/api/openapi.json"
        );
        b.wait_for_text("This page is rendered from the OpenAPI 3.1 document", WAIT)
            .await?;

        // The style sheet loaded ('self' is allowed): a `pre` has its border.
        let border = b
            .eval_js(
                "return getComputedStyle(document.querySelector('pre')).borderTopStyle;",
                vec![],
            )
            .await?;
        assert_eq!(border, json!("solid"), "docs/style.css applies");

        // A link of the table of contents leads to its operation.
        let first = b.wait_for("nav a", WAIT).await?;
        let target = first.attr("href").await?.unwrap_or_default();
        assert!(target.starts_with('#'), "{target}");
        b.click("nav a").await?;
        b.wait_until("the URL to take the link's fragment", WAIT, async || {
            Ok(b.current_url().await?.ends_with(&target).then_some(()))
        })
        .await?;

        // A phone: nothing wider than the screen, so no sideways scrolling.
        b.set_width(MOBILE_WIDTH).await?;
        let width = b.eval_js("return window.innerWidth;", vec![]).await?;
        assert_eq!(width, json!(MOBILE_WIDTH), "the viewport is a phone's");
        let scroll_width = b
            .eval_js("return document.documentElement.scrollWidth;", vec![])
            .await?;
        let overflow = b.horizontal_overflow().await?;
        assert!(
            scroll_width
                .as_u64()
                .is_some_and(|w| w <= u64::from(MOBILE_WIDTH))
                && overflow.is_none(),
            "the page scrolls sideways at {MOBILE_WIDTH} px: {}",
            overflow.unwrap_or_default()
        );
        Ok(())
    })
    .await;
}

/// What a failing browser test leaves, shown on the real page: a check that
/// fails on purpose, wrapped so that the failure is looked at rather than
/// raised.
#[tokio::test]
async fn a_failing_check_on_the_docs_page_leaves_a_screenshot_and_the_html() {
    let app = spawn_app().await;
    let url = format!("{}/docs", app.address);
    let failure = try_browser_test("docs_page_fails_on_purpose", async |b| {
        b.goto(&url).await?;
        b.wait_for("h1", WAIT).await?;
        let heading = b.text("h1").await?;
        assert!(
            heading.contains("Not this API"),
            "a check that fails on purpose: {heading}"
        );
        Ok(())
    })
    .await
    .expect_err("the check fails");

    let shown = failure.to_string();
    assert!(shown.contains("a check that fails on purpose"), "{shown}");
    let saved = failure.saved.as_ref().expect("a browser was running");
    let png = saved.png.as_ref().expect("the screenshot is saved");
    let html = saved.html.as_ref().expect("the HTML is saved");
    assert!(shown.contains(&png.display().to_string()), "{shown}");
    assert!(shown.contains(&html.display().to_string()), "{shown}");
    assert!(
        png.parent()
            .is_some_and(|dir| dir.ends_with("browser-failures")),
        "{}",
        png.display()
    );
    let image = std::fs::read(png).expect("the screenshot");
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let page = std::fs::read_to_string(html).expect("the HTML");
    assert!(page.contains("<title>Maveraa API</title>"), "{page}");
    // The failure was on purpose: nothing to look at afterwards.
    let _ = std::fs::remove_file(png);
    let _ = std::fs::remove_file(html);
}
