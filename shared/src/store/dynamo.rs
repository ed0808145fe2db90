//! The DynamoDB backend: one table, keys `PK`/`SK`, sparse keys-only indexes `GSI1` … `GSI8`.
//! A batch of one write is a conditional `PutItem`/`DeleteItem`; larger batches are one
//! `TransactWriteItems`. Reads are strongly consistent (`GetItem`, `BatchGetItem`, `Query`);
//! index queries are eventually consistent, as DynamoDB allows no other.

use super::{
    CAP, Cond, Index, IndexPosition, Item, Key, MAX_BATCH, PK, Range, SK, SortKey, Store,
    StoreError, StoreResult, USED, VERSION, Write, validate_batch,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

type Attrs = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(e)
}

/// Maps an SDK failure to the store's vocabulary by its error code, so every operation shares one
/// notion of "retry", "unavailable" and "broken".
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            StoreError::Unavailable(format!("DynamoDB unreachable: {e:?}"))
        }
        SdkError::ServiceError(se) => match se.err().code() {
            Some("ConditionalCheckFailedException") => {
                StoreError::ConditionFailed { index: Some(0) }
            }
            Some(
                "TransactionConflictException"
                | "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TransactionInProgressException",
            ) => StoreError::Conflict,
            Some("ResourceNotFoundException") => StoreError::Unavailable(format!(
                "table not found: {}",
                se.err().message().unwrap_or_default()
            )),
            code => StoreError::Backend {
                what: format!(
                    "{}: {}",
                    code.unwrap_or("unknown"),
                    se.err().message().unwrap_or_default()
                ),
                cause: Some(super::Cause::new(e)),
            },
        },
        _ => StoreError::backend(e),
    }
}

fn key_attrs(k: &Key) -> Attrs {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(k.pk.clone())),
        (SK.to_owned(), AttributeValue::S(k.sk.clone())),
    ])
}

fn to_attrs(item: &Item) -> StoreResult<Attrs> {
    let mut m = item.attrs.clone();
    m.insert(PK.into(), Value::String(item.key.pk.clone()));
    m.insert(SK.into(), Value::String(item.key.sk.clone()));
    serde_dynamo::to_item(m).map_err(backend)
}

fn from_attrs(a: Attrs) -> StoreResult<Item> {
    let mut m: Map<String, Value> = serde_dynamo::from_item(a).map_err(backend)?;
    let pk = m.remove(PK).and_then(|v| v.as_str().map(str::to_owned));
    let sk = m.remove(SK).and_then(|v| v.as_str().map(str::to_owned));
    match (pk, sk) {
        (Some(pk), Some(sk)) => Ok(Item {
            key: Key { pk, sk },
            attrs: m,
        }),
        _ => Err(StoreError::broken("item without PK/SK")),
    }
}

