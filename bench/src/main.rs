//! `cargo run --release -p loyalty-bench`: drives `loyalty-local` (the real router, dev
//! authorizer and a durable embedded store in a temp dir) over a real socket and prints
//! throughput, latency percentiles and counted store round trips per operation, then times a
//! birthday run over a large membership and counts the items it reads, and the segments run.
//! `coldstart` times a function binary's cold start instead (see `coldstart.rs`).

use chrono::{Duration, Utc};
use clap::Parser;
use futures::StreamExt;
use loyalty::clock::TestClock;
use loyalty::domain::member::Member;
use loyalty::domain::{Birthday, MemberId};
use loyalty::service::Services;
use loyalty::store::{CountingStore, EmbeddedStore, RoundTrips, Store};
use loyalty::table::Batch;
use loyalty_local::auth::{DevAuth, Role};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Members seeded per commit: each brings its own write and may move up to three segment
/// sizes' shards (one add per shard), so 25 stay within a transaction's 100 actions.
pub(crate) const SEED_CHUNK: usize = 25;

mod coldstart;
mod scale;

#[derive(clap::Subcommand)]
enum Cmd {
    /// Start a release function binary under a local Lambda Runtime API and time its cold start.
    Coldstart {
        /// The function binary (e.g. target/release/accrual).
        #[arg(long)]
        binary: std::path::PathBuf,
        /// The event handed to it (e.g. events/accrual/purchase-by-id.201.json).
        #[arg(long)]
        event: std::path::PathBuf,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The table on the emulator (created if missing).
        #[arg(long, default_value = "loyalty-coldstart")]
        table: String,
    },
}

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Purchases to post.
    #[arg(long, default_value_t = 4000)]
    purchases: usize,
    /// Redemptions to make.
    #[arg(long, default_value_t = 2000)]
    redemptions: usize,
    /// Members the purchases and redemptions are spread over.
    #[arg(long, default_value_t = 500)]
    members: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Members in the birthday run.
    #[arg(long, default_value_t = 100_000)]
    birthday_members: usize,
    /// Members in the segments run.
    #[arg(long, default_value_t = 100_000)]
    segment_members: usize,
    /// Members whose events the daily fold reads.
    #[arg(long, default_value_t = 100_000)]
    daily_members: usize,
    /// Events of the day the daily fold reads.
    #[arg(long, default_value_t = 1_000_000)]
    daily_events: usize,
    /// Members in the points job run.
    #[arg(long, default_value_t = 100_000)]
    points_members: usize,
    /// Run a scale scenario of the heat model instead (`peak`, `flash`, `night`): every partition key's busiest
    /// second against DynamoDB's per-key limits; exits 1 when a key is over.
    #[arg(long)]
    scenario: Option<Scenario>,
    /// Purchases per simulated second in the peak scenario.
    #[arg(long, default_value_t = 1_000)]
    peak_rate: usize,
    /// Simulated seconds of the peak scenario.
    #[arg(long, default_value_t = 3)]
    peak_seconds: u64,
    /// Members of the peak scenario.
    #[arg(long, default_value_t = 20_000)]
    peak_members: usize,
    /// The purchase rate the peak figures are scaled to.
    #[arg(long, default_value_t = 10_000)]
    peak_target_rate: usize,
    /// Members of each population of the night scenario (scaled to 10,000,000).
    #[arg(long, default_value_t = 100_000)]
    night_members: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Scenario {
    /// 10,000 purchases/s with ten campaigns awarding and 500 redemptions/s.
    Peak,
    /// One reward with 1,000 in stock, 50,000 members redeeming within 10 seconds.
    Flash,
    /// The nightly jobs at 10,000,000 members, from a scaled model.
    Night,
}

struct Phase {
    name: &'static str,
    ops: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    reads: u64,
    writes: u64,
    write_units: u64,
}

