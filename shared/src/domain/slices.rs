//! Slices of a fixed total: a campaign's budget and a reward's stock are each split into slices
//! under their own partition keys, so that no one item takes every award or every redemption
//! (DESIGN.md "Scale"). This module owns the arithmetic: how a total is split, and what a taker
//! takes from which slice. The slices' caps always sum to the total, and a take never exceeds a
//! slice's room, so however the takes interleave the total is never exceeded.

/// How many slices a total gets: one per `per_slice` of it, at least 1 and at most `max` (a
/// small total in many slices would send most takes borrowing).
pub fn count(total: i64, per_slice: i64, max: u32) -> u32 {
    let n = total / per_slice.max(1);
    u32::try_from(n).unwrap_or(max).clamp(1, max.max(1))
}

/// The caps of `n` slices of `total`: as even as integers allow (the first `total mod n` one
/// larger), summing to `total`.
pub fn caps(total: i64, n: u32) -> Vec<i64> {
    let n = i64::from(n.max(1));
    let total = total.max(0);
    (0..n)
        .map(|k| total / n + i64::from(k < total % n))
        .collect()
}

/// What to take from which slice to make up `want`, given each slice's room (cap − used): the
/// home slice first, then the others from the one after home, wrapping. Each take is at most
/// its slice's room; together they make `want`, or everything there is when the slices hold
/// less.
pub fn plan(want: i64, home: u32, room: &[i64]) -> Vec<(u32, i64)> {
    let n = room.len();
    let mut left = want.max(0);
    let mut takes = Vec::new();
    for k in 0..n {
        if left == 0 {
            break;
        }
        let s = (home as usize + k) % n;
        let t = room[s].max(0).min(left);
        if t > 0 {
            takes.push((s as u32, t));
            left -= t;
        }
    }
    takes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn count_table() {
        for (total, per, max, n) in [
            (0, 1000, 64, 1),
            (999, 1000, 64, 1),
            (1000, 1000, 64, 1),
            (2000, 1000, 64, 2),
            (64_000, 1000, 64, 64),
            (1_000_000_000, 1000, 64, 64),
            (1000, 0, 8, 8),
            (-5, 10, 8, 1),
        ] {
            assert_eq!(count(total, per, max), n, "{total} / {per} ≤ {max}");
        }
    }

    #[test]
    fn caps_table() {
        assert_eq!(caps(10, 3), vec![4, 3, 3]);
        assert_eq!(caps(9, 3), vec![3, 3, 3]);
        assert_eq!(caps(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(caps(0, 2), vec![0, 0]);
        assert_eq!(caps(7, 0), vec![7]);
        assert_eq!(caps(-3, 2), vec![0, 0]);
    }

    #[test]
    fn plan_table() {
        // Home has room: all from home.
        assert_eq!(plan(5, 1, &[9, 9, 9]), vec![(1, 5)]);
        // Home short: the rest from the next, wrapping.
        assert_eq!(plan(5, 2, &[9, 9, 2]), vec![(2, 2), (0, 3)]);
        // Home dry: borrowed whole.
        assert_eq!(plan(5, 0, &[0, 9, 9]), vec![(1, 5)]);
        // Not enough anywhere: everything there is.
        assert_eq!(plan(10, 0, &[1, 2, 3]), vec![(0, 1), (1, 2), (2, 3)]);
        // Nothing left, nothing wanted.
        assert_eq!(plan(3, 1, &[0, 0]), vec![]);
        assert_eq!(plan(0, 0, &[5]), vec![]);
        // A slice over its cap (never stored, but) gives nothing.
        assert_eq!(plan(2, 0, &[-1, 4]), vec![(1, 2)]);
    }

    proptest! {
        #[test]
        fn caps_sum_to_the_total_and_differ_by_at_most_one(total in 0i64..10_000_000, n in 1u32..200) {
            let c = caps(total, n);
            prop_assert_eq!(c.len(), n as usize);
            prop_assert_eq!(c.iter().sum::<i64>(), total);
            prop_assert!(c.iter().max().unwrap() - c.iter().min().unwrap() <= 1);
        }

        #[test]
        fn a_plan_takes_the_lesser_of_want_and_room_never_more_than_a_slice_has(
            want in 0i64..1000, home in 0u32..16, room in proptest::collection::vec(0i64..100, 1..16)
        ) {
            let home = home % room.len() as u32;
            let p = plan(want, home, &room);
            let taken: i64 = p.iter().map(|(_, t)| t).sum();
            prop_assert_eq!(taken, want.min(room.iter().sum()));
            for (s, t) in &p {
                prop_assert!(*t > 0 && *t <= room[*s as usize]);
            }
            let mut seen: Vec<u32> = p.iter().map(|(s, _)| *s).collect();
            seen.dedup();
            prop_assert_eq!(seen.len(), p.len());
            if let Some((first, _)) = p.first() && room[home as usize] > 0 && want > 0 {
                prop_assert_eq!(*first, home);
            }
        }
    }
}