fn s(a: &Attrs, name: &str) -> Option<String> {
    a.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// What a cancelled transaction means, from its per-item reasons: a failed condition (and
/// which), a race or throttle worth retrying, or a deterministic refusal (validation, size) that
/// no retry can change.
fn cancellation(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> StoreError {
    if let Some(i) = reasons
        .iter()
        .position(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return StoreError::ConditionFailed { index: Some(i) };
    }
    if reasons.is_empty() {
        return StoreError::ConditionFailed { index: None };
    }
    let transient = |c: &str| {
        matches!(
            c,
            "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded"
        )
    };
    if reasons.iter().any(|r| r.code().is_some_and(transient)) {
        return StoreError::Conflict;
    }
    let why = reasons
        .iter()
        .filter(|r| r.code().is_some_and(|c| c != "None"))
        .map(|r| format!("{}: {}", r.code().unwrap_or(""), r.message().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ");
    StoreError::Invalid(format!("transaction refused: {why}"))
}

/// A condition as DynamoDB expression text plus its names and values.
struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: Attrs,
}

/// Sets a condition expression on any of the SDK's write builders (`Put`, `Delete`,
/// `ConditionCheck`, `Update`: the same three setters on four types with no common trait).
/// DynamoDB refuses an empty value map, so none is sent when the expression has no values.
macro_rules! conditioned {
    ($builder:expr, $e:expr) => {{
        let e: Expr = $e;
        $builder
            .condition_expression(e.text)
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values((!e.values.is_empty()).then_some(e.values))
    }};
}

fn condition(c: &Cond) -> Option<Expr> {
    let names = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    match c {
        Cond::Always => None,
        Cond::Absent => Some(Expr {
            text: "attribute_not_exists(#pk)".into(),
            names: names(&[("#pk", PK)]),
            values: HashMap::new(),
        }),
        Cond::Exists => Some(Expr {
            text: "attribute_exists(#pk)".into(),
            names: names(&[("#pk", PK)]),
            values: HashMap::new(),
        }),
        Cond::Version(n) => Some(Expr {
            text: "#v = :v".into(),
            names: names(&[("#v", super::VERSION)]),
            values: HashMap::from([(":v".into(), AttributeValue::N(n.to_string()))]),
        }),
        Cond::AbsentOrExpiredBefore(t) => Some(Expr {
            text: "attribute_not_exists(#pk) OR #e < :t".into(),
            names: names(&[("#pk", PK), ("#e", super::EXPIRES_AT)]),
            values: HashMap::from([(":t".into(), AttributeValue::N(t.to_string()))]),
        }),
    }
}

/// A take as an update in place: `ADD` to the counter and the version, conditioned on the cap
/// and the counter's bounds ([`Write::take_bounds`]).
fn take_expr(amount: i64, cap: i64) -> (String, Expr) {
    let (lo, hi) = Write::take_bounds(amount, cap);
    let n = |v: i64| AttributeValue::N(v.to_string());
    (
        "ADD #u :a, #v :one".into(),
        Expr {
            text: "#c = :c AND #u BETWEEN :lo AND :hi".into(),
            names: HashMap::from([
                ("#u".into(), USED.into()),
                ("#v".into(), VERSION.into()),
                ("#c".into(), CAP.into()),
            ]),
            values: HashMap::from([
                (":a".into(), n(amount)),
                (":one".into(), n(1)),
                (":c".into(), n(cap)),
                (":lo".into(), n(lo)),
                (":hi".into(), n(hi)),
            ]),
        },
    )
}

fn sort_condition(sk_attr: &str, sort: &SortKey) -> (String, HashMap<String, String>, Attrs) {
    let mut names = HashMap::from([("#pk".to_owned(), String::new())]);
    let mut values = HashMap::new();
    let text = match sort {
        SortKey::All => "#pk = :pk".to_owned(),
        SortKey::Prefix(p) => {
            names.insert("#sk".into(), sk_attr.into());
            values.insert(":s".into(), AttributeValue::S(p.clone()));
            "#pk = :pk AND begins_with(#sk, :s)".to_owned()
        }
        SortKey::Before(b) => {
            names.insert("#sk".into(), sk_attr.into());
            values.insert(":s".into(), AttributeValue::S(b.clone()));
            "#pk = :pk AND #sk < :s".to_owned()
        }
        SortKey::Between(lo, hi) => {
            names.insert("#sk".into(), sk_attr.into());
            values.insert(":s".into(), AttributeValue::S(lo.clone()));
            values.insert(":t".into(), AttributeValue::S(hi.clone()));
            "#pk = :pk AND #sk BETWEEN :s AND :t".to_owned()
        }
    };
    (text, names, values)
}

/// A DER certificate as PEM (RFC 7468: base64 in lines of 64).
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The SDK's HTTPS client (rustls with aws-lc, as its default) trusting the Mozilla root
/// certificates compiled into the binary (`webpki-root-certs`) instead of the platform's: the
/// default reads and parses every file under `/etc/ssl/certs` at start-up, which was most of a
/// function's cold start (DESIGN.md "Operational defaults").
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let mut roots = tls::TrustStore::empty().with_native_roots(false);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        roots = roots.with_pem_certificate(pem(cert.as_ref()));
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .expect("a TLS context of valid root certificates");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// A client from the standard SDK configuration (region, credentials, and
    /// `AWS_ENDPOINT_URL_DYNAMODB` for emulators). Build it once per process, never per request.
    ///
    /// The SDK does not retry: throttles and conflicts come back as [`StoreError::Conflict`] and
    /// the service layer retries them once, with backoff inside the request's budget. Timeouts
    /// are explicit and well below the functions' 10 s timeout, so a stuck call fails as 503
    /// instead of the invocation timing out.
    pub async fn from_env(table: impl Into<String>) -> Self {
        Self::from_env_with_timeout(table, std::time::Duration::from_secs(2)).await
    }

    /// As [`DynamoStore::from_env`], with another per-call timeout (an emulator on a small
    /// machine under a 170-writer proof needs more than AWS does).
    pub async fn from_env_with_timeout(
        table: impl Into<String>,
        call_timeout: std::time::Duration,
    ) -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use std::time::Duration;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(call_timeout)
                    .operation_timeout(call_timeout)
                    .build(),
            )
            .load()
            .await;
        DynamoStore::new(Client::new(&config), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table as `template.yaml` declares it (for emulators and local development;
    /// in AWS the SAM template owns the table). An existing table is left as it is.
    pub async fn ensure_table(&self) -> StoreResult<()> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(classify(e)),
        }
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .map_err(backend)
        };
        let mut req = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .attribute_definitions(attr(PK)?)
            .attribute_definitions(attr(SK)?);
        let mut defined = std::collections::BTreeSet::new();
        for ix in Index::ALL {
            // Several indexes share a sort-key attribute; each is defined once.
            for a in [ix.pk_attr(), ix.sk_attr()] {
                if defined.insert(a) {
                    req = req.attribute_definitions(attr(a)?);
                }
            }
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(ix.name())
                    .key_schema(key(ix.pk_attr(), KeyType::Hash)?)
                    .key_schema(key(ix.sk_attr(), KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .map_err(backend)?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            // Another process created it in the meantime.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(classify(e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(super::EXPIRES_AT)
                    .enabled(true)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    fn transact_item(&self, w: Write) -> StoreResult<TransactWriteItem> {
        let b = TransactWriteItem::builder();
        Ok(match w {
            Write::Put { item, cond } => {
                let mut p = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(&item)?));
                if let Some(e) = condition(&cond) {
                    p = conditioned!(p, e);
                }
                b.put(p.build().map_err(backend)?).build()
            }
            Write::Delete { key, cond } => {
                let mut d = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(&key)));
                if let Some(e) = condition(&cond) {
                    d = conditioned!(d, e);
                }
                b.delete(d.build().map_err(backend)?).build()
            }
            Write::Check { key, cond } => {
                let e = condition(&cond)
                    .ok_or_else(|| StoreError::Invalid("a check needs a condition".into()))?;
                let c = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(&key)));
                let c = conditioned!(c, e).build().map_err(backend)?;
                b.condition_check(c).build()
            }
            Write::Take { key, amount, cap } => {
                let (update, e) = take_expr(amount, cap);
                let u = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(&key)))
                    .update_expression(update);
                let u = conditioned!(u, e).build().map_err(backend)?;
                b.update(u).build()
            }
            Write::Add { key, amounts } => {
                let mut update = String::from("ADD #v :one");
                let mut u = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(&key)))
                    .expression_attribute_names("#v", VERSION)
                    .expression_attribute_values(":one", AttributeValue::N("1".into()));
                for (i, (attr, amount)) in amounts.into_iter().enumerate() {
                    update.push_str(&format!(", #a{i} :a{i}"));
                    u = u
                        .expression_attribute_names(format!("#a{i}"), attr)
                        .expression_attribute_values(
                            format!(":a{i}"),
                            AttributeValue::N(amount.to_string()),
                        );
                }
                let u = u.update_expression(update).build().map_err(backend)?;
                b.update(u).build()
            }
        })
    }

    async fn commit_one(&self, w: Write) -> StoreResult<()> {
        match w {
            Write::Put { item, cond } => {
                let mut req = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(&item)?));
                if let Some(e) = condition(&cond) {
                    req = req
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(
                            (!e.values.is_empty()).then_some(e.values),
                        );
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
            Write::Delete { key, cond } => {
                let mut req = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(&key)));
                if let Some(e) = condition(&cond) {
                    req = req
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(
                            (!e.values.is_empty()).then_some(e.values),
                        );
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
            // A check, or a take alone (in practice takes ride in a purchase's or a
            // redemption's transaction): one path for their conditions.
            w @ (Write::Check { .. } | Write::Take { .. } | Write::Add { .. }) => {
                self.commit_transaction(vec![w]).await
            }
        }
    }

    /// One BatchGetItem's worth of keys (at most [`MAX_BATCH`]), with its unprocessed keys
    /// asked again.
    async fn get_chunk(&self, chunk: &[Key]) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        let mut pending: Vec<Attrs> = chunk.iter().map(key_attrs).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            if rounds > 10 {
                return Err(StoreError::Conflict);
            }
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(backend)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(classify)?;
            for a in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                found.push(from_attrs(a)?);
            }
            if let Some(mut u) = out.unprocessed_keys
                && let Some(ka) = u.remove(&self.table)
            {
                pending = ka.keys;
            }
        }
        Ok(found)
    }

    async fn commit_transaction(&self, writes: Vec<Write>) -> StoreResult<()> {
        let items = writes
            .into_iter()
            .map(|w| self.transact_item(w))
            .collect::<StoreResult<Vec<_>>>()?;
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() {
                    return Err(cancellation(tc.cancellation_reasons()));
                }
                Err(classify(e))
            }
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Item>>> {
        if let [key] = keys {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            return Ok(vec![out.item.map(from_attrs).transpose()?]);
        }
        // The chunks of a long read go at once: one round trip, however many keys.
        let chunks =
            futures::future::try_join_all(keys.chunks(MAX_BATCH).map(|c| self.get_chunk(c)))
                .await?;
        let mut found: HashMap<Key, Item> = chunks
            .into_iter()
            .flatten()
            .map(|item| (item.key.clone(), item))
            .collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    async fn query_range(
        &self,
        pk: &str,
        range: Range<'_>,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Item>, bool)> {
        let (text, mut names, mut values) = sort_condition(SK, range.sort);
        names.insert("#pk".into(), PK.into());
        values.insert(":pk".into(), AttributeValue::S(pk.to_owned()));
        let start = after.map(|sk| key_attrs(&Key::new(pk, sk)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(text)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!range.descending)
            .consistent_read(true)
            .limit(range.limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let more_beyond = out.last_evaluated_key.is_some();
        let mut items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attrs)
            .collect::<StoreResult<Vec<_>>>()?;
        let more = items.len() > range.limit as usize || more_beyond;
        items.truncate(range.limit as usize);
        Ok((items, more))
    }

    async fn query_index_range(
        &self,
        index: Index,
        pk: &str,
        range: Range<'_>,
        after: Option<&IndexPosition>,
    ) -> StoreResult<(Vec<IndexPosition>, bool)> {
        let (text, mut names, mut values) = sort_condition(index.sk_attr(), range.sort);
        names.insert("#pk".into(), index.pk_attr().into());
        values.insert(":pk".into(), AttributeValue::S(pk.to_owned()));
        let start = after.map(|a| {
            let mut k = key_attrs(&a.key);
            k.insert(index.pk_attr().into(), AttributeValue::S(pk.to_owned()));
            k.insert(index.sk_attr().into(), AttributeValue::S(a.isk.clone()));
            k
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index.name())
            .key_condition_expression(text)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!range.descending)
            .limit(range.limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let more_beyond = out.last_evaluated_key.is_some();
        let mut rows = Vec::new();
        for a in out.items.unwrap_or_default() {
            let (Some(tpk), Some(tsk), Some(isk)) = (s(&a, PK), s(&a, SK), s(&a, index.sk_attr()))
            else {
                return Err(StoreError::broken("index entry without keys"));
            };
            rows.push(IndexPosition {
                isk,
                key: Key::new(tpk, tsk),
            });
        }
        let more = rows.len() > range.limit as usize || more_beyond;
        rows.truncate(range.limit as usize);
        Ok((rows, more))
    }

    async fn scan(
        &self,
        segment: u32,
        total: u32,
        after: Option<&Key>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, Option<Key>)> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .segment(segment as i32)
            .total_segments(total as i32)
            .consistent_read(true)
            .limit(limit as i32)
            .set_exclusive_start_key(after.map(key_attrs))
            .send()
            .await
            .map_err(classify)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attrs)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = match out.last_evaluated_key {
            Some(k) => match (s(&k, PK), s(&k, SK)) {
                (Some(pk), Some(sk)) => Some(Key::new(pk, sk)),
                _ => return Err(StoreError::broken("scan position without keys")),
            },
            None => None,
        };
        Ok((items, next))
    }

    async fn commit(&self, mut writes: Vec<Write>) -> StoreResult<()> {
        validate_batch(&writes)?;
        if writes.len() == 1 {
            return self.commit_one(writes.remove(0)).await;
        }
        self.commit_transaction(writes).await
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn every_compiled_in_root_reads_back_from_its_pem_as_the_same_certificate() {
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(roots.len() > 100, "{} roots", roots.len());
        for der in roots {
            let text = super::pem(der.as_ref());
            let back = CertificateDer::from_pem_slice(text.as_bytes()).expect("valid PEM");
            assert_eq!(back.as_ref(), der.as_ref());
        }
        // The TLS context accepts them all.
        let _ = super::https_client();
    }
}
