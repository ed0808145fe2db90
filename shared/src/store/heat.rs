//! The heat model: which partition keys of the table and of each index a workload touches, with
//! how many capacity units, in each second of simulated time. DynamoDB serves about 1,000 write
//! units and 3,000 read units per second per partition key (table and every index alike), and a
//! throttled index holds back the table's writes; a key over that is a ceiling on the whole
//! program whatever the table's capacity. `loyalty-bench --scenario …` runs workloads through a
//! [`super::CountingStore`] that feeds this model and prints the hottest keys against the limits.
//!
//! Units, as DynamoDB charges them: a write is 1 unit per started KB of the item (twice in a
//! transaction), and a failed conditional write costs the same; each index entry an item adds,
//! changes or removes is 1 unit on that index's key (the indexes are keys-only, so an entry is
//! well under 1 KB); moving an entry between keys costs its old key and its new one. A read is 1
//! unit per started 4 KB (strongly consistent), at least 1 per item asked for, found or not; a
//! query 1 unit per started 4 KB of what it returns.

use super::{Index, Item, Key, Write};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    /// The request a simulated operation belongs to, set by the driver around each request, so
    /// a key can tell many requests sharing it from one request touching it several times
    /// (retries, a read then a commit).
    pub static REQUEST: u64;
}

/// DynamoDB's per-partition-key ceilings, per second.
pub const MAX_WRITE_UNITS_PER_KEY: f64 = 1_000.0;
pub const MAX_READ_UNITS_PER_KEY: f64 = 3_000.0;

/// Where a partition key lives: the table or one of its indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Table,
    Index(Index),
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Table => "table",
            Target::Index(i) => i.name(),
        }
    }
}

#[derive(Default, Clone, Debug, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
    /// Distinct requests that touched the key (see [`REQUEST`]; without one, each operation
    /// counts as its own request).
    pub requests: u32,
    seen: Option<std::collections::HashSet<u64>>,
}

/// The busiest second of one key.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyHeat {
    pub target: Target,
    pub pk: String,
    /// The most read units in any one simulated second.
    pub peak_read: f64,
    /// The most write units in any one simulated second.
    pub peak_write: f64,
    /// The most requests on the key in any one simulated second: 1 means only one request
    /// touched it each second (a member's own key), so its load does not grow with the rate.
    pub peak_requests: u32,
}

impl KeyHeat {
    pub fn over_limit(&self) -> bool {
        self.peak_read > MAX_READ_UNITS_PER_KEY || self.peak_write > MAX_WRITE_UNITS_PER_KEY
    }
}

#[derive(Default)]
pub struct Heat {
    /// The simulated second the workload is in; the driver advances it.
    second: AtomicU64,
    cells: Mutex<HashMap<(Target, String), HashMap<u64, Units>>>,
}

fn started(bytes: usize, unit: usize) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

impl Heat {
    pub fn new() -> Self {
        Heat::default()
    }

    /// Everything recorded from now on happens in simulated second `s`.
    pub fn set_second(&self, s: u64) {
        self.second.store(s, Ordering::Relaxed);
    }

    fn add(&self, target: Target, pk: &str, units: Units) {
        let second = self.second.load(Ordering::Relaxed);
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let cell = cells
            .entry((target, pk.to_owned()))
            .or_default()
            .entry(second)
            .or_default();
        cell.read += units.read;
        cell.write += units.write;
        match REQUEST.try_with(|r| *r) {
            Ok(request) => {
                if cell.seen.get_or_insert_default().insert(request) {
                    cell.requests += 1;
                }
            }
            Err(_) => cell.requests += 1,
        }
    }

    /// One operation's units, summed per key before they are added, so the operation counts once
    /// on each key it touched.
    fn add_all(&self, touched: HashMap<(Target, String), Units>) {
        for ((target, pk), units) in touched {
            self.add(target, &pk, units);
        }
    }

    /// A batch read: every key asked for, found or not.
    /// Read and write units over every key and second: what the workload costs in all.
    pub fn totals(&self) -> (f64, f64) {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells
            .values()
            .flat_map(|seconds| seconds.values())
            .fold((0.0, 0.0), |(r, w), u| (r + u.read, w + u.write))
    }

    pub fn got(&self, keys: &[Key], found: &[Option<Item>]) {
        let mut touched: HashMap<(Target, String), Units> = HashMap::new();
        for (k, item) in keys.iter().zip(found) {
            let size = item.as_ref().map_or(0, super::item_size);
            touched
                .entry((Target::Table, k.pk.clone()))
                .or_default()
                .read += started(size, 4096);
        }
        self.add_all(touched);
    }

