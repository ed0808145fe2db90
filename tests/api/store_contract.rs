//! The store contract: identical bodies against the embedded backend and DynamoDB (emulator).

use loyalty::service::{Backoff, ServiceError};
use loyalty::store::{Cond, Index, Item, Key, PageRequest, SortKey, Store, StoreError, Write};
use loyalty_tests::{Backend, both_backends, store, test_retry};
use serde_json::{Value, json};
use std::sync::Arc;

fn item(pk: &str, sk: &str, attrs: Value) -> Item {
    Item {
        key: Key::new(pk, sk),
        attrs: attrs.as_object().unwrap().clone(),
    }
}

fn put(i: Item, cond: Cond) -> Write {
    Write::Put { item: i, cond }
}

async fn get_returns_what_was_put_and_none_for_missing(b: Backend) {
    let (s, _g) = store(b).await;
    let it = item(
        "P#1",
        "A",
        json!({"n": 42, "s": "x", "nested": {"list": [1, 2]}, "none": null, "neg": -7}),
    );
    s.commit(vec![put(it.clone(), Cond::Absent)]).await.unwrap();
    assert_eq!(
        s.get(&Key::new("P#1", "A")).await.unwrap(),
        Some(it.clone())
    );
    assert_eq!(s.get(&Key::new("P#1", "B")).await.unwrap(), None);
    let many = s
        .get_many(&[
            Key::new("P#1", "B"),
            Key::new("P#1", "A"),
            Key::new("P#2", "A"),
        ])
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![None, Some(it), None],
        "order of the request, missing as None"
    );
}
both_backends!(get_returns_what_was_put_and_none_for_missing);

async fn query_by_prefix_pages_in_both_directions_without_loss_or_duplicates(b: Backend) {
    let (s, _g) = store(b).await;
    let mut writes = Vec::new();
    for i in 0..25 {
        writes.push(put(
            item("M#1", &format!("L#{i:03}"), json!({"i": i})),
            Cond::Absent,
        ));
    }
    writes.push(put(item("M#1", "P", json!({})), Cond::Absent));
    writes.push(put(item("M#10", "L#999", json!({})), Cond::Absent));
    s.commit(writes).await.unwrap();
    for descending in [false, true] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = s
                .query(
                    "M#1",
                    &SortKey::Prefix("L#".into()),
                    &PageRequest {
                        limit: 7,
                        after,
                        descending,
                    },
                )
                .await
                .unwrap();
            pages += 1;
            assert!(page.items.len() <= 7);
            seen.extend(page.items.iter().map(|i| i.attrs["i"].as_i64().unwrap()));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut want: Vec<i64> = (0..25).collect();
        if descending {
            want.reverse();
        }
        assert_eq!(seen, want, "descending={descending}");
        assert_eq!(pages, 4, "7+7+7+4, no empty trailing page");
    }
    let before = s
        .query(
            "M#1",
            &SortKey::Before("L#003".into()),
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(before.items.len(), 3);
    let all = s
        .query("M#1", &SortKey::All, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 26, "other partitions never leak in");
}
both_backends!(query_by_prefix_pages_in_both_directions_without_loss_or_duplicates);

