//! Kafka's windowed rate (`SampledStat` with `Rate`): the quantity recorded over the last
//! `samples` windows of `window` each, divided by the time those windows span.
//!
//! A sample covers one window from its first record; a record after the window ends opens
//! the next sample, recycling the oldest (one more sample than configured is kept, so the
//! current partial window never pushes a full one out). A sample whose last record is
//! `samples * window` old no longer counts. The span the total is divided by is the time
//! since the oldest sample started, but never less than `samples - 1` full windows: a new
//! client (or one back after a pause) is measured as if the windows before it were empty,
//! so a first burst is spread over the whole span instead of being judged on its own.
//!
//! Times are milliseconds on the quota manager's own clock (`Quotas` turns `Instant`s
//! into them), as Kafka's are.

/// The window length and the number of windows a rate is measured over (Kafka's
/// `quota.window.size.seconds` and `quota.window.num`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Length of one sample window, in milliseconds (at least 1).
    pub window_ms: u64,
    /// Number of sample windows (at least 1).
    pub samples: u64,
}

impl RateConfig {
    /// The configuration of `samples` windows of `window_seconds` each; zeros are raised to
    /// one (the config loader refuses them, this keeps arithmetic total anyway).
    pub fn new(window_seconds: u32, samples: u32) -> RateConfig {
        RateConfig {
            window_ms: u64::from(window_seconds.max(1)) * 1000,
            samples: u64::from(samples.max(1)),
        }
    }

    /// How long after its last record a sample stops counting.
    fn expire_age_ms(&self) -> u64 {
        self.window_ms.saturating_mul(self.samples)
    }

