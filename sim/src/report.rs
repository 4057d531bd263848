//! How the sweeps report what the oracle refused.

/// Fail with the first `shown` of `failures` (and their count), if any:
/// how every crash and fault sweep reports the states the oracle refused.
pub fn assert_no_violations(failures: &[String], shown: usize) {
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures
            .iter()
            .take(shown)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
