//! A real browser for the console's tests: Debian's headless Chromium,
//! driven over WebDriver by `/usr/bin/chromedriver` (a child process on a
//! free port, its log beside the stack's), through `fantoccini`.
//!
//! Every wait polls with a deadline, and every failure names the page it
//! happened on and what that page said. Screenshots go to
//! `target/console-screenshots/`, and to `docs/console/` as well when
//! `SCIMFLOW_UPDATE_SCREENSHOTS=1`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::{eventually, free_port, poll_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for. The stack
/// shares two cores with the browser and other tests' stacks.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(30);

/// The browser window's size (its viewport is a little shorter).
const WINDOW: (u32, u32) = (1280, 900);
/// The longest screenshot, in pixels.
const MAX_SHOT_HEIGHT: u64 = 4000;

/// A headless Chromium session on a site (`base`, e.g. the admin API).
pub struct Browser {
    client: Client,
    base: String,
    driver: Child,
    driver_port: u16,
    /// Set while the session is open: `Drop` ends it if the test did not.
    session: Option<String>,
    /// The browser's profile, fresh for each session.
    profile: PathBuf,
}

impl Browser {
    /// Start chromedriver and open a browser session on `base`; the
    /// driver's log is `<logs>/<name>-chromedriver.log`.
    pub async fn start(logs: &Path, name: &str, base: &str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("scimflow-chromium-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        let log_path = logs.join(format!("{name}-chromedriver.log"));
        let (driver, driver_port) = start_driver(&log_path).await;
        let caps = json!({
            "browserName": "chrome",
            // A page that never finishes loading fails the test, not the suite.
            "timeouts": {"pageLoad": 60_000, "script": 30_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("the capabilities are an object")
        };
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let mut driver = driver;
                let _ = driver.kill();
                let _ = driver.wait();
                let _ = std::fs::remove_dir_all(&profile);
                panic!(
                    "no browser session ({e}); chromedriver's log:\n{}",
                    tail(&log_path)
                );
            }
        };
        let mut browser = Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            driver,
            driver_port,
            session: None,
            profile,
        };
        browser.session = browser.client.session_id().await.ok().flatten();
        browser
    }

