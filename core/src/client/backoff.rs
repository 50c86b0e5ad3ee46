//! Exponential backoff with jitter, shared by the websocket and the outbox so
//! a fleet of phones coming back into coverage does not reconnect in step.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff { min, max, next: min }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: the current step, less up to half of it at random;
    /// the step doubles up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let jitter = rand::rng().random_range(0.0..=0.5);
        step.mul_f64(1.0 - jitter)
    }

    /// Jump to the longest delay: for failures a quick retry cannot fix.
    pub(crate) fn jump_to_max(&mut self) {
        self.next = self.max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_below_each_step() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let steps = [100, 200, 400, 700, 700];
        for ms in steps {
            let d = b.next_delay();
            let step = Duration::from_millis(ms);
            assert!(d <= step && d >= step / 2, "{d:?} outside [{:?}, {step:?}]", step / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
