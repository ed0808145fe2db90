//! The operator console in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, both installed by `scripts/test`) against a real `loyalty-local` process on a
//! fresh in-memory store seeded through the API. Every flow checks what the page shows against
//! what the API answers; every page is screenshotted in both languages under
//! `target/console-screens/`. Missing Chromium or chromedriver fails the test, never skips it.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "console-browser-test-secret";

/// The server and the driver, killed when the test ends however it ends.
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(names: &[&str]) -> String {
    for n in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = std::path::Path::new(dir).join(n);
            if p.is_file() {
                return p.display().to_string();
            }
        }
    }
    panic!(
        "none of {names:?} is installed: the console's browser tests need Debian's chromium and \
         chromium-driver (scripts/test installs them with apt-get)"
    )
}

/// `loyalty-local --memory` on a free loopback port; its URL from the banner.
fn start_server(procs: &mut Procs) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty-local"))
        .args(["--memory", "--listen", "127.0.0.1:0"])
        .env("LOYALTY_DEV_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start loyalty-local");
    let out = child.stdout.take().unwrap();
    procs.0.push(child);
    let mut lines = BufReader::new(out).lines();
    let first = lines.next().expect("a banner").unwrap();
    let url = first
        .split(" on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected banner: {first}"))
        .trim()
        .to_owned();
    // Keep draining the banner so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    url
}

async fn start_browser(procs: &mut Procs, lang: &str) -> Client {
    let port = free_port();
    let driver = which(&["chromedriver"]);
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    procs.0.push(child);
    let chromium = which(&["chromium", "chromium-browser"]);
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,800", format!("--lang={lang}")],
            "prefs": {"intl.accept_languages": lang},
        }
    });
    let started = Instant::now();
    loop {
        let mut b = ClientBuilder::rustls().expect("rustls connector");
        b.capabilities(caps.as_object().unwrap().clone());
        match b.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return c,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a session: {e}"),
        }
    }
}

/// The browser's console since the last call (ChromeDriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;
impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

struct Api {
    base: String,
    http: reqwest::Client,
    auth: loyalty_local::auth::DevAuth,
}

impl Api {
    fn token(&self, role: &loyalty_local::auth::Role) -> String {
        self.auth.mint(role)
    }
    fn admin(&self) -> String {
        self.token(&loyalty_local::auth::Role::Admin)
    }
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, &self.admin(), body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }
    async fn buy(&self, member: &str, receipt: &str, cents: i64, at: &str) {
        let pos = self.token(&loyalty_local::auth::Role::Pos("store-1".into()));
        let (s, v) = self
            .call("POST", "/v1/purchases", &pos, Some(json!({"member": {"id": member}, "store_id": "store-1",
                "receipt_id": receipt, "amount": {"value": cents, "currency": "USD"}, "occurred_at": at})))
            .await;
        assert_eq!(s, 201, "purchase {receipt}: {v}");
    }
}

struct Page<'a> {
    c: &'a Client,
    base: String,
    screens: std::path::PathBuf,
    loads: std::sync::atomic::AtomicU32,
}

impl Page<'_> {
    /// A fresh load of the page: a query no load had before, so the browser loads the document
    /// again (a hash change alone keeps the old page and races its render).
    async fn open(&self, path: &str) {
        let n = self
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.c
            .goto(&format!("{}/console/?load={n}{path}", self.base))
            .await
            .unwrap();
        self.settle().await;
    }
    /// Until no request is in flight and nothing shows "loading".
    async fn settle(&self) {
        self.until("document.querySelector('main h2') && !document.querySelector('.loading')")
            .await;
    }
    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }
    async fn until(&self, condition: &str) {
        let started = Instant::now();
        loop {
            if self.js(&format!("return !!({condition});")).await == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "timed out waiting for `{condition}`; the page says: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    async fn text(&self) -> String {
        self.js("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    async fn text_of(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }
    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }
    async fn click_text(&self, text: &str) {
        let xpath =
            format!("//button[normalize-space(.)='{text}'] | //a[normalize-space(.)='{text}']");
        self.c
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .click()
            .await
            .unwrap();
    }
    /// A tab of the page (a button inside `main`: the rail has links of the same names).
    async fn click_tab(&self, name: &str) {
        let xpath = format!("//main//button[normalize-space(.)='{name}']");
        self.c
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("tab {name}: {e}"))
            .click()
            .await
            .unwrap();
    }
    async fn fill(&self, css: &str, value: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }
    async fn shot(&self, name: &str) {
        std::fs::create_dir_all(&self.screens).unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.screens.join(format!("{name}.png")), png).unwrap();
    }
    /// Every control has an accessible name (a label, aria-label or its text).
    async fn assert_controls_labelled(&self, page: &str) {
        let unlabelled = self
            .js("return [...document.querySelectorAll('input, select, textarea, button')].filter(e => \
                 !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML);")
            .await;
        assert_eq!(unlabelled, json!([]), "{page}: controls without a label");
    }
}

