//! UTC timestamps in RFC 3339 (`2026-11-21T10:26:00Z`), without a date crate: the
//! conversions the report and the evidence (an E01's acquisition dates) need.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds between 1601-01-01 (FILETIME) and 1970-01-01 (Unix).
const FILETIME_TO_UNIX: i64 = 11_644_473_600;

/// Now, to the second.
pub fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    from_unix(since)
}

/// A Windows FILETIME (100 ns since 1601), as registry keys record their last write. `None`
/// for 0 (never written).
pub fn from_filetime(filetime: u64) -> Option<String> {
    (filetime != 0).then(|| from_unix((filetime / 10_000_000) as i64 - FILETIME_TO_UNIX))
}

/// Seconds since 1970 as RFC 3339 UTC (proleptic Gregorian, H. Hinnant's civil_from_days).
pub fn from_unix(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(from_unix(1_795_257_014), "2026-11-21T10:30:14Z");
        assert_eq!(from_unix(-1), "1969-12-31T23:59:59Z");
        // 2026-01-01T00:00:00Z as a FILETIME.
        assert_eq!(
            from_filetime((1_767_225_600 + FILETIME_TO_UNIX) as u64 * 10_000_000).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(from_filetime(0), None);
    }
}
