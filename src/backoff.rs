//! Retry delays for forwarding: exponential with full jitter, capped.

pub const BASE_MS: f64 = 2_000.0;
pub const CAP_MS: f64 = 300_000.0;

/// Delay before the next try after `attempts` failed tries; `unit` is a random number in [0, 1).
pub fn delay_ms(attempts: u32, unit: f64) -> f64 {
    let exp = BASE_MS * 2f64.powi(attempts.saturating_sub(1).min(20) as i32);
    let ceiling = exp.min(CAP_MS);
    // Half fixed, half jitter: never retry immediately, never in lockstep with other tabs.
    ceiling / 2.0 + ceiling / 2.0 * unit.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        assert_eq!(delay_ms(1, 0.0), 1_000.0);
        assert_eq!(delay_ms(1, 1.0), 2_000.0);
        assert_eq!(delay_ms(3, 1.0), 8_000.0);
        assert_eq!(delay_ms(50, 1.0), CAP_MS);
        assert_eq!(delay_ms(50, 0.0), CAP_MS / 2.0);
    }

    #[test]
    fn jitter_stays_in_band() {
        for i in 0..100 {
            let u = i as f64 / 100.0;
            let d = delay_ms(4, u);
            assert!((8_000.0..=16_000.0).contains(&d));
        }
    }
}