    /// Open `path` (with its query) on the site, as if typed in the address bar.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client.goto(&url).await {
            panic!("opening {url}: {e}");
        }
    }

    /// The current URL's path and query, e.g. `/console/tenants?q=x`.
    pub async fn path(&self) -> String {
        let url = self.url().await;
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The whole current URL.
    pub async fn url(&self) -> reqwest::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// Type `value` into the field named `field` of the form `form` (a CSS
    /// selector), replacing what it held, as a person would.
    pub async fn fill(&self, form: &str, field: &str, value: &str) {
        let input = self.find(&format!("{form} [name=\"{field}\"]")).await;
        let typed = async {
            input.clear().await?;
            input.send_keys(value).await
        };
        if let Err(e) = typed.await {
            panic!(
                "typing into {form} [name={field}]: {e}\n{}",
                self.describe().await
            );
        }
    }

    /// Submit the form `form` with its submit button, and wait for the page
    /// it leads to.
    pub async fn submit(&self, form: &str) {
        // A <button> without a type submits too.
        self.click(&format!(
            "{form} button[type=submit], {form} button:not([type]), {form} input[type=submit]"
        ))
        .await;
    }

    /// Click the first element matching `selector` (a link or a button);
    /// chromedriver returns once the navigation it starts has loaded.
    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        if let Err(e) = element.click().await {
            panic!("clicking {selector}: {e}\n{}", self.describe().await);
        }
    }

    /// The first element matching `selector`, waiting for it up to
    /// `PAGE_DEADLINE`: under load chromedriver can answer a navigation
    /// before the new document is there to search.
    pub async fn find(&self, selector: &str) -> Element {
        self.wait_for(selector, PAGE_DEADLINE).await
    }

    /// Every element matching `selector` (none is fine).
    pub async fn find_all(&self, selector: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("looking for {selector}: {e}"))
    }

    /// How many elements match `selector`.
    pub async fn count(&self, selector: &str) -> usize {
        self.find_all(selector).await.len()
    }

    /// The rendered text of the first element matching `selector`, trimmed.
    pub async fn text(&self, selector: &str) -> String {
        let element = self.find(selector).await;
        text_of(&element).await
    }

    /// The rendered texts of every element matching `selector`, trimmed,
    /// read at one instant (a live list may replace its rows meanwhile).
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let read = self
            .script_with(
                "return Array.from(document.querySelectorAll(arguments[0]))\
                   .map(e => e.innerText.trim());",
                vec![json!(selector)],
            )
            .await;
        serde_json::from_value(read).unwrap_or_else(|e| panic!("the texts of {selector}: {e}"))
    }

    /// An attribute of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.find(selector)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("reading {name} of {selector}: {e}"))
    }

    /// The rows matching `row` as the texts of their cells: for each
    /// selector of `cells`, the text of the row's first element matching
    /// it, or "" when it has none. Read at one instant in the page: a live
    /// list replaces its rows while a test reads them cell by cell.
    pub async fn rows(&self, row: &str, cells: &[&str]) -> Vec<Vec<String>> {
        let read = self
            .script_with(
                "return Array.from(document.querySelectorAll(arguments[0])).map(r =>\
                   arguments[1].map(c => { const e = r.querySelector(c);\
                                           return e ? e.innerText.trim() : ''; }));",
                vec![json!(row), json!(cells)],
            )
            .await;
        serde_json::from_value(read).unwrap_or_else(|e| panic!("the rows {row}: {e}"))
    }

    /// Wait until the browser is on `want`: its path, and at least the
    /// query parameters it names (a form may send empty fields too).
    pub async fn wait_for_path(&self, want: &str) {
        let want_url = reqwest::Url::parse(&format!("{}{want}", self.base))
            .unwrap_or_else(|e| panic!("{want}: {e}"));
        let landed = poll_until(PAGE_DEADLINE, || async {
            let url = self.client.current_url().await.ok()?;
            let pairs: Vec<_> = url.query_pairs().collect();
            let on =
                url.path() == want_url.path() && want_url.query_pairs().all(|p| pairs.contains(&p));
            on.then_some(())
        })
        .await;
        if landed.is_none() {
            panic!(
                "not on {want} after {PAGE_DEADLINE:?}\n{}",
                self.describe().await
            );
        }
    }

    /// An attribute of every element matching `selector` that has it.
    pub async fn attrs(&self, selector: &str, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        for element in self.find_all(selector).await {
            if let Some(v) = element
                .attr(name)
                .await
                .unwrap_or_else(|e| panic!("reading {name} of {selector}: {e}"))
            {
                values.push(v);
            }
        }
        values
    }

    /// Wait until an element matches `selector`, polling until `deadline`.
    pub async fn wait_for(&self, selector: &str, deadline: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(deadline)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "waited {deadline:?} for {selector} ({e})\n{}",
                self.describe().await
            ),
        }
    }

    /// Open `path` again and again until `check` finds what it looks for
    /// on the page, or fail after `deadline`: for what the server shows
    /// only once the pipeline has done its part.
    pub async fn reload_until<T, F, Fut>(
        &self,
        what: &str,
        path: &str,
        deadline: Duration,
        mut check: F,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let found = poll_until(deadline, || {
            let opened = self.goto(path);
            let checked = check();
            async move {
                opened.await;
                checked.await
            }
        })
        .await;
        match found {
            Some(v) => v,
            None => panic!(
                "waited {deadline:?} for {what} on {path}\n{}",
                self.describe().await
            ),
        }
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// Run `js` in the page; what it returns.
    pub async fn script(&self, js: &str) -> Value {
        self.script_with(js, Vec::new()).await
    }

    /// Run `js` in the page with `arguments`; what it returns.
    pub async fn script_with(&self, js: &str, arguments: Vec<Value>) -> Value {
        self.client
            .execute(js, arguments)
            .await
            .unwrap_or_else(|e| panic!("running a script in the page: {e}"))
    }

    /// Whether a JavaScript dialog (alert, confirm) is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// The page as a PNG.
    pub async fn png(&self) -> Vec<u8> {
        self.client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking a screenshot: {e}"))
    }

    /// The whole page as `target/console-screenshots/<name>.png`, and as
    /// `docs/console/<name>.png` when `SCIMFLOW_UPDATE_SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.full_page_png().await;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let mut dirs = vec![target.join("console-screenshots")];
        if std::env::var("SCIMFLOW_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            dirs.push(root.join("docs").join("console"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join(format!("{name}.png")), &png))
                .unwrap_or_else(|e| panic!("writing {name}.png into {}: {e}", dir.display()));
        }
        png
    }

    /// The whole page, however long (up to `MAX_SHOT_HEIGHT` pixels), as a
    /// PNG: the window grows to the page's height for the picture, then
    /// goes back to its size.
    pub async fn full_page_png(&self) -> Vec<u8> {
        let measured = self
            .client
            .execute(
                "return [document.documentElement.scrollHeight, \
                 window.outerHeight - window.innerHeight];",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("measuring the page: {e}"));
        let (page, frame) = (
            measured[0].as_u64().unwrap_or(0),
            measured[1].as_u64().unwrap_or(0),
        );
        let tall = u32::try_from((page + frame).min(MAX_SHOT_HEIGHT)).unwrap_or(WINDOW.1);
        let grown = tall > WINDOW.1;
        if grown {
            self.resize(WINDOW.0, tall).await;
        }
        let png = self.png().await;
        if grown {
            self.resize(WINDOW.0, WINDOW.1).await;
        }
        png
    }

    async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing the window to {width}x{height}: {e}"));
    }

    /// End the browser session; `Drop` does it too, less politely.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            if let Err(e) = self.client.clone().close().await {
                eprintln!("closing the browser session: {e}");
            }
        }
    }

    /// Where the browser is and what the page says, for a failure message.
    async fn describe(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(no URL: {e})"),
        };
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => text_of(&body).await,
            Err(e) => format!("(no body: {e})"),
        };
        let text: String = text.chars().take(2000).collect();
        format!("on {url}, the page says:\n{text}")
    }
}

