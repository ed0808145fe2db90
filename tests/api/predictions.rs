//! Predictions through the HTTP API on both backends: purchases placed with the test clock, a
//! nightly run that fits the models, the fit as operators read it, one member's scores checked
//! against the papers' formulas computed here by hand, a summary the run recounts from the
//! ledger, the churn segments sized exactly as they list, a purchase re-scoring its member in
//! its own commit, and the backtest of a night's predictions 90 days on, checked by hand.

use super::segments::{buy_at, listing, run_job, sizes_matching_listings};
use chrono::{Duration, NaiveDate};
use loyalty_tests::{Api, Backend, at, both_backends};
use serde_json::Value;

/// Thirty members with regular habits who stop at different times: member i buys from day i
/// every 7·(1 + i mod 4) days until day 40 + 5i, for 1000 + 100·(i mod 7) + 37k cents.
fn history() -> Vec<(String, chrono::DateTime<chrono::Utc>, i64)> {
    let start = at("2027-01-04T10:00:00Z");
    let mut out = Vec::new();
    for i in 0..30i64 {
        let gap = 7 * (1 + i % 4);
        let mut day = i;
        let mut k = 0;
        while day <= 40 + 5 * i {
            out.push((
                format!("p{i}"),
                start + Duration::days(day),
                1000 + 100 * (i % 7) + 37 * k,
            ));
            day += gap;
            k += 1;
        }
    }
    out.sort_by_key(|(_, t, _)| *t);
    out
}

/// Gauss's hypergeometric series, summed until its terms vanish (|z| < 1 here).
fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 0..10_000 {
        let n = f64::from(n);
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-16 * sum.abs() {
            break;
        }
    }
    sum
}

/// BG/NBD (Fader, Hardie & Lee 2005) by hand: P(alive) (eq. 12), P(no purchase in the next h
/// weeks), and the expected purchases in them (eq. 10).
fn by_hand(p: &Value, x: f64, t_x: f64, t: f64, h: f64) -> (f64, f64, f64) {
    let f = |k: &str| p[k].as_f64().unwrap();
    let (r, alpha, a, b) = (f("r"), f("alpha"), f("a"), f("b"));
    let odds = if x > 0.0 {
        a / (b + x - 1.0) * ((alpha + t) / (alpha + t_x)).powf(r + x)
    } else {
        0.0
    };
    let p_alive = 1.0 / (1.0 + odds);
    let churn = 1.0 - p_alive + p_alive * ((alpha + t) / (alpha + t + h)).powf(r + x);
    let z = h / (alpha + t + h);
    let head = (a + b + x - 1.0) / (a - 1.0);
    let expected = head
        * (1.0
            - ((alpha + t) / (alpha + t + h)).powf(r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1.0, z))
        / (1.0 + odds);
    (p_alive, churn, expected)
}