    /// A query of one partition (the table's or an index's) that returned `bytes`.
    pub fn queried(&self, target: Target, pk: &str, bytes: usize) {
        let units = Units {
            read: started(bytes, 4096),
            ..Units::default()
        };
        self.add(target, pk, units);
    }

    /// A commit: the table's units for each write (charged whether or not its condition held)
    /// and, when it succeeded, the index entries each put or delete changed. `before` holds the
    /// items as they were, in the order of `writes`.
    pub fn committed(&self, writes: &[Write], before: &[Option<Item>], succeeded: bool) {
        let factor = if writes.len() > 1 { 2.0 } else { 1.0 };
        let mut touched: HashMap<(Target, String), Units> = HashMap::new();
        let mut add = |target: Target, pk: &str, write: f64| {
            touched.entry((target, pk.to_owned())).or_default().write += write;
        };
        for (w, old) in writes.iter().zip(before) {
            let size = match w {
                Write::Put { item, .. } => super::item_size(item),
                Write::Delete { key, .. }
                | Write::Check { key, .. }
                | Write::Take { key, .. }
                | Write::Add { key, .. } => key.pk.len() + key.sk.len() + 4,
            };
            add(Target::Table, &w.key().pk, factor * started(size, 1024));
            if !succeeded {
                continue;
            }
            let new = match w {
                Write::Put { item, .. } => Some(item),
                Write::Delete { .. } => None,
                // A take or an add changes a counter, never an index key.
                Write::Check { .. } | Write::Take { .. } | Write::Add { .. } => continue,
            };
            for index in Index::ALL {
                let entry = |i: Option<&Item>| -> Option<(String, String)> {
                    let i = i?;
                    let pk = i.attrs.get(index.pk_attr())?.as_str()?.to_owned();
                    let sk = i
                        .attrs
                        .get(index.sk_attr())
                        .and_then(|v| v.as_str())
                        .unwrap_or(&i.key.pk)
                        .to_owned();
                    Some((pk, sk))
                };
                let (was, is) = (entry(old.as_ref()), entry(new));
                if was == is {
                    continue;
                }
                if let Some((pk, _)) = &was {
                    add(Target::Index(index), pk, 1.0);
                }
                if let Some((pk, _)) = &is {
                    add(Target::Index(index), pk, 1.0);
                }
            }
        }
        self.add_all(touched);
    }

    /// Every key's busiest second, hottest first (by its share of the limit, reads or writes).
    pub fn hottest(&self) -> Vec<KeyHeat> {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<KeyHeat> = cells
            .iter()
            .map(|((target, pk), seconds)| KeyHeat {
                target: *target,
                pk: pk.clone(),
                peak_read: seconds.values().map(|u| u.read).fold(0.0, f64::max),
                peak_write: seconds.values().map(|u| u.write).fold(0.0, f64::max),
                peak_requests: seconds.values().map(|u| u.requests).max().unwrap_or(0),
            })
            .collect();
        let share = |k: &KeyHeat| {
            (k.peak_read / MAX_READ_UNITS_PER_KEY).max(k.peak_write / MAX_WRITE_UNITS_PER_KEY)
        };
        out.sort_by(|a, b| share(b).total_cmp(&share(a)).then(a.pk.cmp(&b.pk)));
        out
    }

