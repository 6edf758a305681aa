//! The harness of the browser tests: real headless Chromium, driven over
//! WebDriver (fantoccini) through a chromedriver of the test's own.
//!
//! Debian's `chromium` and `chromium-driver` are used; when they are
//! missing, [`ensure_chromium`] installs them with apt-get (as root, once per
//! test run, under a lock file) or fails saying what to install. A test
//! never skips.
//!
//! A test goes through [`run_browser_test`]: when its body panics or
//! returns an error, a screenshot and the page's HTML are saved under
//! `target/browser-failures/<test name>-<timestamp>.{png,html}` and the
//! test's panic message says where.
//!
//! ```ignore
//! #[tokio::test]
//! async fn docs_page_opens() {
//!     let app = spawn_app().await;
//!     run_browser_test("docs_page_opens", async |b| {
//!         b.goto(&format!("{}/docs", app.address)).await?;
//!         b.wait_for("h1", WAIT).await?;
//!         assert_eq!(b.title().await?, "Maveraa API");
//!         Ok(())
//!     })
//!     .await;
//! }
//! ```
//!
//! Every wait is bounded and polls for something observable (an element,
//! a text, a script's answer); nothing sleeps a fixed time.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
pub use cookie::SameSite;
pub use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Where Debian's packages put the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The command that installs them, as root.
pub const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";

/// The window of a new session.
pub const DESKTOP_WIDTH: u32 = 1280;
pub const DESKTOP_HEIGHT: u32 = 900;
/// A phone's width, for [`Browser::set_width`].
pub const MOBILE_WIDTH: u32 = 375;

/// A default bound for waits: generous on a loaded 2-core machine, short
/// enough that a missing element fails the test promptly.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(50);
/// The bound of one WebDriver command that the harness issues on its own
/// (saving a failure, closing the session).
const COMMAND_BOUND: Duration = Duration::from_secs(15);

/// Browsers at once in this process: each is a chromedriver and a
/// Chromium with its renderer and GPU processes, and the machine has 2
/// cores. Tests beyond that wait for a free slot before starting theirs.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The browser and its driver, found or installed.
#[derive(Debug, Clone)]
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Finds Chromium and ChromeDriver, installing them first when missing
/// (as root: apt-get, once per test run, under a lock file so that tests
/// and test processes starting at the same time install once). Not root,
/// or apt-get failed: an error that says what to install.
pub fn ensure_chromium() -> Result<Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(find_or_install).clone()
}

fn find_or_install() -> Result<Tools, String> {
    if let Some(tools) = find_tools() {
        return Ok(tools);
    }
    if !is_root() {
        return Err(missing(
            "this user is not root, so the test suite cannot install them",
        ));
    }
    // One installer at a time across processes (and checkouts: apt is
    // the machine's); those that waited find the tools installed.
    let lock_path = std::env::temp_dir().join("maveraa-chromium-install.lock");
    let lock = File::create(&lock_path).map_err(|e| {
        missing(&format!(
            "the lock {} cannot be created: {e}",
            lock_path.display()
        ))
    })?;
    lock.lock().map_err(|e| {
        missing(&format!(
            "the lock {} cannot be taken: {e}",
            lock_path.display()
        ))
    })?;
    if let Some(tools) = find_tools() {
        return Ok(tools);
    }
    eprintln!("browser tests: chromium or chromedriver missing; installing them: {INSTALL}");
    let started = Instant::now();
    apt_get(&["update"])?;
    apt_get(&["install", "-y", "chromium", "chromium-driver"])?;
    eprintln!(
        "browser tests: chromium and chromium-driver installed in {:.0?}",
        started.elapsed()
    );
    find_tools().ok_or_else(|| {
        missing("apt-get installed chromium and chromium-driver, yet they are still not found")
    })
}

