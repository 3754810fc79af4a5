//! Small helpers: wall clock, calendar year and random ids.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::Rng;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current UTC calendar year.
pub fn current_year() -> u16 {
    year_of_ms(now_ms())
}

/// The UTC calendar year `ms` milliseconds after the Unix epoch (2000 if out of range).
fn year_of_ms(ms: u64) -> u16 {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| u16::try_from(t.year()).ok())
        .unwrap_or(2000)
}

/// `n` random ASCII letters and digits.
pub fn random_alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_from_milliseconds() {
        const DAY_MS: u64 = 86_400_000;
        assert_eq!(year_of_ms(0), 1970);
        assert_eq!(year_of_ms(365 * DAY_MS - 1), 1970);
        assert_eq!(year_of_ms(365 * DAY_MS), 1971);
        // 2024 is a leap year: its last millisecond, then 2025-01-01T00:00:00Z.
        assert_eq!(year_of_ms(1_735_689_600_000 - 1), 2024);
        assert_eq!(year_of_ms(1_735_689_600_000), 2025);
        // 2100 is not a leap year: 2100-01-01 is 365 days after 2099-01-01.
        assert_eq!(year_of_ms(4_102_444_800_000 - 1), 2099);
        assert_eq!(year_of_ms(4_102_444_800_000), 2100);
        // Past year 9999 `time` (without large-dates) has no date: the fallback.
        assert_eq!(year_of_ms(u64::MAX), 2000);
    }

    #[test]
    fn current_year_is_the_clocks() {
        let before = OffsetDateTime::now_utc().year();
        let year = i32::from(current_year());
        let after = OffsetDateTime::now_utc().year();
        assert!(year >= 2024);
        assert!(
            (before..=after).contains(&year),
            "{before} <= {year} <= {after}"
        );
    }

    #[test]
    fn random_ids() {
        let a = random_alnum(24);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_alnum(24));
    }
}
