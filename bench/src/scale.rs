//! `loyalty-bench --scenario peak`: the heat model of issue 22 (`loyalty::store::heat`) over the
//! real purchase and redemption code paths, in simulated seconds. A national retailer's peak is
//! 10,000 purchases a second with ten campaigns awarding and 500 redemptions a second; no test
//! here reaches that against DynamoDB, so the scenario runs `--peak-rate` purchases per simulated
//! second through the services on an in-memory embedded store whose every read and write is
//! attributed to its partition key, then scales each key's busiest second to the target rate.
//!
//! Simplifications, printed with the figures: the workload of each simulated second runs to the
//! end before the next starts (64 at once), so a key's units in a second are exact, but the
//! version races of a real second are fewer; a key several requests shared in a second is taken
//! to keep its share of the traffic at the target rate, so its units scale linearly; a key only
//! one request touched each second (a member's own) is not scaled, its load being one member's.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use loyalty::clock::TestClock;
use loyalty::domain::member::Member;
use loyalty::domain::{MemberId, RewardId};
use loyalty::service::Services;
use loyalty::store::heat::{self, Heat, KeyHeat, MAX_READ_UNITS_PER_KEY, MAX_WRITE_UNITS_PER_KEY};
use loyalty::store::{CountingStore, EmbeddedStore};
use loyalty::table::Batch;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub struct Peak {
    /// Purchases per simulated second.
    pub rate: usize,
    pub seconds: u64,
    pub members: usize,
    /// The rate the figures are scaled to.
    pub target_rate: usize,
}

/// Runs the scenario; false when a key is over DynamoDB's per-key limits at the target rate.
pub async fn peak(p: Peak) -> bool {
    let heat = Arc::new(Heat::new());
    let store = CountingStore::with_heat(EmbeddedStore::in_memory().unwrap(), heat.clone());
    let clock = Arc::new(TestClock::default());
    let t0: DateTime<Utc> = "2027-11-11T10:00:00Z".parse().unwrap();
    clock.set(t0 - Duration::hours(2));
    let services = Services::new(Arc::new(store), Default::default(), clock.clone());
    let started = Instant::now();
    let ids: Vec<usize> = (0..p.members).collect();
    for chunk in ids.chunks(100) {
        let mut batch = Batch::new();
        for i in chunk {
            let m = Member::new(
                MemberId::parse(&format!("p{i}")).unwrap(),
                "P".into(),
                t0 - Duration::days(400),
            );
            batch.create(&m.id.clone(), &m).unwrap();
        }
        services.table.commit(batch).await.unwrap();
    }
    let campaigns = loyalty::service::campaigns::MAX_RUNNING;
    for c in 0..campaigns {
        let id = loyalty::domain::CampaignId::parse(&format!("peak-{c}")).unwrap();
        let input = serde_json::from_value(json!({"name": format!("Peak {c}"),
            "audience": ["tier:silver"], "starts_at": (t0 - Duration::hours(1)).to_rfc3339(),
            "ends_at": (t0 + Duration::days(1)).to_rfc3339(),
            "offer": {"kind": "bonus", "points": 1}, "budget_points": 1_000_000_000,
            "holdout_percent": 10}))
        .unwrap();
        services
            .put_campaign(&id, input, &crate::operator())
            .await
            .unwrap();
        services
            .launch_campaign(&id, &crate::operator())
            .await
            .unwrap();
    }
    let rewards: Vec<RewardId> = (0..20)
        .map(|r| RewardId::parse(&format!("peak-reward-{r}")).unwrap())
        .collect();
    for r in &rewards {
        let input = serde_json::from_value(
            json!({"name": "Peak reward", "cost_points": 1, "stock": 1_000_000}),
        )
        .unwrap();
        services
            .put_reward(r, input, &crate::operator())
            .await
            .unwrap();
    }
    println!(
        "scale/peak   seeded {} members, {campaigns} running campaigns on all of them, {} rewards in {:.1} s",
        p.members,
        rewards.len(),
        started.elapsed().as_secs_f64()
    );

    heat.clear();
    let redemption_rate = p.rate * 500 / 10_000;
    let ran = Instant::now();
    let mut refused = 0usize;
    let mut unavailable = 0usize;
    for s in 0..p.seconds {
        heat.set_second(s);
        let at = t0 + Duration::seconds(s as i64);
        clock.set(at);
        let purchases = (0..p.rate).map(|i| {
            let n = s as usize * p.rate + i;
            let member = format!("p{}", n % p.members);
            let body = json!({"member": {"id": member}, "store_id": format!("store-{}", n % 500),
                "receipt_id": format!("R{n}"), "amount": {"value": 1999 + (n % 500) as i64, "currency": "USD"},
                "occurred_at": at.to_rfc3339()});
            let services = services.clone();
            let req = serde_json::from_value(body).unwrap();
            let digest = format!("d{n}");
            heat::REQUEST.scope(n as u64, async move {
                services.purchase(req, &digest).await.map(|_| ())
            })
        });
        let results: Vec<_> = futures::stream::iter(purchases)
            .buffer_unordered(64)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(()) => {}
                // Retries spent on a hot item: what the API answers 503 for.
                Err(loyalty::service::ServiceError::Contention) => unavailable += 1,
                Err(e) => panic!("a peak purchase: {e:?}"),
            }
        }
        // Redemptions by members who bought in the second before (they have points).
        if s > 0 {
            let redemptions = (0..redemption_rate).map(|i| {
                let n = (s as usize - 1) * p.rate + i * (p.rate / redemption_rate.max(1));
                let member = MemberId::parse(&format!("p{}", n % p.members)).unwrap();
                let reward = rewards[i % rewards.len()].clone();
                let services = services.clone();
                heat::REQUEST.scope(u64::MAX - n as u64, async move {
                    services.redeem(&member, &reward, None).await.is_ok()
                })
            });
            let ok: Vec<bool> = futures::stream::iter(redemptions)
                .buffer_unordered(64)
                .collect()
                .await;
            refused += ok.iter().filter(|x| !**x).count();
        }
    }
    println!(
        "scale/peak   {} simulated seconds of {} purchases/s and {redemption_rate} redemptions/s ran in {:.1} s: {unavailable} purchases gave up on contention (503), {refused} redemptions refused",
        p.seconds,
        p.rate,
        ran.elapsed().as_secs_f64()
    );
    let scale = p.target_rate as f64 / p.rate as f64;
    let keys_ok = report("peak", &heat.hottest(), scale, p.members);
    keys_ok && unavailable == 0
}