/// The message of a missing browser: what is needed and how to get it.
fn missing(why: &str) -> String {
    format!(
        "the browser tests need Debian's chromium and chromium-driver \
         ({CHROMIUM} and {CHROMEDRIVER}), which are not both installed, and {why}. \
         Install them as root: {INSTALL}"
    )
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        // Waits for another apt (say, unattended upgrades) rather than
        // failing at once on its lock.
        .args(["-q", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing(&format!("apt-get cannot be run: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{}\napt-get's last lines:\n{}",
        missing(&format!(
            "`apt-get {}` failed ({})",
            args.join(" "),
            out.status
        )),
        tail.join("\n")
    ))
}

fn find_tools() -> Option<Tools> {
    Some(Tools {
        chromium: find_binary(CHROMIUM, &["chromium", "chromium-browser"])?,
        chromedriver: find_binary(CHROMEDRIVER, &["chromedriver"])?,
    })
}

/// `usual` when it is there, else the first of `names` on the `PATH`.
fn find_binary(usual: &str, names: &[&str]) -> Option<PathBuf> {
    if is_executable(Path::new(usual)) {
        return Some(PathBuf::from(usual));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A chromedriver of the test's own, in a process group of its own so that
/// the Chromium it started goes with it, and with a temporary directory of
/// its own (its `TMPDIR`: Chromium's profile and temporary files): killed,
/// reaped and removed when dropped.
#[derive(Debug)]
struct Driver {
    child: Child,
    tmp: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it launched, which
        // a session closed normally has already ended.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

impl Driver {
    /// Starts chromedriver on `port` and waits (at most 20 s) until it
    /// says it is ready.
    async fn start(chromedriver: &Path, port: u16) -> anyhow::Result<Driver> {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let tmp = std::env::temp_dir().join(format!(
            "maveraa-browser-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let spawned = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e)
                    .with_context(|| format!("{} cannot be started", chromedriver.display()));
            }
        };
        let mut driver = Driver { child, tmp };
        let status_url = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("an HTTP client for chromedriver's status")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = driver.child.try_wait().context("chromedriver's status")? {
                bail!("chromedriver on port {port} exited at start: {status}");
            }
            if let Ok(answer) = http.get(&status_url).send().await
                && let Ok(body) = answer.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(driver);
            }
            if Instant::now() >= deadline {
                bail!("chromedriver on port {port} was not ready within 20 s");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A headless Chromium session, 1280x900, on a chromedriver of its own.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    /// Dropped after the session: kills whatever is left of the browser.
    _driver: Driver,
    _slot: SemaphorePermit<'static>,
}

impl Browser {
    /// Finds or installs Chromium, starts chromedriver on a free port and
    /// opens a headless session. Prefer [`run_browser_test`], which saves
    /// what the page showed when the test fails and closes the session.
    pub async fn start() -> anyhow::Result<Browser> {
        let tools = tokio::task::spawn_blocking(ensure_chromium)
            .await
            .context("the search for chromium")?
            .map_err(anyhow::Error::msg)?;
        let slot = BROWSERS.acquire().await.context("a browser slot")?;
        // A free port can be taken between the look and chromedriver's
        // bind: a few tries.
        let mut last_error = None;
        for _ in 0..3 {
            let port = crate::helpers::free_port();
            match Driver::start(&tools.chromedriver, port).await {
                Ok(driver) => {
                    let client = tokio::time::timeout(
                        Duration::from_secs(60),
                        open_session(&tools.chromium, port),
                    )
                    .await
                    .context("no Chromium session within 60 s")??;
                    return Ok(Browser {
                        client,
                        _driver: driver,
                        _slot: slot,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
    }

    /// The WebDriver client, for whatever the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and returns once it has loaded.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))
    }

    /// The first element matching the CSS selector `css`, polled for until
    /// `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        self.wait_until(
            &format!("an element matching `{css}`"),
            timeout,
            async || match self.client.find(Locator::Css(css)).await {
                Ok(element) => Ok(Some(element)),
                Err(e) if e.is_no_such_element() => Ok(None),
                Err(e) => Err(e).with_context(|| format!("find `{css}`")),
            },
        )
        .await
    }

    /// Waits until `text` is in the page's visible text (`innerText`).
    pub async fn wait_for_text(&self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_until(&format!("the text {text:?}"), timeout, async || {
            let found = self
                .eval_js(
                    "return document.body !== null && document.body.innerText.includes(arguments[0]);",
                    vec![json!(text)],
                )
                .await?;
            Ok((found == json!(true)).then_some(()))
        })
        .await
    }

    /// Polls `check` until it answers `Some`, for `timeout` at most; then an
    /// error naming `what` and the page. An error of `check` ends the wait.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check().await? {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                let url = self.current_url().await.unwrap_or_default();
                bail!("waited {timeout:?} for {what} on {url}: not there");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of the field matching `css` (waited for) by
    /// typing `value`. A field replaced meanwhile (the page it was found on
    /// was being replaced by the next one) is found again, within `WAIT`.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.on_fresh(css, async |field| {
            field.clear().await?;
            field.send_keys(value).await
        })
        .await
        .with_context(|| format!("fill `{css}`"))
    }

    /// Clicks the element matching `css` (waited for), found again if the
    /// page replaced it meanwhile.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.on_fresh(css, async |element| element.click().await)
            .await
            .with_context(|| format!("click `{css}`"))
    }

    /// Clicks the element matching `css`, which submits a form, and waits
    /// (within `WAIT`) until the page it was on has been replaced by the
    /// answer: checks that follow read the new page, never the old one.
    pub async fn submit(&self, css: &str) -> anyhow::Result<()> {
        self.eval_js(
            "document.documentElement.dataset.leaving = '1'; return null;",
            vec![],
        )
        .await?;
        self.click(css).await?;
        self.wait_until("the next page", WAIT, async || {
            let left = self
                .eval_js(
                    "return document.documentElement.dataset.leaving === undefined;",
                    vec![],
                )
                .await
                // Mid-navigation, scripts may fail: not there yet.
                .unwrap_or(Value::Bool(false));
            Ok((left == Value::Bool(true)).then_some(()))
        })
        .await
    }

    /// Runs `act` on the element matching `css`, finding it again while
    /// the page replaces it under us (a stale element), within `WAIT`.
    async fn on_fresh(
        &self,
        css: &str,
        act: impl AsyncFn(Element) -> Result<(), fantoccini::error::CmdError>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let element = self.wait_for(css, WAIT).await?;
            match act(element).await {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The visible text of the element matching `css` (waited for).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.wait_for(css, WAIT).await?;
        element
            .text()
            .await
            .with_context(|| format!("the text of `{css}`"))
    }

    /// The page's title.
    pub async fn title(&self) -> anyhow::Result<String> {
        self.client.title().await.context("the page's title")
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .current_url()
            .await
            .context("the current URL")?
            .to_string())
    }

    /// The page's HTML as it is now (the DOM, serialised).
    pub async fn html(&self) -> anyhow::Result<String> {
        self.client.source().await.context("the page's HTML")
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> anyhow::Result<Vec<u8>> {
        self.client.screenshot().await.context("a screenshot")
    }

    /// Runs `script` (a function body: `return` its answer; the values of
    /// `args` are `arguments[0]`...) in the page. WebDriver runs it whatever
    /// the page's Content-Security-Policy.
    pub async fn eval_js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("run the script `{script}`"))
    }

    /// Makes the viewport `px` wide (`window.innerWidth`), the height kept;
    /// [`MOBILE_WIDTH`] for a phone.
    pub async fn set_width(&self, px: u32) -> anyhow::Result<()> {
        let (_, height) = self
            .client
            .get_window_size()
            .await
            .context("the window's size")?;
        let height = u32::try_from(height).unwrap_or(DESKTOP_HEIGHT);
        self.client
            .set_window_size(px, height)
            .await
            .with_context(|| format!("resize the window to {px}x{height}"))?;
        let inner = self.inner_width().await?;
        if inner != u64::from(px) {
            bail!("the viewport is {inner} px wide after resizing the window to {px} px");
        }
        Ok(())
    }

    /// `None` when the page is no wider than the viewport (no sideways
    /// scrolling); else how wide it is, and the innermost elements that
    /// reach past the viewport's right edge (5 at most).
    pub async fn horizontal_overflow(&self) -> anyhow::Result<Option<String>> {
        let measured = self
            .eval_js(
                "const root = document.documentElement;
                 const edge = root.clientWidth + 0.5;
                 const past = (e) => e.getBoundingClientRect().right > edge;
                 const name = (e) => e.tagName.toLowerCase()
                     + (e.id ? '#' + e.id : '')
                     + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
                 const culprits = [...document.querySelectorAll('body *')]
                     .filter((e) => past(e) && ![...e.children].some(past))
                     .slice(0, 5)
                     .map((e) => name(e) + ' (right edge at ' + Math.round(e.getBoundingClientRect().right) + ' px): '
                         + JSON.stringify((e.textContent || '').trim().slice(0, 60)));
                 return { scroll: root.scrollWidth, viewport: root.clientWidth, culprits };",
                vec![],
            )
            .await?;
        let scroll = measured["scroll"].as_u64().unwrap_or(u64::MAX);
        let viewport = measured["viewport"].as_u64().unwrap_or(0);
        if scroll <= viewport {
            return Ok(None);
        }
        let culprits: Vec<&str> = measured["culprits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Ok(Some(format!(
            "the page is {scroll} px wide in a {viewport} px viewport; past its edge: {}",
            culprits.join("; ")
        )))
    }

    async fn inner_width(&self) -> anyhow::Result<u64> {
        let width = self.eval_js("return window.innerWidth;", vec![]).await?;
        width
            .as_u64()
            .with_context(|| format!("window.innerWidth is {width}"))
    }

    /// The cookies the page can see.
    pub async fn cookies(&self) -> anyhow::Result<Vec<Cookie<'static>>> {
        self.client.get_all_cookies().await.context("the cookies")
    }

    /// The cookie named `name`, if the page has one.
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<Cookie<'static>>> {
        match self.client.get_named_cookie(name).await {
            Ok(cookie) => Ok(Some(cookie)),
            Err(e) if e.is_no_such_cookie() => Ok(None),
            Err(e) => Err(e).with_context(|| format!("the cookie {name}")),
        }
    }

    /// Sets a cookie; what it leaves out is filled in: the current page's
    /// host, path `/`, `SameSite=Lax`.
    pub async fn add_cookie(&self, mut cookie: Cookie<'static>) -> anyhow::Result<()> {
        // chromedriver refuses a cookie without a domain.
        if cookie.domain().is_none() {
            let url = self.client.current_url().await.context("the current URL")?;
            let host = url
                .host_str()
                .with_context(|| format!("a cookie for {url}, which has no host"))?;
            cookie.set_domain(host.to_owned());
        }
        if cookie.path().is_none() {
            cookie.set_path("/");
        }
        // Nor without a SameSite.
        if cookie.same_site().is_none() {
            cookie.set_same_site(SameSite::Lax);
        }
        self.client.add_cookie(cookie).await.context("set a cookie")
    }

    pub async fn delete_all_cookies(&self) -> anyhow::Result<()> {
        self.client
            .delete_all_cookies()
            .await
            .context("delete the cookies")
    }

    /// Saves a screenshot and the page's HTML as
    /// `target/browser-failures/<name>-<timestamp>.{png,html}`; each is
    /// tried even when the other fails.
    pub async fn save_failure(&self, name: &str) -> Saved {
        let stem = format!(
            "{}-{}",
            file_safe(name),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let dir = failures_dir();
        let made =
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()));
        let png = match &made {
            Ok(()) => write_bounded(dir.join(format!("{stem}.png")), self.screenshot_png()).await,
            Err(e) => Err(format!("{e:#}")),
        };
        let html = match &made {
            Ok(()) => {
                write_bounded(dir.join(format!("{stem}.html")), async {
                    self.html().await.map(String::into_bytes)
                })
                .await
            }
            Err(e) => Err(format!("{e:#}")),
        };
        Saved { png, html }
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = tokio::time::timeout(COMMAND_BOUND, self.client.clone().close()).await;
    }
}

