//! Human-readable durations and ages for replies (`2m 15s`, `5m ago`).

/// `45s`, `2m 15s`, `1h 3m`, `2d 4h`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// The largest unit only: `just now`, `40s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        0..=4 => "just now".to_owned(),
        s @ 5..=59 => format!("{s}s ago"),
        s @ 60..=3599 => format!("{}m ago", s / 60),
        s @ 3600..=86_399 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(135), "2m 15s");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(3780), "1h 3m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(2 * 86_400 + 4 * 3600 + 5), "2d 4h");
        assert_eq!(duration(-3), "0s");
    }

    #[test]
    fn ages() {
        assert_eq!(age(2), "just now");
        assert_eq!(age(40), "40s ago");
        assert_eq!(age(300), "5m ago");
        assert_eq!(age(3 * 3600 + 10), "3h ago");
        assert_eq!(age(2 * 86_400), "2d ago");
    }
}
