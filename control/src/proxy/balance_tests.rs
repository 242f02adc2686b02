//! The balancer's choice and passive health.

use super::*;
use proptest::prelude::*;

fn candidate() -> impl Strategy<Value = Candidate> {
    (0u32..5, any::<bool>(), any::<bool>()).prop_map(|(outstanding, ejected, tried)| Candidate {
        outstanding,
        ejected,
        tried,
    })
}

proptest! {
    /// Never a tried candidate; never an ejected one while a healthy untried
    /// one is left; something whenever anything untried is left.
    #[test]
    fn the_pick_respects_tries_and_ejections(
        candidates in prop::collection::vec(candidate(), 0..6),
        random in (any::<u64>(), any::<u64>()),
    ) {
        let picked = pick(&candidates, random);
        let untried = candidates.iter().any(|c| !c.tried);
        let healthy = candidates.iter().any(|c| !c.tried && !c.ejected);
        prop_assert_eq!(picked.is_some(), untried);
        if let Some(i) = picked {
            prop_assert!(!candidates[i].tried);
            prop_assert!(!healthy || !candidates[i].ejected);
        }
    }

    /// Over every pair of random numbers, the most loaded of several
    /// candidates is picked only when all are equally loaded: the pick is
    /// the lighter of two.
    #[test]
    fn the_busiest_replica_is_never_picked_over_a_lighter_one(
        loads in prop::collection::vec(0u32..4, 2..6),
        random in (any::<u64>(), any::<u64>()),
    ) {
        let candidates: Vec<Candidate> = loads
            .iter()
            .map(|&outstanding| Candidate { outstanding, ejected: false, tried: false })
            .collect();
        let max = *loads.iter().max().unwrap();
        let busiest = loads.iter().filter(|&&l| l == max).count();
        let i = pick(&candidates, random).unwrap();
        if busiest == 1 {
            prop_assert!(loads[i] < max);
        }
    }
}

#[test]
fn two_equal_candidates_are_both_used() {
    let idle = Candidate {
        outstanding: 0,
        ejected: false,
        tried: false,
    };
    let picks: std::collections::BTreeSet<usize> = (0..8u64)
        .filter_map(|r| pick(&[idle, idle], (r, r * 7)))
        .collect();
    assert_eq!(picks.len(), 2);
}

#[test]
fn three_failures_in_a_row_eject_for_a_while_and_a_success_brings_back() {
    let start = Instant::now();
    let mut health = PassiveHealth::default();
    health.failed(start);
    health.failed(start);
    health.succeeded();
    health.failed(start);
    health.failed(start);
    assert!(!health.is_ejected(start), "the success reset the count");
    health.failed(start);
    assert!(health.is_ejected(start));
    assert!(health.is_ejected(start + EJECT_FOR - Duration::from_millis(1)));
    assert!(!health.is_ejected(start + EJECT_FOR));
    health.failed(start);
    health.succeeded();
    assert!(!health.is_ejected(start));
}