async fn open_session(chromium: &Path, port: u16) -> anyhow::Result<Client> {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // Tests run as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                // Containers have a small /dev/shm.
                "--disable-dev-shm-usage",
                format!("--window-size={DESKTOP_WIDTH},{DESKTOP_HEIGHT}"),
                "--lang=en-US",
                "--no-first-run",
                "--no-default-browser-check",
            ],
        },
        "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
    });
    let Value::Object(capabilities) = capabilities else {
        bail!("capabilities are an object");
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("open a Chromium session")
}

/// Writes what `content` gives to `path`, within [`COMMAND_BOUND`].
async fn write_bounded(
    path: PathBuf,
    content: impl Future<Output = anyhow::Result<Vec<u8>>>,
) -> Result<PathBuf, String> {
    let bytes = tokio::time::timeout(COMMAND_BOUND, content)
        .await
        .map_err(|_| format!("the browser did not answer within {COMMAND_BOUND:?}"))?
        .map_err(|e| format!("{e:#}"))?;
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// `target/browser-failures`, in the target directory of this build
/// (`CARGO_TARGET_DIR` when set): the test binary is in its `deps/`.
pub fn failures_dir() -> PathBuf {
    let target = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|dir| dir.file_name().is_some_and(|name| name == "deps"))
            .and_then(Path::parent)
            .and_then(Path::parent)
            .map(Path::to_path_buf)
    });
    target
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("browser-failures")
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where [`Browser::save_failure`] put the screenshot and the HTML, or
/// why it could not.
#[derive(Debug)]
pub struct Saved {
    pub png: Result<PathBuf, String>,
    pub html: Result<PathBuf, String>,
}

