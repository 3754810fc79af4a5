//! Small helpers: wall clock and random ids.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::Rng;

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current UTC calendar year.
pub fn current_year() -> u16 {
    let days = i64::try_from(now_ms() / 86_400_000).unwrap_or(0);
    u16::try_from(year_of_days(days)).unwrap_or(2000)
}

/// Gregorian year of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn year_of_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400;
    if month <= 2 {
        year + 1
    } else {
        year
    }
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
    fn years_from_days() {
        assert_eq!(year_of_days(0), 1970);
        assert_eq!(year_of_days(364), 1970);
        assert_eq!(year_of_days(365), 1971);
        // 2024-12-31 and 2025-01-01.
        assert_eq!(year_of_days(20_088), 2024);
        assert_eq!(year_of_days(20_089), 2025);
        assert!(current_year() >= 2024);
    }

    #[test]
    fn random_ids() {
        let a = random_alnum(24);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_alnum(24));
    }
}