fn screens_dir() -> std::path::PathBuf {
    std::env::var("LOYALTY_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("console-screens")
}

/// Members ada (phone), bob and a member whose name is markup, purchases yesterday and today, a
/// reward, the nightly runs: a store every page has something to show from.
async fn seed(api: &Api) {
    let now = chrono::Utc::now();
    let yesterday = (now - chrono::Duration::days(1))
        .format("%Y-%m-%dT10:00:00Z")
        .to_string();
    api.ok("PUT", "/_local/clock", Some(json!({"now": yesterday})))
        .await;
    for (id, name, phone) in [
        ("ada", "Ada Lovelace", Some("+14155550101")),
        ("bob", "Bob Chen", None),
        ("hostile", "<img src=x onerror=alert(1)>", None),
        ("cy", "Cy Young", None),
    ] {
        let mut body = json!({"id": id, "name": name});
        if let Some(p) = phone {
            body["phone"] = json!(p);
        }
        api.ok("POST", "/v1/members", Some(body)).await;
    }
    api.buy("ada", "R-1", 12_000, &yesterday).await;
    api.buy("bob", "R-2", 4_500, &yesterday).await;
    api.ok("DELETE", "/_local/clock", None).await;
    let today = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    api.buy("ada", "R-3", 2_000, &today).await;
    api.ok(
        "PUT",
        "/v1/rewards/coffee",
        Some(json!({"name": "Coffee", "cost_points": 50, "stock": 100})),
    )
    .await;
    api.ok("POST", "/_local/jobs/segments", Some(json!({})))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_answers_in_both_languages_and_to_each_role() {
    let mut procs = Procs(Vec::new());
    let base = start_server(&mut procs);
    let api = Api {
        base: base.clone(),
        http: reqwest::Client::new(),
        auth: loyalty_local::auth::DevAuth::from_secret(SECRET.as_bytes()),
    };
    seed(&api).await;
    let c = start_browser(&mut procs, "en-US").await;
    let p = Page {
        c: &c,
        base: base.clone(),
        screens: screens_dir(),
        loads: Default::default(),
    };

    // Security headers on every console response.
    let res = reqwest::get(format!("{base}/console/app.js"))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    // Dashboard: the KPI cards say what the overview answers.
    p.open("#/dashboard").await;
    let o = api.ok("GET", "/v1/analytics/overview", None).await;
    let en = |n: &Value| {
        let n = n.as_i64().unwrap();
        // en-US grouping, as Intl formats it.
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if n < 0 { format!("-{out}") } else { out }
    };
    for k in [
        "members",
        "active_members",
        "points_outstanding",
        "points_pending",
        "points_earned_30d",
    ] {
        let shown = p.text_of(&format!("[data-kpi={k}] .value")).await;
        assert_eq!(shown, en(&o[k]), "KPI {k}");
    }
    assert_eq!(o["members"], 4);
    p.assert_controls_labelled("dashboard").await;
    p.shot("dashboard-en").await;

    // Find by phone → adjust → ledger, balance and the audit log show it.
    p.open("#/members").await;
    p.fill("input[name=phone]", "+1 415 555 0101").await;
    p.click("form[data-test=find] button[type=submit]").await;
    p.until("location.hash === '#/members/ada' && document.querySelector('[data-test=balance]')")
        .await;
    p.settle().await;
    let before = api.ok("GET", "/v1/members/ada/points", None).await["available"]
        .as_i64()
        .unwrap();
    p.fill("form[data-test=adjust] input[name=points]", "25")
        .await;
    p.fill(
        "form[data-test=adjust] input[name=reason]",
        "goodwill after a late delivery",
    )
    .await;
    p.click("form[data-test=adjust] button[type=submit]").await;
    p.until(&format!(
        "document.querySelector('[data-test=balance]').textContent === '{}'",
        before + 25
    ))
    .await;
    p.until("document.querySelector('[data-test=ledger] tbody tr td:nth-child(3)').textContent === '25'").await;
    let after = api.ok("GET", "/v1/members/ada/points", None).await["available"]
        .as_i64()
        .unwrap();
    assert_eq!(after, before + 25);
    p.assert_controls_labelled("member").await;
    p.shot("member-en").await;
    p.open("#/activity").await;
    p.click_text("Audit log").await;
    p.until("document.querySelector('[data-test=audit] tbody tr')")
        .await;
    let row = p.text_of("[data-test=audit] tbody tr").await;
    assert!(
        row.contains("admin") && row.contains("Points adjusted") && row.contains("ada"),
        "{row}"
    );
    p.shot("activity-en").await;

    // Create a reward → it is in the catalog the API lists.
    p.open("#/rewards").await;
    p.click("[data-test=new-reward]").await;
    p.fill("form[data-test=reward-form] input[name=id]", "tote-bag")
        .await;
    p.fill("form[data-test=reward-form] input[name=name]", "Tote bag")
        .await;
    p.fill("form[data-test=reward-form] input[name=cost_points]", "300")
        .await;
    p.fill("form[data-test=reward-form] input[name=stock]", "40")
        .await;
    p.click("form[data-test=reward-form] button[type=submit]")
        .await;
    p.until("document.querySelector('[data-test=catalog]') && document.querySelector('[data-test=catalog]').textContent.includes('Tote bag')").await;
    let catalog = api.ok("GET", "/v1/rewards", None).await;
    assert!(
        catalog["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "tote-bag" && r["stock"] == 40)
    );
    p.shot("rewards-en").await;

    // A campaign on the new members: the form shows the API's validation beside the field,
    // then a draft, a launch, purchases, and the results the API gives.
    p.open("#/campaigns").await;
    p.click("[data-test=new-campaign]").await;
    p.settle().await;
    p.until("document.querySelector('input[name=audience][value=\"lifecycle:new\"]')")
        .await;
    p.fill("input[name=id]", "double-new").await;
    p.fill("input[name=name]", "Double points for new members")
        .await;
    p.click("input[name=audience][value=\"lifecycle:new\"]")
        .await;
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    // datetime-local inputs take their value through script (typing depends on the locale).
    let set = |name: &str, v: &str| {
        format!(
            "const e = document.querySelector('input[name={name}]'); e.value = '{v}'; e.dispatchEvent(new Event('input', {{bubbles: true}}));"
        )
    };
    p.js(&set("starts_at", &start)).await;
    p.js(&set("ends_at", &start)).await;
    p.click("form[data-test=campaign-form] button[type=submit]")
        .await;
    p.until("document.querySelector('.field-error')").await;
    // The refused draft is the one failed request of the run: the browser logs it, nothing else.
    let refused = console_errors(&c).await;
    assert!(
        refused.len() == 1 && refused[0].contains("status of 422"),
        "{refused:#?}"
    );
    p.js(&set("ends_at", &end)).await;
    p.click("form[data-test=campaign-form] button[type=submit]")
        .await;
    p.until("location.hash === '#/campaigns/double-new' && document.querySelector('[data-test=launch]')").await;
    p.settle().await;
    p.click("[data-test=launch]").await;
    p.until("document.querySelector('dialog[open]')").await;
    let sizes = api.ok("GET", "/v1/segments", None).await;
    let new_size = sizes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "lifecycle:new")
        .unwrap()["size"]
        .clone();
    let dialog = p.text_of("dialog[open]").await;
    assert!(
        dialog.contains(&format!("about {} members", en(&new_size))),
        "{dialog}"
    );
    p.click("dialog[open] button:not(.secondary)").await;
    p.until("document.querySelector('[data-test=campaign-status]').textContent === 'Running'")
        .await;
    let campaign = api.ok("GET", "/v1/campaigns/double-new", None).await;
    let split = &campaign["audience_size"];
    assert_eq!(
        p.text_of("[data-test=audience-size]").await,
        format!(
            "{} treatment, {} holdout",
            split["treatment"], split["holdout"]
        )
    );
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (i, m) in ["ada", "bob", "hostile", "cy"].iter().enumerate() {
        api.buy(m, &format!("C-{i}"), 3_000, &now).await;
    }
    p.open("#/campaigns/double-new").await;
    p.until("document.querySelector('[data-test=results]')")
        .await;
    let results = api
        .ok("GET", "/v1/campaigns/double-new/results", None)
        .await;
    for (group, field) in [
        ("treatment", "members"),
        ("treatment", "converted"),
        ("holdout", "members"),
        ("holdout", "converted"),
    ] {
        assert_eq!(
            p.text_of(&format!("[data-test={group}-{field}]")).await,
            en(&results[group][field]),
            "{group} {field}"
        );
    }
    let verdict = results["verdict"].as_str().unwrap();
    let catalogue_en: Value =
        serde_json::from_str(include_str!("../../console/i18n/en.json")).unwrap();
    assert_eq!(
        p.text_of("[data-test=verdict]").await,
        catalogue_en[format!("verdict.{verdict}")].as_str().unwrap()
    );
    p.shot("campaign-en").await;

    // The member 360 lists ada's part in it, as the API does.
    p.open("#/members/ada").await;
    p.click_tab("Campaigns").await;
    p.until("document.querySelector('[data-test=member-campaigns] tbody tr')")
        .await;
    let mine = api.ok("GET", "/v1/members/ada/campaigns", None).await;
    let row = p.text_of("[data-test=member-campaigns] tbody tr").await;
    let group = if mine["items"][0]["group"] == "treatment" {
        "Treatment"
    } else {
        "Holdout"
    };
    assert!(
        row.contains("Double points for new members") && row.contains(group),
        "{row} vs {mine}"
    );

    // The hostile name is text: the characters show, no element is made from them.
    p.open("#/members/hostile").await;
    assert_eq!(
        p.text_of("[data-test=member-name]").await,
        "<img src=x onerror=alert(1)>"
    );
    assert_eq!(
        p.js("return document.querySelectorAll('main img').length;")
            .await,
        json!(0)
    );

    // Referrals: two referees paid with ada's card, so both wait for review; the queue shows
    // them with the rule, approving pays, rejecting does not, and the funnel says what the API
    // says.
    let code = api.ok("GET", "/v1/members/ada/referral", None).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let card = |member: &str, receipt: &str| {
        json!({"member": {"id": member}, "store_id": "store-1", "receipt_id": receipt,
            "amount": {"value": 3_000, "currency": "USD"}, "occurred_at": now,
            "payment_fingerprint": "card-9"})
    };
    api.ok("POST", "/v1/purchases", Some(card("ada", "P-0")))
        .await;
    for (i, id) in ["dee", "eve"].iter().enumerate() {
        api.ok(
            "POST",
            "/v1/members",
            Some(json!({"id": id, "name": id, "referral_code": code})),
        )
        .await;
        api.ok(
            "POST",
            "/v1/purchases",
            Some(card(id, &format!("P-{}", i + 1))),
        )
        .await;
    }
    p.open("#/referrals").await;
    p.until("document.querySelectorAll('[data-test=referral-queue] tbody tr').length === 2")
        .await;
    let row = p.text_of("tr[data-referee=dee]").await;
    assert!(
        row.contains("ada") && row.contains("Same payment card"),
        "{row}"
    );
    p.shot("referrals-en").await;
    p.click("tr[data-referee=dee] [data-test=approve]").await;
    p.until("document.querySelectorAll('[data-test=referral-queue] tbody tr').length === 1")
        .await;
    p.click("tr[data-referee=eve] [data-test=reject]").await;
    p.until("!document.querySelector('[data-test=referral-queue]')")
        .await;
    for (id, status) in [("dee", "rewarded"), ("eve", "rejected")] {
        let r = api
            .ok("GET", &format!("/v1/members/{id}/referral"), None)
            .await;
        assert_eq!(r["referred_by"]["status"], status, "{id}");
    }
    p.open("#/referrals").await;
    p.until("document.querySelector('[data-test=referral-funnel]')")
        .await;
    let today = chrono::Utc::now().date_naive();
    let funnel = api
        .ok(
            "GET",
            &format!(
                "/v1/analytics/referrals?from={}&to={today}",
                today - chrono::Duration::days(89)
            ),
            None,
        )
        .await["funnel"]
        .clone();
    for stage in ["applied", "qualified", "rewarded", "rejected"] {
        assert_eq!(
            p.text_of(&format!("[data-stage={stage}]")).await,
            en(&funnel[stage]),
            "{stage}"
        );
    }
    assert_eq!(
        (funnel["applied"].clone(), funnel["rewarded"].clone()),
        (json!(2), json!(1))
    );
    // The member 360's Referral tab: support's care task of applying a code a member forgot at
    // enrolment, and an administrator's vanity code.
    p.open("#/members/cy").await;
    p.click_tab("Referral").await;
    p.until("document.querySelector('form[data-test=apply-code]')")
        .await;
    p.fill("form[data-test=apply-code] input", &code.to_lowercase())
        .await;
    p.click("form[data-test=apply-code] button[type=submit]")
        .await;
    p.until("document.querySelector('[data-test=referred-by] a') && !document.querySelector('form[data-test=apply-code]')")
        .await;
    assert!(p.text_of("[data-test=referred-by]").await.contains("ada"));
    p.open("#/members/ada").await;
    p.click_tab("Referral").await;
    p.until("document.querySelector('form[data-test=vanity-code]')")
        .await;
    // An ambiguous character is refused beside the field, then a good code is taken.
    p.fill("form[data-test=vanity-code] input", "ADASTORE")
        .await;
    p.click("form[data-test=vanity-code] button[type=submit]")
        .await;
    p.until("document.querySelector('form[data-test=vanity-code] .field-error')")
        .await;
    assert!(
        p.text_of("form[data-test=vanity-code] .field-error")
            .await
            .contains("'O'")
    );
    // The refused code is the run's second failed request: the browser logs it, nothing else.
    let refused = console_errors(&c).await;
    assert!(
        refused.len() == 1 && refused[0].contains("status of 400"),
        "{refused:#?}"
    );
    p.fill("form[data-test=vanity-code] input", "ADASHARES")
        .await;
    p.click("form[data-test=vanity-code] button[type=submit]")
        .await;
    p.until("document.querySelector('[data-test=referral-code]').textContent === 'ADASHARES'")
        .await;
    p.shot("member-referral-en").await;
    let ada = api.ok("GET", "/v1/members/ada/referral", None).await;
    assert_eq!(
        (ada["code"].clone(), ada["counts"]["applied"].clone()),
        (json!("ADASHARES"), json!(3))
    );

    // Every page in English, then in Chinese with no English UI string left on it.
    let catalogue_zh: Value =
        serde_json::from_str(include_str!("../../console/i18n/zh-CN.json")).unwrap();
    let english: Vec<&str> = catalogue_en
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| catalogue_zh[k.as_str()] != **v && v.as_str().unwrap().len() >= 4)
        .map(|(_, v)| v.as_str().unwrap())
        .collect();
    let pages = [
        "dashboard",
        "members",
        "members/ada",
        "rewards",
        "segments",
        "segments/lifecycle:new",
        "campaigns",
        "campaigns/double-new",
        "retention",
        "activity",
        "referrals",
    ];
    for page in pages {
        p.open(&format!("#/{page}")).await;
        p.shot(&format!("{}-en", page.replace(['/', ':'], "-")))
            .await;
    }
    p.js("localStorage.setItem('loyalty.console.lang', 'zh-CN');")
        .await;
    for page in pages {
        p.open(&format!("#/{page}")).await;
        p.until("document.documentElement.lang === 'zh-CN'").await;
        let text = p.text().await;
        // Text the user put in (names, reasons, ids) is data, not UI.
        let leftover: Vec<&&str> = english
            .iter()
            .filter(|s| {
                text.contains(**s)
                    && !["Tote bag", "Coffee", "Double points for new members"]
                        .iter()
                        .any(|d| d.contains(**s))
            })
            .collect();
        assert!(
            leftover.is_empty(),
            "#/{page} in zh-CN still says {leftover:?}"
        );
        p.shot(&format!("{}-zh-CN", page.replace(['/', ':'], "-")))
            .await;
    }
    p.js("localStorage.setItem('loyalty.console.lang', 'en');")
        .await;

    // 390 px wide: nothing pushes the page sideways.
    c.set_window_size(390, 844).await.unwrap();
    p.open("#/members/ada").await;
    let overflow = p
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the member page is {overflow} px wider than 390 px"
    );
    p.shot("member-390px-en").await;
    c.set_window_size(1280, 800).await.unwrap();

    let errors = console_errors(&c).await;
    assert!(
        errors.is_empty(),
        "browser console errors as admin: {errors:#?}"
    );

    // Predictions: none before a fit; then six members with habits, two nightly runs (the
    // first fits, the second scores), and the page, the member 360 and the dashboard say what
    // the API answers.
    p.open("#/predictions").await;
    assert!(
        p.text().await.contains("No model yet"),
        "{}",
        p.text().await
    );
    // The 404 that says so is the one failed request of this page.
    let logged = console_errors(&c).await;
    assert!(
        logged.len() == 1 && logged[0].contains("/v1/analytics/predictions"),
        "{logged:#?}"
    );
    let start = chrono::Utc::now() - chrono::Duration::days(100);
    let before = (start - chrono::Duration::days(1))
        .format("%Y-%m-%dT09:00:00Z")
        .to_string();
    api.ok("PUT", "/_local/clock", Some(json!({"now": before})))
        .await;
    for k in 0..6i64 {
        let id = format!("habit-{k}");
        api.ok("POST", "/v1/members", Some(json!({"id": id, "name": id})))
            .await;
    }
    for k in 0..6i64 {
        let id = format!("habit-{k}");
        for visit in 0..(2 + k) {
            let at = start + chrono::Duration::days(k + visit * (3 + 2 * k));
            let at = at.format("%Y-%m-%dT10:00:00Z").to_string();
            api.ok("PUT", "/_local/clock", Some(json!({"now": at})))
                .await;
            api.buy(&id, &format!("H-{k}-{visit}"), 1500 + 100 * visit, &at)
                .await;
        }
    }
    api.ok("DELETE", "/_local/clock", None).await;
    for _ in 0..2 {
        api.ok("POST", "/_local/jobs/segments", Some(json!({})))
            .await;
    }
    let fit = api.ok("GET", "/v1/analytics/predictions", None).await;
    p.open("#/predictions").await;
    for risk in ["likely", "possible", "unlikely"] {
        assert_eq!(
            p.text_of(&format!("[data-churn={risk}]")).await,
            en(&fit["churn"][risk]),
            "churn:{risk}"
        );
    }
    assert!(p.text().await.contains("No backtest yet"));
    p.assert_controls_labelled("predictions").await;
    p.shot("predictions-en").await;
    p.click("[data-test=draft-likely]").await;
    p.until("location.hash === '#/campaigns/+new/churn:likely' && document.querySelector('input[name=audience][value=\"churn:likely\"]')")
        .await;
    assert_eq!(
        p.js(
            "return document.querySelector('input[name=audience][value=\"churn:likely\"]').checked;"
        )
        .await,
        json!(true),
        "the draft is aimed at the segment"
    );
    let habit = api.ok("GET", "/v1/members/habit-5", None).await;
    let risk = habit["predictions"]["churn_risk"].as_str().unwrap();
    p.open("#/members/habit-5").await;
    let label = match risk {
        "likely" => "Likely to leave",
        "possible" => "May leave",
        _ => "Unlikely to leave",
    };
    assert_eq!(p.text_of("[data-test=churn-risk]").await, label);
    assert!(
        p.text_of("[data-test=predictions-sentence]")
            .await
            .contains("within 90 days")
    );
    p.open("#/dashboard").await;
    p.until("document.querySelector('[data-kpi=churn_likely]')")
        .await;
    assert_eq!(
        p.text_of("[data-kpi=churn_likely] .value").await,
        en(&fit["churn"]["likely"])
    );

    // The analyst: no write control anywhere, and a forced write answers 403.
    p.c.goto(&format!("{base}/console/?as=analyst#/members/ada"))
        .await
        .unwrap();
    p.settle().await;
    p.until("document.querySelector('[data-test=balance]')")
        .await;
    assert!(p.text_of("[data-test=whoami]").await.contains("Analyst"));
    for (page, absent) in [
        (
            "#/members/ada",
            "form[data-test=adjust], form[data-test=profile], button.danger",
        ),
        (
            "#/rewards",
            "[data-test=new-reward], [data-test=catalog] button",
        ),
        ("#/campaigns", "[data-test=new-campaign]"),
        (
            "#/campaigns/double-new",
            "[data-test=end], [data-test=launch]",
        ),
    ] {
        p.c.goto(&format!(
            "{base}/console/?as=analyst&n={}{page}",
            page.len()
        ))
        .await
        .unwrap();
        p.settle().await;
        assert_eq!(
            p.js(&format!(
                "return document.querySelectorAll('{absent}').length;"
            ))
            .await,
            json!(0),
            "analyst on {page}"
        );
    }
    p.shot("rewards-analyst-en").await;
    let balance = |v: Value| v["available"].as_i64().unwrap();
    let unforced = balance(api.ok("GET", "/v1/members/ada/points", None).await);
    let forced = p
        .c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('config.json?role=analyst').then(r => r.json()).then(cfg =>
               fetch('/v1/members/ada/adjustments', {method: 'POST', headers: {'Authorization': 'Bearer ' + cfg.auth.token,
                 'Content-Type': 'application/json'}, body: JSON.stringify({points: 5, reason: 'forced'})}))
             .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(forced, json!(403));
    assert_eq!(
        balance(api.ok("GET", "/v1/members/ada/points", None).await),
        unforced,
        "the refused write wrote nothing"
    );

    // Support: care for members, no insight pages, no erasure.
    p.c.goto(&format!("{base}/console/?as=support"))
        .await
        .unwrap();
    p.settle().await;
    let nav = p
        .js("return [...document.querySelectorAll('[data-nav]')].map(a => a.dataset.nav);")
        .await;
    // The review queue is every operator's to see; the funnel is insight, the verdict admin's.
    assert_eq!(nav, json!(["members", "rewards", "referrals"]));
    p.c.goto(&format!("{base}/console/?as=support#/referrals"))
        .await
        .unwrap();
    p.until("document.querySelector('main h3')").await;
    assert_eq!(
        p.js("return document.querySelectorAll('[data-test=referral-funnel], [data-test=approve]').length;")
            .await,
        json!(0)
    );
    p.c.goto(&format!("{base}/console/?as=support#/members/ada"))
        .await
        .unwrap();
    p.until("document.querySelector('form[data-test=adjust]')")
        .await;
    assert_eq!(
        p.js("return document.querySelectorAll('main button.danger').length;")
            .await,
        json!(0)
    );
    c.close().await.unwrap();

    // A browser that prefers Chinese starts in Chinese.
    let zh = start_browser(&mut procs, "zh-CN").await;
    zh.goto(&format!("{base}/console/#/members")).await.unwrap();
    let pz = Page {
        c: &zh,
        base: base.clone(),
        screens: screens_dir(),
        loads: Default::default(),
    };
    pz.until("document.documentElement.lang === 'zh-CN'").await;
    assert!(pz.text().await.contains("会员"));
    zh.close().await.unwrap();
}