async fn secondary_index_is_sparse_follows_updates_and_pages(b: Backend) {
    let (s, _g) = store(b).await;
    for i in 0..12 {
        let mut attrs = json!({"v": i});
        if i % 3 != 0 {
            attrs[Index::Gsi1.pk_attr()] = json!("B#11-22");
            attrs[Index::Gsi1.sk_attr()] = json!(format!("M_{i:02}"));
        }
        s.commit(vec![put(
            item(&format!("M_{i:02}"), "P", attrs),
            Cond::Absent,
        )])
        .await
        .unwrap();
    }
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .query_index(
                Index::Gsi1,
                "B#11-22",
                &SortKey::All,
                &PageRequest {
                    limit: 3,
                    after,
                    descending: false,
                },
            )
            .await
            .unwrap();
        keys.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let want: Vec<Key> = (0..12)
        .filter(|i| i % 3 != 0)
        .map(|i| Key::new(format!("M_{i:02}"), "P"))
        .collect();
    assert_eq!(
        keys, want,
        "only items carrying the index attributes, in index order"
    );

    // Moving an item to another index partition removes it from the old one; deleting removes it.
    s.commit(vec![put(
        item(
            "M_01",
            "P",
            json!({Index::Gsi1.pk_attr(): "B#01-01", Index::Gsi1.sk_attr(): "M_01"}),
        ),
        Cond::Exists,
    )])
    .await
    .unwrap();
    s.commit(vec![Write::Delete {
        key: Key::new("M_02", "P"),
        cond: Cond::Exists,
    }])
    .await
    .unwrap();
    let left = s
        .query_index(
            Index::Gsi1,
            "B#11-22",
            &SortKey::All,
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(left.items.len(), 6);
    let moved = s
        .query_index(
            Index::Gsi1,
            "B#01-01",
            &SortKey::All,
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(moved.items, vec![Key::new("M_01", "P")]);

    // GSI2 with a sort-key upper bound: only expiries before the given date.
    for (id, date) in [
        ("a", "2026-11-01"),
        ("b", "2026-11-21"),
        ("c", "2026-11-22"),
        ("d", "2026-11-30"),
    ] {
        let attrs = json!({Index::Gsi2.pk_attr(): "T#2026-11", Index::Gsi2.sk_attr(): format!("{date}#{id}")});
        s.commit(vec![put(
            item(&format!("M_{id}"), "P", attrs),
            Cond::Absent,
        )])
        .await
        .unwrap();
    }
    let due = s
        .query_index(
            Index::Gsi2,
            "T#2026-11",
            &SortKey::Before("2026-11-22".into()),
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    let ids: Vec<String> = due.items.iter().map(|k| k.pk.clone()).collect();
    assert_eq!(ids, vec!["M_a", "M_b"]);
}
both_backends!(secondary_index_is_sparse_follows_updates_and_pages);

async fn batch_with_one_failing_condition_writes_nothing(b: Backend) {
    let (s, _g) = store(b).await;
    s.commit(vec![put(
        item("A", "1", json!({"version": 1, "x": 1})),
        Cond::Absent,
    )])
    .await
    .unwrap();
    let batch = vec![
        put(item("A", "2", json!({"x": 2})), Cond::Absent),
        put(
            item("A", "1", json!({"version": 2, "x": 9})),
            Cond::Version(1),
        ),
        put(item("B", "1", json!({"x": 3})), Cond::Absent),
        Write::Check {
            key: Key::new("C", "1"),
            cond: Cond::Exists,
        }, // fails: C#1 does not exist
    ];
    let err = s.commit(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { .. }), "{err:?}");
    if let StoreError::ConditionFailed { index: Some(i) } = err {
        assert_eq!(i, 3, "the failing write is reported");
    }
    assert_eq!(s.get(&Key::new("A", "2")).await.unwrap(), None);
    assert_eq!(s.get(&Key::new("B", "1")).await.unwrap(), None);
    assert_eq!(
        s.get(&Key::new("A", "1")).await.unwrap().unwrap().attrs["x"],
        json!(1)
    );
}
both_backends!(batch_with_one_failing_condition_writes_nothing);

async fn version_absence_and_expiry_conditions_hold(b: Backend) {
    let (s, _g) = store(b).await;
    let k = || item("V", "1", json!({"version": 1}));
    s.commit(vec![put(k(), Cond::Absent)]).await.unwrap();
    assert!(matches!(
        s.commit(vec![put(k(), Cond::Absent)]).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert!(matches!(
        s.commit(vec![put(
            item("V", "1", json!({"version": 3})),
            Cond::Version(2)
        )])
        .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    s.commit(vec![put(
        item("V", "1", json!({"version": 2})),
        Cond::Version(1),
    )])
    .await
    .unwrap();
    assert_eq!(
        s.get(&Key::new("V", "1")).await.unwrap().unwrap().version(),
        Some(2)
    );
    assert!(matches!(
        s.commit(vec![put(item("V", "9", json!({})), Cond::Version(0))])
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert!(matches!(
        s.commit(vec![Write::Delete {
            key: Key::new("V", "9"),
            cond: Cond::Exists
        }])
        .await,
        Err(StoreError::ConditionFailed { .. })
    ));

    // An expired record counts as absent; a live one does not.
    s.commit(vec![put(
        item("I", "1", json!({"expires_at": 1000})),
        Cond::Absent,
    )])
    .await
    .unwrap();
    assert!(matches!(
        s.commit(vec![put(
            item("I", "1", json!({"expires_at": 5000})),
            Cond::AbsentOrExpiredBefore(999)
        )])
        .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    s.commit(vec![put(
        item("I", "1", json!({"expires_at": 5000})),
        Cond::AbsentOrExpiredBefore(1001),
    )])
    .await
    .unwrap();
    s.commit(vec![put(
        item("I", "2", json!({"expires_at": 5000})),
        Cond::AbsentOrExpiredBefore(1),
    )])
    .await
    .unwrap();
    // Batches that both backends refuse up front.
    let dup = vec![
        put(item("D", "1", json!({})), Cond::Always),
        put(item("D", "1", json!({})), Cond::Always),
    ];
    assert!(matches!(s.commit(dup).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        s.commit(vec![]).await,
        Err(StoreError::Invalid(_))
    ));
}
both_backends!(version_absence_and_expiry_conditions_hold);

/// Read, decide, commit, retry on version conflict: 200 concurrent increments of one counter.
async fn two_hundred_concurrent_increments_lose_nothing(b: Backend) {
    let (s, _g) = store(b).await;
    let key = Key::new("M_hot", "P");
    s.commit(vec![put(
        item("M_hot", "P", json!({"version": 1, "balance": 0})),
        Cond::Absent,
    )])
    .await
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s: Arc<dyn Store> = s.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut backoff = Backoff::new(test_retry());
                loop {
                    let cur = s.get(&key).await.unwrap().unwrap();
                    let v = cur.version().unwrap();
                    let bal = cur.attrs["balance"].as_i64().unwrap();
                    let next = item("M_hot", "P", json!({"version": v + 1, "balance": bal + 1}));
                    match s.commit(vec![put(next, Cond::Version(v))]).await {
                        Ok(()) => return,
                        Err(e) if e.is_retryable() => backoff
                            .wait()
                            .await
                            .map_err(|e: ServiceError| e.to_string())
                            .unwrap(),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let end = s.get(&key).await.unwrap().unwrap();
    assert_eq!(end.attrs["balance"], json!(200));
    assert_eq!(end.version(), Some(201));
}
both_backends!(two_hundred_concurrent_increments_lose_nothing);

#[tokio::test]
async fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loyalty.redb");
    {
        let s = loyalty::store::EmbeddedStore::open(&path).unwrap();
        s.commit(vec![put(
            item(
                "K",
                "1",
                json!({"x": 1, Index::Gsi1.pk_attr(): "G", Index::Gsi1.sk_attr(): "S"}),
            ),
            Cond::Absent,
        )])
        .await
        .unwrap();
    }
    let s = loyalty::store::EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        s.get(&Key::new("K", "1")).await.unwrap().unwrap().attrs["x"],
        json!(1)
    );
    let idx = s
        .query_index(Index::Gsi1, "G", &SortKey::All, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(idx.items.len(), 1);
}

/// A page position that its range never produced is `BadCursor` on both backends, checked once
/// in the store before any backend sees it (DynamoDB used to answer such a start key with a 500).
async fn forged_positions_are_bad_cursors_on_both_backends(b: Backend) {
    let (s, _g) = store(b).await;
    let mut attrs = json!({"n": 1});
    attrs[Index::Gsi1.pk_attr()] = json!("IX");
    attrs[Index::Gsi1.sk_attr()] = json!("A#1");
    s.commit(vec![put(item("Q", "A#1", attrs), Cond::Absent)])
        .await
        .unwrap();
    let page = |after: &str| PageRequest {
        limit: 5,
        after: Some(after.to_owned()),
        descending: false,
    };
    for after in ["B#1", "", "A\u{0}1", "Z"] {
        let r = s
            .query("Q", &SortKey::Prefix("A#".into()), &page(after))
            .await;
        assert_eq!(
            r.err(),
            Some(StoreError::BadCursor),
            "query after {after:?}"
        );
    }
    let r = s
        .query("Q", &SortKey::Before("A#5".into()), &page("A#9"))
        .await;
    assert_eq!(
        r.err(),
        Some(StoreError::BadCursor),
        "after beyond the bound"
    );
    for after in [
        "not json",
        r#"["A#1"]"#,
        r#"["B#1", "Q", "A#1"]"#,
        r#"["A#1", "", "A#1"]"#,
        r#"["A#1", "Q", ""]"#,
        r#"[1, 2, 3]"#,
    ] {
        let r = s
            .query_index(
                Index::Gsi1,
                "IX",
                &SortKey::Prefix("A#".into()),
                &page(after),
            )
            .await;
        assert_eq!(r.err(), Some(StoreError::BadCursor), "index after {after}");
    }
    // A real position still pages on.
    let first = s
        .query_index(Index::Gsi1, "IX", &SortKey::All, &PageRequest::first(5))
        .await
        .unwrap();
    assert_eq!(first.items, vec![Key::new("Q", "A#1")]);
}
both_backends!(forged_positions_are_bad_cursors_on_both_backends);

async fn takes_never_pass_the_cap_keep_the_index_and_bump_the_version(b: Backend) {
    let (s, _g) = store(b).await;
    let k = Key::new("S#1", "SLICE");
    s.commit(vec![put(
        item(
            "S#1",
            "SLICE",
            json!({"cap": 10, "used": 0, "version": 1, "GSI1PK": "X", "GSI1SK": "1"}),
        ),
        Cond::Absent,
    )])
    .await
    .unwrap();
    let take = |amount: i64, cap: i64| Write::Take {
        key: k.clone(),
        amount,
        cap,
    };
    s.commit(vec![take(7, 10)]).await.unwrap();
    // More than the room, the wrong cap, giving back more than used, a missing item: refused.
    for (w, why) in [
        (take(4, 10), "7 + 4 > 10"),
        (take(1, 11), "the cap changed"),
        (take(-8, 10), "7 − 8 < 0"),
        (
            Write::Take {
                key: Key::new("S#2", "SLICE"),
                amount: 1,
                cap: 10,
            },
            "no such slice",
        ),
    ] {
        assert!(
            matches!(
                s.commit(vec![w]).await,
                Err(StoreError::ConditionFailed { .. })
            ),
            "{why}"
        );
    }
    // Inside a batch too: the failing take writes nothing of the batch.
    let other = put(item("S#9", "X", json!({})), Cond::Absent);
    assert!(s.commit(vec![other, take(5, 10)]).await.is_err());
    assert_eq!(s.get(&Key::new("S#9", "X")).await.unwrap(), None);
    s.commit(vec![take(3, 10)]).await.unwrap();
    s.commit(vec![take(-2, 10)]).await.unwrap();
    let now = s.get(&k).await.unwrap().unwrap();
    assert_eq!(now.attrs["used"], 8);
    assert_eq!(now.version(), Some(4), "each take is a new version");
    let listed = s
        .query_index(Index::Gsi1, "X", &SortKey::All, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![k.clone()], "a take leaves index entries");
}
both_backends!(takes_never_pass_the_cap_keep_the_index_and_bump_the_version);

async fn concurrent_takes_fill_a_slice_exactly_and_no_further(b: Backend) {
    let (s, _g) = store(b).await;
    let k = Key::new("S#race", "SLICE");
    s.commit(vec![put(
        item(
            "S#race",
            "SLICE",
            json!({"cap": 50, "used": 0, "version": 1}),
        ),
        Cond::Absent,
    )])
    .await
    .unwrap();
    // 80 takers of 1 at once, each retrying only a transaction conflict: exactly 50 land.
    let runs: Vec<_> = (0..80)
        .map(|_| {
            let (s, k) = (s.clone(), k.clone());
            tokio::spawn(async move {
                loop {
                    match s
                        .commit(vec![Write::Take {
                            key: k.clone(),
                            amount: 1,
                            cap: 50,
                        }])
                        .await
                    {
                        Ok(()) => return true,
                        Err(StoreError::ConditionFailed { .. }) => return false,
                        Err(StoreError::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let mut landed = 0;
    for r in runs {
        landed += usize::from(r.await.unwrap());
    }
    assert_eq!(landed, 50);
    assert_eq!(s.get(&k).await.unwrap().unwrap().attrs["used"], 50);
}
both_backends!(concurrent_takes_fill_a_slice_exactly_and_no_further);

async fn adds_create_their_counters_sum_exactly_under_a_race_and_ride_their_batch(b: Backend) {
    let (s, _g) = store(b).await;
    let k = Key::new("SIZES#race", "SIZES");
    let add = |amounts: &[(&str, i64)]| Write::Add {
        key: k.clone(),
        amounts: amounts.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
    };
    // The first add makes the item; no condition, so nothing is refused.
    s.commit(vec![add(&[("n:a", -3), ("n:b", 1)])])
        .await
        .unwrap();
    let first = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (
            first.attrs["n:a"].clone(),
            first.attrs["n:b"].clone(),
            first.version()
        ),
        (json!(-3), json!(1), Some(1))
    );
    // 80 adders at once, each retrying only a transaction conflict: a quarter move one from a
    // to b, the rest add 2 to a and make c.
    let runs: Vec<_> = (0..80)
        .map(|i| {
            let s = s.clone();
            let w = if i % 4 == 0 {
                add(&[("n:a", -1), ("n:b", 1)])
            } else {
                add(&[("n:a", 2), ("n:c", 1)])
            };
            tokio::spawn(async move {
                loop {
                    match s.commit(vec![w.clone()]).await {
                        Ok(()) => return,
                        Err(StoreError::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for r in runs {
        r.await.unwrap();
    }
    let now = s.get(&k).await.unwrap().unwrap();
    assert_eq!(now.attrs["n:a"], -3 - 20 + 60 * 2);
    assert_eq!(now.attrs["n:b"], 1 + 20);
    assert_eq!(now.attrs["n:c"], 60);
    assert_eq!(now.version(), Some(81), "each add is a new version");
    // An add in a batch whose other write fails adds nothing.
    let taken = put(item("S#taken", "X", json!({})), Cond::Absent);
    s.commit(vec![taken.clone()]).await.unwrap();
    assert!(s.commit(vec![add(&[("n:a", 100)]), taken]).await.is_err());
    assert_eq!(s.get(&k).await.unwrap().unwrap().attrs["n:a"], 97);
}
both_backends!(adds_create_their_counters_sum_exactly_under_a_race_and_ride_their_batch);