/// A key's busiest second at the target rate: scaled when several requests share the key, as
/// it is when only one request touched it each second (one member's own key: its load is that
/// member's, whatever the program's rate).
fn at_target(k: &KeyHeat, scale: f64) -> (f64, f64) {
    let s = if k.peak_requests > 1 { scale } else { 1.0 };
    (k.peak_read * s, k.peak_write * s)
}

/// The hottest keys of the table and of each index at the target rate, against the limits.
fn report(scenario: &str, keys: &[KeyHeat], scale: f64, members: usize) -> bool {
    println!(
        "scale/{scenario}   busiest second of each key, × {scale:.1} (to the target rate) where several requests shared it; limits {MAX_WRITE_UNITS_PER_KEY:.0} WCU/s and {MAX_READ_UNITS_PER_KEY:.0} RCU/s per key ({members} members simulated)"
    );
    let mut by_target: BTreeMap<&str, Vec<&KeyHeat>> = BTreeMap::new();
    for k in keys {
        by_target.entry(k.target.name()).or_default().push(k);
    }
    let mut ok = true;
    for (target, keys) in &by_target {
        for k in keys.iter().take(3) {
            let (r, w) = at_target(k, scale);
            let over = r > MAX_READ_UNITS_PER_KEY || w > MAX_WRITE_UNITS_PER_KEY;
            ok &= !over;
            println!(
                "scale/{scenario}   {:<6} {:<42} {:>10.0} WCU/s {:>10.0} RCU/s {:>6} requests/s  {}",
                target,
                k.pk,
                w,
                r,
                k.peak_requests,
                if over { "OVER" } else { "ok" }
            );
        }
        let over = keys
            .iter()
            .filter(|k| {
                let (r, w) = at_target(k, scale);
                r > MAX_READ_UNITS_PER_KEY || w > MAX_WRITE_UNITS_PER_KEY
            })
            .count();
        if over > 3 {
            // What kind of item the rest are, by the key's prefix.
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for k in keys.iter().skip(3).filter(|k| {
                let (r, w) = at_target(k, scale);
                r > MAX_READ_UNITS_PER_KEY || w > MAX_WRITE_UNITS_PER_KEY
            }) {
                *kinds
                    .entry(k.pk.split('#').next().unwrap_or(""))
                    .or_default() += 1;
            }
            println!(
                "scale/{scenario}   {target:<6} … {} more keys over the limits, by kind: {kinds:?}",
                over - 3
            );
        }
    }
    println!(
        "scale/{scenario}   {}",
        if ok {
            "PASS: every key under the limits"
        } else {
            "FAIL: keys over DynamoDB's per-key limits (above)"
        }
    );
    ok
}