#[test]
fn console_catalogues_have_the_same_keys_and_every_key_the_code_uses() {
    let en: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("../../console/i18n/en.json")).unwrap();
    let zh: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("../../console/i18n/zh-CN.json")).unwrap();
    let missing_zh: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
    let missing_en: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
    assert!(
        missing_zh.is_empty() && missing_en.is_empty(),
        "zh-CN lacks {missing_zh:?}; en lacks {missing_en:?}"
    );
    // Every literal key in the code (t('a.b')) is in the catalogue.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
    let mut files = vec![dir.join("app.js")];
    for sub in ["lib", "pages"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    let mut unknown = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        for (at, _) in src.match_indices("t('") {
            // A call of t itself, not of get( or set(.
            if src[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            {
                continue;
            }
            let key = src[at + 3..].split('\'').next().unwrap();
            if !en.contains_key(key) {
                unknown.push(format!("{}: {key}", f.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "keys used but not in the catalogues: {unknown:#?}"
    );
}

#[test]
fn console_vendor_files_match_their_recorded_sha256() {
    use sha2::Digest;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/vendor");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut checked = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let file = line.split('`').nth(1).unwrap();
        let recorded = line.trim_end_matches(" |").rsplit('`').nth(1).unwrap();
        let actual = hex::encode(sha2::Sha256::digest(std::fs::read(dir.join(file)).unwrap()));
        assert_eq!(actual, recorded, "{file}");
        checked += 1;
    }
    assert!(checked >= 1, "no vendored file listed");
    // Every file in vendor/ is listed (licences and this README aside).
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".js") {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in vendor/README.md"
            );
        }
    }
}

#[test]
fn console_assets_are_at_most_400_kb_gzipped() {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
    let mut total = 0usize;
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&std::fs::read(&p).unwrap()).unwrap();
                total += gz.finish().unwrap().len();
            }
        }
    }
    println!("console assets: {total} bytes gzipped");
    assert!(total <= 400 * 1024, "{total} bytes gzipped");
}