    /// The whole span the rate is measured over (`window * samples`).
    pub fn span_ms(&self) -> u64 {
        self.expire_age_ms()
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    last_record_ms: u64,
    value: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Sample {
        Sample {
            start_ms: now_ms,
            last_record_ms: now_ms,
            value: 0.0,
        }
    }
}

/// A rate over sampled windows. Holds at most `samples + 1` samples.
#[derive(Debug, Default, Clone)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    /// Adds `value` at `now_ms` (a negative value takes back an earlier record).
    pub fn record(&mut self, config: &RateConfig, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
            self.current = 0;
        }
        let current = self.samples[self.current];
        if now_ms.saturating_sub(current.start_ms) >= config.window_ms {
            self.advance(config, now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.last_record_ms = now_ms;
    }

    /// Opens the next sample at `now_ms`, reusing the oldest slot once `samples + 1` exist.
    fn advance(&mut self, config: &RateConfig, now_ms: u64) {
        let slots = usize::try_from(config.samples.saturating_add(1)).unwrap_or(usize::MAX);
        self.current = (self.current + 1) % slots.max(1);
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(now_ms));
            self.current = self.samples.len() - 1;
        } else {
            self.samples[self.current] = Sample::new(now_ms);
        }
    }

    /// Resets samples whose last record is too old to count (Kafka keeps a sample that
    /// overlaps the measured span even if it started before it).
    fn purge(&mut self, config: &RateConfig, now_ms: u64) {
        let expire_age = config.expire_age_ms();
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.last_record_ms) >= expire_age {
                *sample = Sample::new(now_ms);
            }
        }
    }

    /// The span the total is divided by at `now_ms`, in milliseconds: since the oldest
    /// counting sample started, padded to `samples - 1` full windows. Never zero.
    pub fn window_size_ms(&mut self, config: &RateConfig, now_ms: u64) -> u64 {
        self.purge(config, now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / config.window_ms;
        let min_full_windows = config.samples - 1;
        if full_windows < min_full_windows {
            let padding = (min_full_windows - full_windows).saturating_mul(config.window_ms);
            elapsed = elapsed.saturating_add(padding);
        }
        elapsed.max(1)
    }

    /// The rate at `now_ms`, per second.
    pub fn measure(&mut self, config: &RateConfig, now_ms: u64) -> f64 {
        let window_ms = self.window_size_ms(config, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window_ms as f64 / 1000.0)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long, with nothing more recorded, until a rate
/// `observed` over a span of `window_ms` falls to `bound`. With observed rate O, bound T
/// and span W, waiting X makes the rate O * W / (W + X); that is T for X = (O - T) / T * W.
/// In milliseconds, zero when the rate is within the bound.
pub fn throttle_ms(observed: f64, bound: f64, window_ms: u64) -> f64 {
    if observed <= bound || bound <= 0.0 || observed.is_nan() {
        return 0.0;
    }
    (observed - bound) / bound * window_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: RateConfig = RateConfig {
        window_ms: 1000,
        samples: 11,
    };

    #[test]
    fn first_records_are_spread_over_the_padded_span() {
        let mut rate = Rate::default();
        rate.record(&CONFIG, 1000.0, 0);
        // Ten empty windows are assumed before the first one.
        assert_eq!(rate.window_size_ms(&CONFIG, 0), 10_000);
        assert_eq!(rate.measure(&CONFIG, 0), 100.0);
        // Time in the current window adds to the padding.
        rate.record(&CONFIG, 1000.0, 500);
        assert_eq!(rate.window_size_ms(&CONFIG, 500), 10_500);
        assert_eq!(rate.measure(&CONFIG, 500), 2000.0 / 10.5);
    }

    #[test]
    fn the_span_grows_past_the_padding_once_windows_fill() {
        let mut rate = Rate::default();
        for second in 0..20u64 {
            rate.record(&CONFIG, 100.0, second * 1000);
        }
        // At 19.5 s twelve samples are kept (8 s..19 s); the one of 8 s is 11.5 s old and
        // no longer counts, so eleven samples over the 10.5 s since 9 s do.
        let window = rate.window_size_ms(&CONFIG, 19_500);
        assert_eq!(window, 10_500);
        let measured = rate.measure(&CONFIG, 19_500);
        assert!((measured - 1100.0 / 10.5).abs() < 1e-9, "{measured}");
    }

    #[test]
    fn samples_older_than_the_span_stop_counting() {
        let mut rate = Rate::default();
        rate.record(&CONFIG, 5000.0, 0);
        assert!(rate.measure(&CONFIG, 10_999) > 0.0);
        assert_eq!(rate.measure(&CONFIG, 11_000), 0.0);
    }

    #[test]
    fn a_negative_record_takes_a_value_back() {
        let mut rate = Rate::default();
        rate.record(&CONFIG, 700.0, 0);
        rate.record(&CONFIG, 300.0, 0);
        rate.record(&CONFIG, -300.0, 0);
        assert_eq!(rate.measure(&CONFIG, 0), 70.0);
    }

    #[test]
    fn at_most_samples_plus_one_samples_are_kept() {
        let mut rate = Rate::default();
        for second in 0..100u64 {
            rate.record(&CONFIG, 1.0, second * 1000);
        }
        assert_eq!(rate.samples.len(), 12);
    }

    #[test]
    fn throttle_time_is_kafkas_formula() {
        assert_eq!(throttle_ms(2000.0, 1000.0, 10_000), 10_000.0);
        assert_eq!(throttle_ms(1500.0, 1000.0, 11_000), 5_500.0);
        assert_eq!(throttle_ms(1000.0, 1000.0, 10_000), 0.0);
        assert_eq!(throttle_ms(10.0, 1000.0, 10_000), 0.0);
        assert_eq!(throttle_ms(f64::NAN, 1000.0, 10_000), 0.0);
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_panic() {
        let mut rate = Rate::default();
        rate.record(&CONFIG, 1.0, 5_000);
        rate.record(&CONFIG, 1.0, 1_000);
        assert!(rate.measure(&CONFIG, 0) >= 0.0);
        assert!(rate.window_size_ms(&CONFIG, 0) >= 1);
    }
}