impl Phase {
    fn print(&mut self) {
        self.latencies_ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            self.latencies_ms[((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize]
        };
        println!(
            "{:<12} {:>7} ops  {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  store round trips/op: {:.2} reads + {:.2} writes, {:.2} table write units",
            self.name,
            self.ops,
            self.ops as f64 / self.seconds,
            pct(0.50),
            pct(0.99),
            self.reads as f64 / self.ops as f64,
            self.writes as f64 / self.ops as f64,
            self.write_units as f64 / self.ops as f64,
        );
    }
}

type Request = (String, String, serde_json::Value, Option<String>);

async fn phase(
    name: &'static str,
    counts: &RoundTrips,
    concurrency: usize,
    requests: Vec<Request>,
    base: &str,
    client: &reqwest::Client,
) -> Phase {
    let (r0, w0, _) = counts.snapshot();
    let u0 = counts
        .write_units
        .load(std::sync::atomic::Ordering::Relaxed);
    let ops = requests.len();
    let start = Instant::now();
    let latencies: Vec<f64> = futures::stream::iter(requests)
        .map(|(path, token, body, key)| {
            let client = client.clone();
            let url = format!("{base}{path}");
            async move {
                let t = Instant::now();
                let mut req = client.post(url).bearer_auth(token).json(&body);
                if let Some(k) = key {
                    req = req.header("Idempotency-Key", k);
                }
                let res = req.send().await.expect("request");
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                assert!(status.is_success(), "{status}: {text}");
                t.elapsed().as_secs_f64() * 1000.0
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let (r1, w1, _) = counts.snapshot();
    let u1 = counts
        .write_units
        .load(std::sync::atomic::Ordering::Relaxed);
    Phase {
        name,
        ops,
        seconds,
        latencies_ms: latencies,
        reads: r1 - r0,
        writes: w1 - w0,
        write_units: u1 - u0,
    }
}

/// Serves `loyalty-local`'s app over `services` on a free local port: its base URL and the
/// authorizer whose tokens it takes.
async fn serve(services: &Services, clock: Arc<TestClock>) -> (String, Arc<DevAuth>) {
    let auth = Arc::new(DevAuth::from_secret(b"bench"));
    let app = loyalty_local::app(services.clone(), clock, auth.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, auth)
}

/// Admin enrolments of members `<prefix>0` … `<prefix>{n-1}`.
fn enrolments(prefix: &str, n: usize, admin: &str) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let body = json!({"id": format!("{prefix}{i}"), "name": "Bench"});
            ("/v1/members".to_owned(), admin.to_owned(), body, None)
        })
        .collect()
}

/// `args.purchases` purchases at `at` spread over the members `<member>0…`, receipts
/// `<receipt>0…`, amounts 19.99 to 24.98.
fn purchases(
    member: &str,
    receipt: &str,
    args: &Args,
    pos: &str,
    at: chrono::DateTime<Utc>,
) -> Vec<Request> {
    (0..args.purchases)
        .map(|i| {
            let body = json!({"member": {"id": format!("{member}{}", i % args.members)}, "store_id": "store-1",
                "receipt_id": format!("{receipt}{i}"), "amount": {"value": 1999 + (i % 500) as i64, "currency": "USD"},
                "occurred_at": at.to_rfc3339()});
            ("/v1/purchases".to_owned(), pos.to_owned(), body, None)
        })
        .collect()
}

/// What one timed operation cost, counted by the store wrapper.
struct Cost {
    secs: f64,
    read_trips: u64,
    commits: u64,
    items_read: u64,
    items_written: u64,
}

/// Runs `op` once and counts what it cost.
async fn measured<T>(counts: &RoundTrips, op: impl Future<Output = T>) -> (T, Cost) {
    let written = || {
        counts
            .items_written
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let ((r0, w0, i0), iw0, t) = (counts.snapshot(), written(), Instant::now());
    let out = op.await;
    let secs = t.elapsed().as_secs_f64();
    let (r1, w1, i1) = counts.snapshot();
    let cost = Cost {
        secs,
        read_trips: r1 - r0,
        commits: w1 - w0,
        items_read: i1 - i0,
        items_written: written() - iw0,
    };
    (out, cost)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(Cmd::Coldstart {
        binary,
        event,
        runs,
        table,
    }) = &args.command
    {
        coldstart::run(binary, event, *runs, table).await;
        return;
    }
    if let Some(Scenario::Peak) = args.scenario {
        let ok = scale::peak(scale::Peak {
            rate: args.peak_rate,
            seconds: args.peak_seconds,
            members: args.peak_members,
            target_rate: args.peak_target_rate,
        })
        .await;
        std::process::exit(if ok { 0 } else { 1 });
    }
    if let Some(Scenario::Flash) = args.scenario {
        let ok = scale::flash(scale::Flash {
            stock: 1_000,
            members: 50_000,
            seconds: 10,
        })
        .await;
        std::process::exit(if ok { 0 } else { 1 });
    }
    if let Some(Scenario::Night) = args.scenario {
        let ok = scale::night(scale::Night {
            members: args.night_members,
            target: 10_000_000,
            sample: 100_000,
        })
        .await;
        std::process::exit(if ok { 0 } else { 1 });
    }
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::new(EmbeddedStore::open(&dir.path().join("bench.redb")).unwrap());
    let counts = store.counts.clone();
    let store: Arc<dyn Store> = Arc::new(store);
    let clock = Arc::new(TestClock::default());
    let services = Services::new(store.clone(), Default::default(), clock.clone());
    let (base, auth) = serve(&services, clock).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let admin = auth.mint(&Role::Admin);
    let pos = auth.mint(&Role::Pos("store-1".into()));

    println!(
        "loyalty-local, durable embedded store, {} requests in flight over {base}",
        args.concurrency
    );
    let enrol = enrolments("m", args.members, &admin);
    phase("enrol", &counts, args.concurrency, enrol, &base, &client)
        .await
        .print();

    let now = Utc::now();
    let first = purchases("m", "R", &args, &pos, now - Duration::seconds(60));
    phase("purchase", &counts, args.concurrency, first, &base, &client)
        .await
        .print();

    // Referrals: a quarter of the members each refer one new member (f<i> applies m<i>'s code
    // at enrolment); the referees' purchases below the minimum spend read nothing more, their
    // qualifying purchases once more (the referral, the referrer, the referrer's counts).
    let referees = (args.members / 4).max(1);
    let mut with_code = Vec::new();
    for i in 0..referees {
        let referrer = MemberId::parse(&format!("m{i}")).unwrap();
        let code = services.referrals.referral(&referrer).await.unwrap().code;
        let body = json!({"id": format!("f{i}"), "name": "Bench", "referral_code": code});
        with_code.push(("/v1/members".to_owned(), admin.clone(), body, None));
    }
    phase(
        "enrol+code",
        &counts,
        args.concurrency,
        with_code,
        &base,
        &client,
    )
    .await
    .print();
    let referee_buys = |receipt: &str, value: i64| -> Vec<Request> {
        (0..referees)
            .map(|i| {
                let body = json!({"member": {"id": format!("f{i}")}, "store_id": "store-1",
                    "receipt_id": format!("{receipt}{i}"), "amount": {"value": value, "currency": "USD"},
                    "occurred_at": (now - Duration::seconds(50)).to_rfc3339()});
                ("/v1/purchases".to_owned(), pos.clone(), body, None)
            })
            .collect()
    };
    phase(
        "referred",
        &counts,
        args.concurrency,
        referee_buys("FA", 1500),
        &base,
        &client,
    )
    .await
    .print();
    phase(
        "qualifying",
        &counts,
        args.concurrency,
        referee_buys("FB", 2500),
        &base,
        &client,
    )
    .await
    .print();

    // The same purchases again with the most campaigns that may run at once, every member in
    // every audience and in treatment for 90 % of them: each purchase reads the registry, ten
    // campaigns and ten assignments in its one batch read, and awards on all ten.
    let start = (now - Duration::hours(1)).to_rfc3339();
    let end = (now + Duration::days(30)).to_rfc3339();
    let t = Instant::now();
    for c in 0..loyalty::service::campaigns::MAX_RUNNING {
        let body = json!({"name": format!("bench {c}"), "audience": ["tier:silver"],
            "starts_at": start, "ends_at": end, "offer": {"kind": "bonus", "points": 1},
            "budget_points": 1_000_000_000, "holdout_percent": 10});
        for (method, path, body) in [
            ("PUT", format!("/v1/campaigns/bench-{c}"), Some(body)),
            (
                "POST",
                format!("/v1/campaigns/bench-{c}/launch"),
                Some(json!({})),
            ),
        ] {
            let r = client
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    println!(
        "campaigns    launched {} campaigns over {} members each in {:.2} s",
        loyalty::service::campaigns::MAX_RUNNING,
        args.members + referees,
        t.elapsed().as_secs_f64()
    );
    let again = purchases("m", "C", &args, &pos, now - Duration::seconds(30));
    // One purchase first: this process learns which campaigns run (a second read, once).
    let (warm, rest) = again.split_at(1);
    phase("warm", &counts, 1, warm.to_vec(), &base, &client).await;
    phase(
        "purchase+10c",
        &counts,
        args.concurrency,
        rest.to_vec(),
        &base,
        &client,
    )
    .await
    .print();

    let reward = client
        .put(format!("{base}/v1/rewards/bench-coffee"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Coffee", "cost_points": 1}))
        .send()
        .await
        .unwrap();
    assert!(reward.status().is_success());
    let redemptions: Vec<Request> = (0..args.redemptions)
        .map(|i| {
            let m = format!("m{}", i % args.members);
            let token = auth.mint(&Role::Member(m.clone()));
            (
                format!("/v1/members/{m}/redemptions"),
                token,
                json!({"reward_id": "bench-coffee"}),
                Some(format!("bench-{i}")),
            )
        })
        .collect();
    phase(
        "redemption",
        &counts,
        args.concurrency,
        redemptions,
        &base,
        &client,
    )
    .await
    .print();

    // Birthday run. Members are seeded 100 to a commit (a bench shortcut; the API enrols one at a
    // time), birthdays spread evenly over the year, all on file long enough.
    let seed_start = Instant::now();
    let day0: chrono::NaiveDate = "2026-01-01".parse().unwrap();
    let long_ago = Utc::now() - Duration::days(400);
    let ids: Vec<usize> = (0..args.birthday_members).collect();
    for chunk in ids.chunks(SEED_CHUNK) {
        let mut batch = Batch::new();
        for i in chunk {
            let mut m = Member::new(
                MemberId::parse(&format!("b{i}")).unwrap(),
                "B".into(),
                long_ago,
            );
            let d = day0 + Duration::days((*i % 365) as i64);
            m.birthday = Some(Birthday::parse(&d.format("%m-%d").to_string()).unwrap());
            m.birthday_set_on = Some(long_ago.date_naive());
            batch.save_member(None, &mut m).unwrap();
        }
        services.ctx.table.commit(batch).await.unwrap();
    }
    println!(
        "birthday     seeded {} members in {:.1} s",
        args.birthday_members,
        seed_start.elapsed().as_secs_f64()
    );
    let (run, c) = measured(
        &counts,
        services
            .birthdays
            .birthday_gifts("2026-07-01T12:00:00Z".parse().unwrap()),
    )
    .await;
    let run = run.unwrap();
    println!(
        "birthday     run over {} members: {:.2} s, {} items read = {:.2}% of members ({} read round trips, {} commits); {:?}",
        args.birthday_members,
        c.secs,
        c.items_read,
        100.0 * c.items_read as f64 / args.birthday_members as f64,
        c.read_trips,
        c.commits,
        run
    );

    // The segments run gets a store of its own, so the birthday members do not count.
    let store = CountingStore::new(EmbeddedStore::open(&dir.path().join("segments.redb")).unwrap());
    let counts = store.counts.clone();
    let services = Services::new(
        Arc::new(store),
        Default::default(),
        Arc::new(TestClock::default()),
    );
    segments_run(&services, &counts, args.segment_members).await;
    campaign_launch(&services, &counts, args.segment_members).await;
    points_run(&args).await;
    daily_run(args.daily_members, args.daily_events).await;
}

/// The nightly fold of one day's events into the daily series, in a store of its own: the
/// day's events are seeded as event carriers (5 events each, a bench shortcut: in service they
/// ride on ledger lines and carriers alike, and the fold reads both the same way, through the
/// hour partitions of GSI3), spread over `members` members and the 24 hours.
async fn daily_run(members: usize, events: usize) {
    use loyalty::domain::event::Event;
    use loyalty::table::EventCarrier;
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::new(EmbeddedStore::open(&dir.path().join("daily.redb")).unwrap());
    let counts = store.counts.clone();
    let services = Services::new(
        Arc::new(store),
        Default::default(),
        Arc::new(TestClock::default()),
    );
    let seed_start = Instant::now();
    let sample: Event =
        serde_json::from_str(include_str!("../../events/payloads/points.earned.json"))
            .expect("the points.earned sample is an event");
    let day: chrono::NaiveDate = "2027-03-01".parse().unwrap();
    let midnight = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let per_member = events.div_ceil(members).max(1);
    let mut batch = Batch::new();
    let mut in_batch = 0;
    let mut made = 0;
    'members: for m in 0..members {
        let member = MemberId::parse(&format!("d{m}")).unwrap();
        for chunk in (1..=per_member as u64).collect::<Vec<_>>().chunks(5) {
            // One carrier is one commit's events: one instant.
            let ids = uuid::ContextV7::new();
            let at = midnight
                + Duration::milliseconds(
                    (m as i64 * 7919 + chunk[0] as i64 * 104_729) % 86_400_000,
                );
            let carried: Vec<Event> = chunk
                .iter()
                .map(|seq| Event {
                    id: loyalty::domain::event::event_id(&ids, at),
                    occurred_at: at,
                    member_id: Some(member.clone()),
                    seq: *seq,
                    ..sample.clone()
                })
                .collect();
            let last = *chunk.last().unwrap();
            made += carried.len();
            batch
                .create(
                    &(member.clone(), last),
                    &EventCarrier {
                        events: carried,
                        expires_at: 0,
                        commit: Default::default(),
                    },
                )
                .unwrap();
            in_batch += 1;
            if in_batch == 100 {
                services
                    .ctx
                    .table
                    .commit(std::mem::take(&mut batch))
                    .await
                    .unwrap();
                in_batch = 0;
            }
            if made >= events {
                break 'members;
            }
        }
    }
    if in_batch > 0 {
        services.ctx.table.commit(batch).await.unwrap();
    }
    println!(
        "daily        seeded {made} events of {members} members in {:.1} s",
        seed_start.elapsed().as_secs_f64()
    );
    let (run, c) = measured(&counts, services.segments.daily_run(day)).await;
    let run = run.unwrap();
    assert_eq!(
        run.events_read, made as u64,
        "the fold reads every event of the day once"
    );
    assert_eq!(run.figures.purchases, made as u64);
    // On-demand DynamoDB: an eventually consistent read of an item up to 4 KB is half a read
    // request unit ($0.125 per million in us-east-1); a carrier of 5 events is under 4 KB.
    let rru = c.items_read as f64 / 2.0;
    println!(
        "daily        fold of {day} over {made} events ({members} members): {:.2} s, {} items read ({} read round trips, ≈ {:.0} read request units, ≈ ${:.4}), {} item written ({} commit); purchases {} active members {}",
        c.secs,
        c.items_read,
        c.read_trips,
        rru,
        rru * 0.125 / 1e6,
        c.items_written,
        c.commits,
        run.figures.purchases,
        run.figures.active_members
    );
}

/// Points lots on (14 pending days, rolling 12-month expiry), in a store of their own: purchases
/// over the socket (still 1 read + 1 write each), then the daily points job over a large
/// membership on two days. Members are seeded 100 to a commit (a bench shortcut) with a purchase
/// on one of the last 60 days, and one in fifty with a lot granted a year ago, whose 30-day
/// notice is due on the first day. Each run prints what it read and wrote against the members
/// due that day, computed here from the seeding rule.
async fn points_run(args: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::new(EmbeddedStore::open(&dir.path().join("points.redb")).unwrap());
    let counts = store.counts.clone();
    let program = loyalty::program::Program::from_json(
        r#"{"points": {"pending_days": 14, "expiry": {"policy": "rolling", "months": 12}}}"#,
    )
    .unwrap();
    let clock = Arc::new(TestClock::default());
    let services = Services::new(Arc::new(store), program, clock.clone());
    let (base, auth) = serve(&services, clock).await;
    let client = reqwest::Client::new();
    let admin = auth.mint(&Role::Admin);
    let pos = auth.mint(&Role::Pos("store-1".into()));
    let enrol = enrolments("p", args.members, &admin);
    phase("enrol", &counts, args.concurrency, enrol, &base, &client).await;
    let lots = purchases("p", "L", args, &pos, Utc::now() - Duration::seconds(60));
    phase(
        "purchase+lots",
        &counts,
        args.concurrency,
        lots,
        &base,
        &client,
    )
    .await
    .print();

    let members = args.points_members;
    let seed_start = Instant::now();
    let day0: chrono::DateTime<Utc> = "2027-03-01T02:00:00Z".parse().unwrap();
    seed_points_members(&services, members, day0).await;
    println!(
        "points       seeded {members} members in {:.1} s",
        seed_start.elapsed().as_secs_f64()
    );
    for day in 0..2i64 {
        // Due, from the seeding rule: pending points whose 14 days end today (seeded pending
        // when bought fewer than 14 days before the first day); on the first day, the 30-day
        // notices of the lots expiring on 31 March (one member in 50) and the members of the
        // purchases above (their points fell due months ago).
        let pending = (0..members)
            .filter(|i| (*i % 60) as i64 + 1 == 14 - day && day > 0)
            .count();
        let first_day = if day == 0 {
            (0..members).filter(|i| i % 50 == 0).count() + args.members
        } else {
            0
        };
        let due = pending + first_day;
        let (run, c) = measured(
            &counts,
            services.balances.points_job(day0 + Duration::days(day)),
        )
        .await;
        println!(
            "points       job over {members} members, day {day}: {:.2} s, {} members due ({:.2}% of members), {} items read ({} read round trips), {} items written ({} commits); {:?}",
            c.secs,
            due,
            100.0 * due as f64 / members as f64,
            c.items_read,
            c.read_trips,
            c.items_written,
            c.commits,
            run.unwrap()
        );
    }
}

/// Members for the points job, 100 to a commit (a bench shortcut): a purchase on one of the
/// 60 days before `day0` (pending 14 days), and one in fifty with a lot granted a year ago.
pub(crate) async fn seed_points_members(
    services: &Services,
    members: usize,
    day0: chrono::DateTime<Utc>,
) {
    use loyalty::domain::lots::{self, Lots};
    let expiry = services.ctx.program.points.expiry;
    let today = services.ctx.program_date(day0);
    let year_ago: chrono::NaiveDate = "2026-03-10".parse().unwrap();
    let ids: Vec<usize> = (0..members).collect();
    for chunk in ids.chunks(SEED_CHUNK) {
        let mut batch = Batch::new();
        for i in chunk {
            let bought = day0 - Duration::days((*i % 60) as i64 + 1);
            let mut m = Member::new(
                MemberId::parse(&format!("q{i}")).unwrap(),
                "Q".into(),
                bought - Duration::days(400),
            );
            let mut l = Lots::default();
            if i % 50 == 0 {
                l.grant(40, year_ago, expiry);
            }
            l.earn(100, services.ctx.program_date(bought), 14, today, expiry);
            m.last_activity_at = bought;
            m.lifetime_earned = loyalty::domain::Points(l.available_total() + l.pending_total());
            m.points_due = lots::next_due(&l, expiry, services.ctx.program_date(bought), None);
            m.set_lots(l);
            batch.save_member(None, &mut m).unwrap();
        }
        services.ctx.table.commit(batch).await.unwrap();
    }
}

/// A campaign over the whole segments membership (every member is silver or above; the audience
/// is the three tiers): the launch writes one assignment per member, and the results read them
/// all back, never a purchase.
async fn campaign_launch(services: &Services, counts: &RoundTrips, members: usize) {
    let id = loyalty::domain::CampaignId::parse("everyone").unwrap();
    let input = campaign(
        "Everyone",
        &["tier:silver", "tier:gold", "tier:diamond"],
        (
            "2027-03-01T00:00:00Z".parse().unwrap(),
            "2027-04-01T00:00:00Z".parse().unwrap(),
        ),
        10,
        1_000_000,
    );
    services
        .campaigns
        .put_campaign(&id, input, &operator())
        .await
        .unwrap();
    let (launched, c) =
        measured(counts, services.campaigns.launch_campaign(&id, &operator())).await;
    let launched = launched.unwrap();
    println!(
        "campaigns    launch over {members} members: {:.2} s, {} items read ({} read round trips), {} items written ({} commits); audience {:?}",
        c.secs, c.items_read, c.read_trips, c.items_written, c.commits, launched.audience_size
    );
    let (results, c) = measured(counts, services.campaigns.campaign_results(&id)).await;
    println!(
        "campaigns    results over {members} members: {:.2} s, {} items read ({} read round trips); verdict {:?}",
        c.secs,
        c.items_read,
        c.read_trips,
        results.unwrap().verdict
    );
}

/// Members for the segments run, 100 to a commit (a bench shortcut): purchase histories
/// spread over 400 days and the segments a run on the day before `day0` gave them.
pub(crate) async fn seed_segment_members(
    services: &Services,
    members: usize,
    day0: chrono::DateTime<Utc>,
) {
    use loyalty::domain::Points;
    let p = services.ctx.program.clone();
    let today = services.ctx.program_date(day0);
    let ids: Vec<usize> = (0..members).collect();
    for chunk in ids.chunks(SEED_CHUNK) {
        let mut batch = Batch::new();
        for i in chunk {
            let enrolled = day0 - Duration::days(30 + (*i % 700) as i64);
            let mut m = Member::new(
                MemberId::parse(&format!("s{i}")).unwrap(),
                "S".into(),
                enrolled,
            );
            // One member in ten never bought; the others bought (i % 7) + 1 times, the last one
            // (i * 37) % 400 days ago, a week apart.
            if i % 10 != 0 {
                let last = (i * 37) % 400;
                for k in (0..(i % 7) + 1).rev() {
                    let at = day0 - Duration::days((last + k * 7) as i64);
                    let on = services.ctx.program_date(at);
                    let amount = 500 + ((i * 7919 + k * 131) % 30_000) as i64;
                    m.spend
                        .add(on, amount, today, p.spend_months_kept())
                        .unwrap();
                    m.purchases.add(on, 1, today, p.purchase_months_kept());
                    m.note_purchase_day(on, amount);
                    m.note_purchase_at(at, loyalty::domain::segment::Lifecycle::Active);
                    m.balance = Points(m.balance.0 + amount / 100);
                    m.lifetime_earned = m.balance;
                }
            }
            m.segments = m.segments_at(
                &p.segments,
                &loyalty::domain::segment::Standing {
                    cuts: p.segments.rfm.fixed,
                    model: None,
                },
                day0,
                today,
                p.qualifying_window_months,
            );
            m.counted = Some(m.membership());
            // As enrolment makes members now: with a referral code (its claim and record are
            // not what this run reads), so the run is a normal night, not the one-off that
            // gives older members their codes.
            m.has_referral_code = true;
            batch.save_member(None, &mut m).unwrap();
        }
        services.ctx.table.commit(batch).await.unwrap();
    }
}

/// The nightly segments run over a large membership: members seeded (100 to a commit, a bench
/// shortcut) with purchase histories spread over 400 days and the segments a run on the day
/// before gave them (with the fixed cut points); then a run on each of the next three days, in
/// 1, 4 and 4 parts. Each prints what it read and wrote: written = members whose segments moved,
/// not members. The first run puts the quintiles in force, so the second moves every member
/// whose scores they change; the third shows a normal night.
async fn segments_run(services: &Services, counts: &RoundTrips, members: usize) {
    let seed_start = Instant::now();
    let day0: chrono::DateTime<Utc> = "2027-03-01T02:00:00Z".parse().unwrap();
    seed_segment_members(services, members, day0).await;
    println!(
        "segments     seeded {members} members in {:.1} s",
        seed_start.elapsed().as_secs_f64()
    );
    for (day, parts) in [(1, 1), (2, 4), (3, 4)] {
        let (run, c) = measured(
            counts,
            services
                .segments
                .segments_job(day0 + Duration::days(day), parts),
        )
        .await;
        let run = run.unwrap();
        println!(
            "segments     run over {members} members in {parts} part(s): {:.2} s, {} items read ({} read round trips), {} members written, {} items written ({} commits); cut points {:?}",
            c.secs,
            c.items_read,
            c.read_trips,
            run.changed,
            c.items_written,
            c.commits,
            run.cutpoints
        );
    }
}

/// The operator the benchmark's own writes name in their audit records.
/// A campaign as the bench defines it: a bonus of `points` a purchase, a 10 % holdout, no limit
/// per member.
fn campaign(
    name: &str,
    audience: &[&str],
    (starts_at, ends_at): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    points: i64,
    budget_points: i64,
) -> loyalty::service::campaigns::CampaignDraft {
    loyalty::service::campaigns::CampaignDraft {
        name: name.into(),
        audience: audience.iter().map(|s| s.to_string()).collect(),
        starts_at,
        ends_at,
        offer: loyalty::domain::campaign::OfferInput::Bonus {
            points: loyalty::domain::Points(points),
            min_spend: None,
        },
        per_member_limit: None,
        budget_points: loyalty::domain::Points(budget_points),
        holdout_percent: Some(10.into()),
    }
}

/// A reward as the bench defines it: open to every tier, active.
fn reward(
    name: &str,
    cost_points: i64,
    stock: u64,
    per_member_limit: Option<u32>,
) -> loyalty::service::redemption::RewardDefinition {
    loyalty::service::redemption::RewardDefinition {
        name: name.into(),
        description: None,
        cost_points: loyalty::domain::Points(cost_points),
        min_tier: loyalty::domain::tier::Tier::Silver,
        stock: Some(stock),
        per_member_limit,
        active: true,
    }
}

fn operator() -> loyalty::domain::audit::Actor {
    loyalty::domain::audit::Actor {
        sub: "loyalty-bench".into(),
        role: loyalty::domain::audit::OperatorRole::Admin,
        request_id: "bench".into(),
    }
}
