//! The public lists of closed sets are slices, so adding a member (a
//! failure kind, a reason, a strategy, a policy) changes
//! no public type. A list that becomes a fixed-length array again fails to
//! compile here.

use modelfleet::Policy;
use modelfleet::health::FailureKind;
use modelfleet::select::{BuiltinStrategy, Reason};

#[test]
fn closed_lists_are_slices() {
    let kinds: &'static [FailureKind] = FailureKind::ALL;
    let reasons: &'static [Reason] = Reason::ALL;
    let strategies: &'static [BuiltinStrategy] = BuiltinStrategy::all();
    let policies: &'static [Policy] = Policy::all();
    // Every list holds distinct members, named as they parse.
    for (i, k) in kinds.iter().enumerate() {
        assert_eq!(k.to_string().parse::<FailureKind>().ok(), Some(*k));
        assert!(!kinds[..i].contains(k));
    }
    for (i, r) in reasons.iter().enumerate() {
        assert!(!reasons[..i].contains(r));
    }
    for (i, s) in strategies.iter().enumerate() {
        assert_eq!(s.to_string().parse::<BuiltinStrategy>().ok(), Some(*s));
        assert!(
            !strategies[..i]
                .iter()
                .any(|t| t.to_string() == s.to_string())
        );
    }
    for (i, p) in policies.iter().enumerate() {
        assert_eq!(p.to_string().parse::<Policy>().ok(), Some(*p));
        assert!(!policies[..i].contains(p));
    }
}