async fn member(api: &Api, id: &str, token: &str) -> Value {
    let r = api.get(&format!("/v1/members/{id}"), token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The churn segment listing `id`, if any.
async fn churn_listing_of(api: &Api, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for risk in ["likely", "possible", "unlikely"] {
        if listing(api, &format!("churn:{risk}"))
            .await
            .iter()
            .any(|m| m == id)
        {
            out.push(risk.to_owned());
        }
    }
    out
}

async fn a_nightly_fit_scores_members_as_the_formulas_say_and_churn_segments_list_their_size(
    backend: Backend,
) {
    let api = Api::new(backend).await;
    api.clock.set(at("2027-01-04T09:00:00Z"));
    for i in 0..30 {
        api.enrol(&format!("p{i}")).await;
    }
    api.enrol("never").await;
    let bought = history();
    for (id, t, amount) in &bought {
        buy_at(
            &api,
            id,
            &t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            *amount,
        )
        .await;
    }

    // Before any fit: nothing to read, no scores.
    let r = api.get("/v1/analytics/predictions", &api.admin()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        member(&api, "p5", &api.admin()).await["predictions"],
        Value::Null
    );
    for token in [api.member("p5"), api.pos("store-1")] {
        let r = api.get("/v1/analytics/predictions", &token).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }

    // The nightly run on 2027-06-01 fits both models to the 30 purchasing members.
    api.clock.set(at("2027-06-01T03:00:00Z"));
    let run = run_job(&api, 2).await;
    assert_eq!(run["members_in_fit"], 30, "{run}");
    let fit = api.get("/v1/analytics/predictions", &api.analyst()).await;
    assert_eq!(fit.status, 200, "{}", fit.body);
    let f = &fit.body;
    assert_eq!(
        (
            f["model"].as_str(),
            f["members_in_fit"].as_u64(),
            f["purchasing_members"].as_u64()
        ),
        (Some("bg_nbd"), Some(30), Some(30))
    );
    assert_eq!(
        (f["as_of"].as_str(), f["horizon_days"].as_u64()),
        (Some("2027-06-01"), Some(90))
    );
    for k in ["r", "alpha", "a", "b"] {
        assert!(f["params"][k].as_f64().unwrap() > 0.0, "{f}");
    }
    assert!(f["log_likelihood"].as_f64().unwrap() < 0.0, "{f}");
    for k in ["p", "q", "gamma"] {
        assert!(f["spend"][k].as_f64().unwrap() > 0.0, "{f}");
    }

    // Member p5 by hand: first purchase day 5 (2027-01-09), every 14 days while day ≤ 65, so
    // days 5, 19, 33, 47, 61: x = 4 repeat days, t_x = 56 days, T = 2027-01-09 → 2027-06-01
    // = 143 days; repeat amounts 1537, 1574, 1611, 1648 cents (mean $15.925).
    let mine: Vec<&(String, _, i64)> = bought.iter().filter(|(id, _, _)| id == "p5").collect();
    assert_eq!(mine.len(), 5);
    let first: NaiveDate = "2027-01-09".parse().unwrap();
    assert_eq!(mine[0].1.date_naive(), first);
    let (x, t_x, t) = (4.0, 56.0 / 7.0, 143.0 / 7.0);
    let (p_alive, churn, expected) = by_hand(&f["params"], x, t_x, t, 90.0 / 7.0);
    let m = member(&api, "p5", &api.admin()).await;
    let p = &m["predictions"];
    assert_eq!(
        (p["as_of"].as_str(), p["horizon_days"].as_u64()),
        (Some("2027-06-01"), Some(90))
    );
    for (k, want) in [
        ("p_alive", p_alive),
        ("churn_probability", churn),
        ("expected_purchases", expected),
    ] {
        let got = p[k].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "{k}: {got} against {want} by hand"
        );
    }
    // Gamma-Gamma's conditional mean (eq. 5 of the iso-value paper), in cents.
    let s = &f["spend"];
    let (gp, gq, gg) = (
        s["p"].as_f64().unwrap(),
        s["q"].as_f64().unwrap(),
        s["gamma"].as_f64().unwrap(),
    );
    let mean = (1537.0 + 1574.0 + 1611.0 + 1648.0) / 4.0 / 100.0;
    let spend = (gp * (gg + x * mean) / (gp * x + gq - 1.0)) * 100.0;
    let got = p["expected_spend_per_purchase"]["value"].as_i64().unwrap();
    assert!(
        (got as f64 - spend).abs() <= 0.5,
        "{got} against {spend} by hand"
    );
    let risk = if churn >= 0.7 {
        "likely"
    } else if churn >= 0.4 {
        "possible"
    } else {
        "unlikely"
    };
    assert_eq!(p["churn_risk"], risk);
    // Never to the member themself or a till; null for a member who never bought.
    for token in [api.member("p5"), api.pos("store-1")] {
        let m = member(&api, "p5", &token).await;
        assert_eq!(m["predictions"], Value::Null, "{m}");
    }
    assert_eq!(
        member(&api, "never", &api.admin()).await["predictions"],
        Value::Null
    );

    // A full refund of a purchase older than the four days a summary keeps cannot be placed:
    // p0 (days 0, 7, …, 35 from 2027-01-04: x = 5, t_x = 35 days, T = 148 days) keeps x = 5
    // until the next run recounts its ledger: x = 4, the last day unchanged.
    let h = 90.0 / 7.0;
    let p0 = |x: f64| by_hand(&f["params"], x, 35.0 / 7.0, 148.0 / 7.0, h).0;
    let receipt = "p0-2027-01-11T10:00:00Z";
    let r = api.refund(receipt, "full", 1037).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let before = member(&api, "p0", &api.admin()).await["predictions"]["p_alive"].clone();
    assert!(
        (before.as_f64().unwrap() - p0(5.0)).abs() < 1e-9,
        "{before}"
    );

    // The next run scores every purchasing member with the model in force: each churn
    // segment's size is what it lists, together everyone who bought, p5 where its scores say.
    api.clock.set(at("2027-06-01T04:00:00Z"));
    run_job(&api, 1).await;
    let sizes = sizes_matching_listings(&api).await;
    let churn_total: u64 = ["likely", "possible", "unlikely"]
        .iter()
        .map(|r| sizes[&format!("churn:{r}")])
        .sum();
    assert_eq!(churn_total, 30);
    assert_eq!(churn_listing_of(&api, "p5").await, vec![risk.to_owned()]);
    let f = api
        .get("/v1/analytics/predictions", &api.admin())
        .await
        .body;
    assert_eq!(
        f["churn"],
        serde_json::json!({"likely": sizes["churn:likely"], "possible": sizes["churn:possible"],
            "unlikely": sizes["churn:unlikely"]})
    );
    assert_eq!(f["clv_at_risk"]["currency"], "USD");
    // The run fitted again (p0's recount is in its sample): p0 under the model now in force.
    let p0 = by_hand(&f["params"], 4.0, 35.0 / 7.0, 148.0 / 7.0, h).0;
    let after = member(&api, "p0", &api.admin()).await["predictions"]["p_alive"].clone();
    assert!(
        (after.as_f64().unwrap() - p0).abs() < 1e-9,
        "{after} against {p0} by hand"
    );

    // A purchase re-scores its member in its own commit: a member likely to churn whose
    // purchase today takes them below the threshold (by hand: one more repeat day, the last
    // today) is listed where the purchase put them at once, with no run.
    let observed: NaiveDate = "2027-06-01".parse().unwrap();
    let likely = listing(&api, "churn:likely").await;
    let (who, after) = likely
        .iter()
        .filter(|id| *id != "p0")
        .map(|id| {
            let days: Vec<NaiveDate> = bought
                .iter()
                .filter(|(m, _, _)| m == id)
                .map(|(_, t, _)| t.date_naive())
                .collect();
            let t = (observed - days[0]).num_days() as f64 / 7.0;
            let x = days.len() as f64;
            (id.clone(), by_hand(&f["params"], x, t, t, 90.0 / 7.0).1)
        })
        .find(|(_, churn)| *churn < 0.7)
        .expect("a member likely to churn whom a purchase today moves");
    buy_at(&api, &who, "2027-06-01T05:00:00Z", 2500).await;
    let p = member(&api, &who, &api.admin()).await["predictions"].clone();
    assert!(
        (p["churn_probability"].as_f64().unwrap() - after).abs() < 1e-9,
        "{p}"
    );
    let want = if after >= 0.4 { "possible" } else { "unlikely" };
    assert_eq!(p["churn_risk"], want);
    assert_eq!(churn_listing_of(&api, &who).await, vec![want.to_owned()]);
    sizes_matching_listings(&api).await;

    // The backtest: 90 days after the night of 2027-06-01 (its last run, 04:00, is the one
    // kept), the run checks that night's predictions for its 30 sampled members against what
    // they did: p20–p29 bought once more in July, `who` once at 05:00 that day.
    let params = f["params"].clone();
    let mut then: Vec<(String, f64, f64, f64)> = Vec::new();
    for i in 0..30 {
        let id = format!("p{i}");
        let mut days: Vec<NaiveDate> = bought
            .iter()
            .filter(|(m, _, _)| *m == id)
            .map(|(_, t, _)| t.date_naive())
            .collect();
        if id == "p0" {
            days.retain(|d| *d != "2027-01-11".parse::<NaiveDate>().unwrap());
        }
        // The fixture's later members bought past 1 June too (placed before the first run):
        // T is never below t_x.
        let weeks = |d: NaiveDate| (d - days[0]).num_days() as f64 / 7.0;
        let (x, last) = ((days.len() - 1) as f64, *days.last().unwrap());
        then.push((id, x, weeks(last), weeks(observed.max(last))));
    }
    for i in 20..30 {
        buy_at(&api, &format!("p{i}"), "2027-07-15T12:00:00Z", 1800).await;
    }
    api.clock.set(at("2027-08-30T03:00:00Z"));
    run_job(&api, 2).await;
    let b = api
        .get("/v1/analytics/predictions", &api.admin())
        .await
        .body["backtest"]
        .clone();
    assert_eq!(
        (
            b["snapshot_day"].as_str(),
            b["checked_on"].as_str(),
            b["horizon_days"].as_u64()
        ),
        (Some("2027-06-01"), Some("2027-08-30"), Some(90)),
        "{b}"
    );
    let actual = |id: &str| f64::from(u8::from(id == who) + u8::from(id >= "p20" && id.len() == 3));
    let total: f64 = then.iter().map(|(id, ..)| actual(id)).sum();
    assert_eq!(
        (b["members"].as_u64(), b["unmatched"].as_u64()),
        (Some(30), Some(0))
    );
    assert_eq!(b["actual_purchases"].as_f64(), Some(total));
    let none: Vec<bool> = then.iter().map(|(id, ..)| actual(id) == 0.0).collect();
    let without = none.iter().filter(|n| **n).count() as u64;
    assert_eq!(b["without_purchase"].as_u64(), Some(without));
    // The model's numbers by hand: Σ expected purchases, the mean absolute error, and the AUC
    // counted over every (made none, bought) pair.
    let scored: Vec<(f64, f64)> = then
        .iter()
        .map(|(_, x, t_x, t)| {
            let (_, churn, expected) = by_hand(&params, *x, *t_x, *t, 90.0 / 7.0);
            (expected, churn)
        })
        .collect();
    let predicted: f64 = scored.iter().map(|s| s.0).sum();
    let mae: f64 = then
        .iter()
        .zip(&scored)
        .map(|((id, ..), s)| (s.0 - actual(id)).abs())
        .sum::<f64>()
        / 30.0;
    let (mut pairs, mut right) = (0.0, 0.0);
    for (a, na) in scored.iter().zip(&none) {
        for (b, nb) in scored.iter().zip(&none) {
            if *na && !*nb {
                pairs += 1.0;
                right += if a.1 > b.1 {
                    1.0
                } else if a.1 == b.1 {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    let m = &b["model"];
    for (k, want) in [
        ("predicted_purchases", predicted),
        ("mean_absolute_error", mae),
        ("auc", right / pairs),
    ] {
        let got = m[k].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "{k}: {got} against {want} by hand"
        );
    }
    let bins = m["calibration"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    assert_eq!(
        bins.iter()
            .map(|c| c["members"].as_u64().unwrap())
            .sum::<u64>(),
        30
    );
    // The baseline carries each member's past rate forward: x / T × 90 days.
    let base: f64 = then.iter().map(|(_, x, _, t)| x / t * 90.0 / 7.0).sum();
    let got = b["baseline"]["predicted_purchases"].as_f64().unwrap();
    assert!((got - base).abs() < 1e-9, "{got} against {base} by hand");
}

both_backends!(a_nightly_fit_scores_members_as_the_formulas_say_and_churn_segments_list_their_size);