    /// Forgets everything (between scenarios).
    pub fn clear(&self) {
        self.cells.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.set_second(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn item(pk: &str, attrs: serde_json::Value) -> Item {
        let attrs: Map<String, serde_json::Value> = attrs.as_object().unwrap().clone();
        Item {
            key: Key::new(pk, "X"),
            attrs,
        }
    }

    /// Attributes that put an item under `pk` in `index` (names from the store's `Index`).
    fn indexed(index: Index, pk: &str) -> serde_json::Value {
        let mut m = Map::new();
        m.insert(index.pk_attr().to_owned(), json!(pk));
        m.insert(index.sk_attr().to_owned(), json!("a"));
        serde_json::Value::Object(m)
    }

    fn heat_of(h: &Heat, target: Target, pk: &str) -> (f64, f64) {
        h.hottest()
            .into_iter()
            .find(|k| k.target == target && k.pk == pk)
            .map_or((0.0, 0.0), |k| (k.peak_read, k.peak_write))
    }

    #[test]
    fn a_put_charges_its_kilobytes_twice_in_a_transaction_and_one_unit_per_index_entry_changed() {
        let h = Heat::new();
        let small = item("m-1", indexed(Index::Gsi3, "events-10"));
        let big = item("m-2", json!({"blob": "x".repeat(1500)}));
        let writes = vec![
            Write::Put {
                item: small.clone(),
                cond: super::super::Cond::Always,
            },
            Write::Put {
                item: big,
                cond: super::super::Cond::Always,
            },
        ];
        h.committed(&writes, &[None, None], true);
        assert_eq!(heat_of(&h, Target::Table, "m-1"), (0.0, 2.0)); // 1 KB × 2 (transaction)
        assert_eq!(heat_of(&h, Target::Table, "m-2"), (0.0, 4.0)); // 2 KB × 2
        assert_eq!(
            heat_of(&h, Target::Index(Index::Gsi3), "events-10"),
            (0.0, 1.0)
        );
        // The same entry again: no index write. Moved to another key: the old key and the new.
        let moved = item("m-1", indexed(Index::Gsi3, "events-11"));
        h.set_second(1);
        h.committed(
            &[Write::Put {
                item: small.clone(),
                cond: super::super::Cond::Always,
            }],
            &[Some(small.clone())],
            true,
        );
        h.committed(
            &[Write::Put {
                item: moved,
                cond: super::super::Cond::Always,
            }],
            &[Some(small)],
            true,
        );
        assert_eq!(
            heat_of(&h, Target::Index(Index::Gsi3), "events-11"),
            (0.0, 1.0)
        );
        // Second 1 added one unit on the old key; its busiest second is still 1 unit.
        assert_eq!(
            heat_of(&h, Target::Index(Index::Gsi3), "events-10"),
            (0.0, 1.0)
        );
    }

    #[test]
    fn a_failed_conditional_write_costs_the_table_but_writes_no_index_entry() {
        let h = Heat::new();
        let it = item("stock-r", indexed(Index::Gsi1, "catalog"));
        for _ in 0..3 {
            h.committed(
                &[Write::Put {
                    item: it.clone(),
                    cond: super::super::Cond::Version(7),
                }],
                &[None],
                false,
            );
        }
        assert_eq!(heat_of(&h, Target::Table, "stock-r"), (0.0, 3.0));
        assert_eq!(
            heat_of(&h, Target::Index(Index::Gsi1), "catalog"),
            (0.0, 0.0)
        );
    }

    #[test]
    fn reads_cost_a_unit_per_started_4_kb_and_the_busiest_second_is_reported_against_the_limits() {
        let h = Heat::new();
        let k = Key::new("registry", "RUNNING");
        let found = vec![Some(item("registry", json!({"blob": "x".repeat(5000)})))];
        for s in 0..2 {
            h.set_second(s);
            for _ in 0..(1500 * (s + 1)) {
                h.got(std::slice::from_ref(&k), &found);
            }
        }
        h.queried(Target::Index(Index::Gsi4), "seg-dormant", 0);
        let hot = h.hottest();
        assert_eq!(hot[0].pk, "registry");
        assert_eq!(hot[0].peak_read, 6000.0); // 3,000 reads of 2 units in second 1
        assert!(hot[0].over_limit());
        assert_eq!(
            heat_of(&h, Target::Index(Index::Gsi4), "seg-dormant"),
            (1.0, 0.0)
        );
        assert!(!hot[1].over_limit());
        assert_eq!(hot[0].peak_requests, 3000);
        assert_eq!(hot[1].peak_requests, 1);
    }

    #[test]
    fn one_commit_counts_once_on_each_key_it_touches() {
        let h = Heat::new();
        let writes: Vec<Write> = (0..3)
            .map(|i| Write::Put {
                item: Item {
                    key: Key::new("member-a", format!("L{i}")),
                    attrs: Map::new(),
                },
                cond: super::super::Cond::Always,
            })
            .collect();
        h.committed(&writes, &[None, None, None], true);
        let k = &h.hottest()[0];
        // Three small items in a transaction: 3 × 1 KB × 2; one operation.
        assert_eq!((k.peak_write, k.peak_requests), (6.0, 1));
    }

    #[tokio::test]
    async fn a_request_that_reads_and_retries_counts_once_and_two_requests_twice() {
        let h = Heat::new();
        let k = Key::new("member-a", "MEMBER");
        let once = || h.got(std::slice::from_ref(&k), &[None]);
        REQUEST
            .scope(1, async {
                once();
                once();
                once()
            })
            .await;
        assert_eq!(h.hottest()[0].peak_requests, 1);
        REQUEST.scope(2, async { once() }).await;
        assert_eq!(h.hottest()[0].peak_requests, 2);
        assert_eq!(h.hottest()[0].peak_read, 4.0);
    }
}