/// A browser test that failed: why, and what it saved.
#[derive(Debug)]
pub struct BrowserFailure {
    pub name: String,
    pub message: String,
    pub saved: Option<Saved>,
}

impl fmt::Display for BrowserFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "browser test `{}` failed: {}", self.name, self.message)?;
        match &self.saved {
            None => write!(f, "  (no browser, so no screenshot)"),
            Some(saved) => {
                match &saved.png {
                    Ok(path) => writeln!(f, "  screenshot: {}", path.display())?,
                    Err(e) => writeln!(f, "  screenshot not saved: {e}")?,
                }
                match &saved.html {
                    Ok(path) => write!(f, "  page HTML:  {}", path.display()),
                    Err(e) => write!(f, "  page HTML not saved: {e}"),
                }
            }
        }
    }
}

/// Runs a browser test: starts a browser, runs `body` with it, and when
/// `body` panics or returns an error, saves a screenshot and the page's
/// HTML under `target/browser-failures/` and panics saying where.
pub async fn run_browser_test(name: &str, body: impl AsyncFnOnce(&Browser) -> anyhow::Result<()>) {
    if let Err(failure) = try_browser_test(name, body).await {
        panic!("{failure}");
    }
}

/// [`run_browser_test`], the failure returned rather than raised.
pub async fn try_browser_test(
    name: &str,
    body: impl AsyncFnOnce(&Browser) -> anyhow::Result<()>,
) -> Result<(), BrowserFailure> {
    let browser = Browser::start().await.map_err(|e| BrowserFailure {
        name: name.to_owned(),
        message: format!("the browser did not start: {e:#}"),
        saved: None,
    })?;
    let outcome = AssertUnwindSafe(body(&browser)).catch_unwind().await;
    let message = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(panic) => Some(panic_message(panic.as_ref())),
    };
    let Some(message) = message else {
        browser.close().await;
        return Ok(());
    };
    let saved = browser.save_failure(name).await;
    browser.close().await;
    let failure = BrowserFailure {
        name: name.to_owned(),
        message,
        saved: Some(saved),
    };
    eprintln!("{failure}");
    Err(failure)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The harness on a page of its own (served by a stand-in server): what a