async fn text_of(element: &Element) -> String {
    element
        .text()
        .await
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|e| panic!("reading an element's text: {e}"))
}

/// chromedriver on a free port, ready for sessions. The port was free when
/// chosen, not reserved: a driver that lost it is started on another.
async fn start_driver(log_path: &Path) -> (Child, u16) {
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open chromedriver's log");
        let err = log.try_clone().expect("clone the log file");
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log_path.display()))
                .arg("--append-log")
                // Warnings and errors only: at INFO it logs every command
                // with its arguments, typed secrets and screenshots included.
                .arg("--log-level=WARNING")
                // Its own process group, so that Drop stops the browser
                // processes it started along with it.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting {CHROMEDRIVER} ({e}): ./scripts/test installs it")
                })
        };
        let status_url = format!("http://127.0.0.1:{port}/status");
        let ready = eventually("chromedriver to listen", Duration::from_secs(30), || {
            let exited = child.try_wait().ok().flatten().is_some();
            let probe = http.get(&status_url).timeout(Duration::from_secs(5));
            async move {
                if exited {
                    return Some(false);
                }
                let status: Value = probe.send().await.ok()?.json().await.ok()?;
                (status["value"]["ready"] == true).then_some(true)
            }
        })
        .await;
        if ready {
            return (child, port);
        }
        let _ = child.wait();
    }
    panic!("chromedriver did not start; its log:\n{}", tail(log_path));
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed did not close its session: ask chromedriver
        // to quit the browser (blocking: no runtime may be left to await
        // on), then stop the driver's whole process group.
        if let Some(session) = self.session.take() {
            end_session(self.driver_port, &session);
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/<id>` to chromedriver, over a plain socket.
fn end_session(port: u16, session: &str) {
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(15)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if socket.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Read the whole answer (chromedriver keeps the connection open), so
    // that the browser has quit before the driver is killed.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = socket.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        if answered(&answer) {
            break;
        }
    }
}

/// Whether `answer` holds an HTTP response's head and all of its body.
fn answered(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// The harness against a page of its own, served by a tiny axum server:
/// it types, submits, follows, reads and photographs a real page.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::extract::Query;
    use axum::response::Html;
    use axum::routing::get;

    use super::*;

    const FORM: &str = r#"<!doctype html><html><head><title>harness</title></head><body><main>
        <h1>Ask</h1>
        <form id="ask" method="get" action="/echo">
          <input name="q" value="typed over"><input name="empty">
          <button>Send</button>
        </form></main></body></html>"#;

    async fn echo(Query(q): Query<HashMap<String, String>>) -> Html<String> {
        let said = q.get("q").cloned().unwrap_or_default();
        let escaped = said.replace('&', "&amp;").replace('<', "&lt;");
        Html(format!(
            r#"<!doctype html><html><body><main><h1 id="said">{escaped}</h1><a id="again" href="/">again</a></main></body></html>"#
        ))
    }

    /// Width and height from a PNG's header.
    fn png_size(png: &[u8]) -> Option<(u32, u32)> {
        let word = |at: usize| {
            png.get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        Some((word(16)?, word(20)?))
    }

    async fn viewport_height(browser: &Browser) -> u32 {
        let h = browser
            .client
            .execute("return window.innerHeight;", vec![])
            .await
            .expect("innerHeight");
        h.as_u64().and_then(|h| u32::try_from(h).ok()).unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn console_browser_harness_types_submits_follows_reads_and_photographs_a_page() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route("/", get(|| async { Html(FORM) }))
            .route("/echo", get(echo))
            .route(
                "/long",
                get(|| async {
                    Html(r#"<!doctype html><html><body style="margin:0"><div style="height:2500px">long</div></body></html>"#)
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let logs = std::env::var_os("SCIMFLOW_TEST_LOGS")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);

        let browser = Browser::start(&logs, "browser-harness", &base).await;
        browser.goto("/").await;
        assert_eq!(browser.text("h1").await, "Ask");
        // What is typed replaces what the field held; a <button> without a
        // type submits its form.
        browser.fill("form#ask", "q", "<b>Ada</b> & co").await;
        browser.submit("form#ask").await;
        browser.wait_for("h1#said", PAGE_DEADLINE).await;
        browser
            .wait_for_path("/echo?q=%3Cb%3EAda%3C%2Fb%3E+%26+co")
            .await;
        assert_eq!(browser.text("#said").await, "<b>Ada</b> & co");
        assert_eq!(browser.count("main b").await, 0);
        assert!(browser.path().await.starts_with("/echo?q="));
        assert!(!browser.dialog_open().await);
        browser.click("a#again").await;
        assert_eq!(browser.path().await, "/");
        assert_eq!(
            browser.attr("input[name=q]", "value").await.as_deref(),
            Some("typed over")
        );
        assert!(browser.texts("h2").await.is_empty());

        // A PNG of the 1280 pixels wide window; of a long page, all of it.
        let png = browser.png().await;
        assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]));
        assert_eq!(
            png_size(&png),
            Some((1280, viewport_height(&browser).await))
        );
        browser.goto("/long").await;
        let whole = browser.full_page_png().await;
        assert_eq!(png_size(&whole), Some((1280, 2500)));
        assert_eq!(
            png_size(&browser.png().await),
            png_size(&png),
            "the window is as it was"
        );

        // Waiting for what never comes fails, naming the page.
        let waited = tokio::spawn(async move {
            browser.wait_for("#never", Duration::from_millis(300)).await;
        })
        .await;
        let failure = waited.expect_err("waiting for nothing fails").into_panic();
        let message = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("#never") && message.contains(&base),
            "{message}"
        );
    }
}
