//! Timestamps as runbook writes them: RFC 3339 in UTC with microseconds always written out
//! (`2026-11-21T06:39:52.402000Z`), so that every one has the same width and text order is
//! time order (`...:52Z` would sort after `...:52.4Z`).

/// Now.
pub fn now() -> String {
    format(jiff::Timestamp::now())
}

/// A moment, written the one way.
pub fn format(at: jiff::Timestamp) -> String {
    format!("{at:.6}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn always_writes_six_fractional_digits() {
        let whole: jiff::Timestamp = "2026-11-21T06:39:52Z".parse().unwrap();
        assert_eq!(super::format(whole), "2026-11-21T06:39:52.000000Z");
        let nanos: jiff::Timestamp = "2026-11-21T06:39:52.123456789Z".parse().unwrap();
        assert_eq!(super::format(nanos), "2026-11-21T06:39:52.123456Z");
        assert_eq!(super::now().len(), "2026-11-21T06:39:52.000000Z".len());
    }
}