/// test can do with it, and what a failing test leaves behind.
#[cfg(test)]
mod tests {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    /// A form whose button writes a greeting 300 ms after the click, and a
    /// cookie set by the response.
    const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness page</title></head>
<body>
<h1 id="heading">The harness page</h1>
<label>Name <input id="name" value="someone"></label>
<button id="greet" type="button">Greet</button>
<p id="greeting"></p>
<script>
document.getElementById("greet").addEventListener("click", () => {
  const name = document.getElementById("name").value;
  setTimeout(() => { document.getElementById("greeting").textContent = "Hello, " + name + "!"; }, 300);
});
</script>
</body></html>"#;

    async fn page_server() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/page"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Set-Cookie", "visited=yes; Path=/")
                    .set_body_raw(PAGE, "text/html; charset=utf-8"),
            )
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn a_test_fills_clicks_waits_reads_and_resizes() {
        let server = page_server().await;
        let url = format!("{}/page", server.uri());
        run_browser_test("browser_harness_drives_a_page", async |b| {
            b.goto(&url).await?;
            b.wait_for("#heading", WAIT).await?;
            assert_eq!(b.title().await?, "Harness page");
            assert_eq!(b.current_url().await?, url);
            assert_eq!(b.text("#heading").await?, "The harness page");

            b.fill("#name", "Ada").await?;
            b.click("#greet").await?;
            // Written 300 ms after the click: found by polling.
            b.wait_for_text("Hello, Ada!", WAIT).await?;
            assert_eq!(b.text("#greeting").await?, "Hello, Ada!");
            let value = b
                .eval_js(
                    "return document.querySelector(arguments[0]).value;",
                    vec![json!("#name")],
                )
                .await?;
            assert_eq!(value, json!("Ada"));
            assert!(
                b.html().await?.contains("Hello, Ada!"),
                "the HTML is the live DOM"
            );

            // The client itself, for what the helpers do not cover.
            assert_eq!(b.client().windows().await?.len(), 1);

            let png = b.screenshot_png().await?;
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");

            assert_eq!(b.inner_width().await?, u64::from(DESKTOP_WIDTH));
            b.set_width(MOBILE_WIDTH).await?;
            assert_eq!(b.inner_width().await?, u64::from(MOBILE_WIDTH));
            b.set_width(DESKTOP_WIDTH).await?;

            let visited = b.cookie("visited").await?.map(|c| c.value().to_owned());
            assert_eq!(visited.as_deref(), Some("yes"), "the response's cookie");
            b.add_cookie(Cookie::new("theme", "dark")).await?;
            let mut names: Vec<String> = b
                .cookies()
                .await?
                .iter()
                .map(|c| format!("{}={}", c.name(), c.value()))
                .collect();
            names.sort();
            assert_eq!(names, ["theme=dark", "visited=yes"]);
            b.delete_all_cookies().await?;
            assert!(b.cookie("visited").await?.is_none());

            let missing = b
                .wait_for("#not-on-the-page", Duration::from_millis(200))
                .await
                .expect_err("no such element");
            assert!(
                format!("{missing:#}").contains("#not-on-the-page"),
                "{missing:#}"
            );
            Ok(())
        })
        .await;
    }

    /// Checks what a failed test saved, then removes it (these failures
    /// are on purpose).
    fn check_saved(failure: &BrowserFailure, expected_message: &str) {
        let shown = failure.to_string();
        assert!(failure.message.contains(expected_message), "{shown}");
        let saved = failure.saved.as_ref().expect("a browser was running");
        let png = saved.png.as_ref().expect("the screenshot is saved");
        let html = saved.html.as_ref().expect("the HTML is saved");
        for file in [png, html] {
            assert!(file.starts_with(failures_dir()), "{}", file.display());
            let file_name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert!(file_name.starts_with(&failure.name), "{file_name}");
            assert!(shown.contains(&file.display().to_string()), "{shown}");
        }
        let png_bytes = std::fs::read(png).expect("read the screenshot");
        assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        assert!(png_bytes.len() > 1000, "{} bytes", png_bytes.len());
        let page = std::fs::read_to_string(html).expect("read the HTML");
        assert!(page.contains("The harness page"), "{page}");
        assert!(
            page.contains("Hello, Ada!"),
            "the live DOM, not the source: {page}"
        );
        let _ = std::fs::remove_file(png);
        let _ = std::fs::remove_file(html);
    }

    #[tokio::test]
    async fn a_panicking_test_saves_a_screenshot_and_the_html() {
        let server = page_server().await;
        let url = format!("{}/page", server.uri());
        let failure = try_browser_test("browser_harness_panics_on_purpose", async |b| {
            b.goto(&url).await?;
            b.fill("#name", "Ada").await?;
            b.click("#greet").await?;
            b.wait_for_text("Hello, Ada!", WAIT).await?;
            let title = b.title().await?;
            assert_eq!(title, "Not the title", "a check that fails on purpose");
            Ok(())
        })
        .await
        .expect_err("the test fails");
        check_saved(&failure, "a check that fails on purpose");
    }

    #[tokio::test]
    async fn a_test_returning_an_error_saves_them_too() {
        let server = page_server().await;
        let url = format!("{}/page", server.uri());
        let failure = try_browser_test("browser_harness_errs_on_purpose", async |b| {
            b.goto(&url).await?;
            b.fill("#name", "Ada").await?;
            b.click("#greet").await?;
            b.wait_for_text("Hello, Ada!", WAIT).await?;
            b.wait_for("#never-there", Duration::from_millis(300))
                .await?;
            Ok(())
        })
        .await
        .expect_err("the test fails");
        check_saved(&failure, "#never-there");
    }

    #[test]
    fn without_the_browser_the_message_says_what_to_install() {
        let message = missing("this user is not root, so the test suite cannot install them");
        assert!(
            message.contains("apt-get install -y chromium chromium-driver"),
            "{message}"
        );
        assert!(
            message.contains(CHROMIUM) && message.contains(CHROMEDRIVER),
            "{message}"
        );
    }

    #[test]
    fn failure_files_go_to_the_target_directory() {
        let dir = failures_dir();
        assert!(dir.ends_with("browser-failures"), "{}", dir.display());
        let exe = std::env::current_exe().expect("the test binary");
        let target = dir.parent().expect("the target directory");
        assert!(
            exe.starts_with(target),
            "{} in {}",
            exe.display(),
            target.display()
        );
        assert_eq!(file_safe("docs page/mobile"), "docs_page_mobile");
    }
}
