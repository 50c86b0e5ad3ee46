//! Automatic call-ahead: the courier switches it on once in the morning and
//! each customer is called when the courier is about `lead_minutes` away by
//! the planned order's ETAs (the reference network's rule of thumb is an
//! hour). The client core applies this rule on the phone, offline-first,
//! through the same outbox as a tap (docs/architecture.md §5).

use crate::ids::StopId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Shortest and longest lead time the app accepts, in minutes: under 10 the
/// customer cannot get home; over 3 hours the ETA means little.
pub const LEAD_MINUTES_MIN: u32 = 10;
pub const LEAD_MINUTES_MAX: u32 = 180;
pub const LEAD_MINUTES_DEFAULT: u32 = 60;

/// The lead times a depot lets its couriers choose, within
/// [`LEAD_MINUTES_MIN`]..=[`LEAD_MINUTES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeadBounds {
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 180))]
    pub min_minutes: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 180))]
    pub max_minutes: u32,
}

impl Default for LeadBounds {
    fn default() -> Self {
        Self { min_minutes: LEAD_MINUTES_MIN, max_minutes: LEAD_MINUTES_MAX }
    }
}

impl LeadBounds {
    pub fn check(&self) -> Result<(), String> {
        let (lo, hi) = (self.min_minutes, self.max_minutes);
        if !(LEAD_MINUTES_MIN..=LEAD_MINUTES_MAX).contains(&lo)
            || !(LEAD_MINUTES_MIN..=LEAD_MINUTES_MAX).contains(&hi)
            || lo > hi
        {
            return Err(format!(
                "the bounds must satisfy {LEAD_MINUTES_MIN} <= min_minutes <= max_minutes <= {LEAD_MINUTES_MAX}, \
                 got {lo} and {hi}"
            ));
        }
        Ok(())
    }

    /// `lead` moved into the bounds: what the rule uses when the depot
    /// narrowed them after the courier chose.
    pub fn clamp(&self, lead: u32) -> u32 {
        lead.clamp(self.min_minutes, self.max_minutes.max(self.min_minutes))
    }
}

/// The courier's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoCallAhead {
    pub enabled: bool,
    pub lead_minutes: u32,
}

impl Default for AutoCallAhead {
    fn default() -> Self {
        Self { enabled: false, lead_minutes: LEAD_MINUTES_DEFAULT }
    }
}

impl AutoCallAhead {
    /// Within the depot's bounds.
    pub fn check(&self, bounds: &LeadBounds) -> Result<(), String> {
        if !(bounds.min_minutes..=bounds.max_minutes).contains(&self.lead_minutes) {
            return Err(format!(
                "lead_minutes must be between {} and {} (the depot's bounds), got {}",
                bounds.min_minutes, bounds.max_minutes, self.lead_minutes
            ));
        }
        Ok(())
    }

    fn lead(&self) -> Duration {
        Duration::minutes(i64::from(self.lead_minutes))
    }
}

/// A stop as the rule needs it, in planned order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoStop {
    pub id: StopId,
    /// `None` when visited (out of the chain).
    pub eta: Option<DateTime<Utc>>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Any call or request ever made for it today, by a tap or by this rule
    /// (a call the courier cancelled included: the courier decided).
    pub touched: bool,
}

/// What the rule decided for one stop: call it now, because of this ETA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoDue {
    pub id: StopId,
    pub eta: DateTime<Utc>,
}

/// When the courier arrives, as far as the customer is concerned: an early
/// courier waits for the window.
fn arrival(s: &AutoStop) -> Option<DateTime<Utc>> {
    s.eta.map(|eta| eta.max(s.window_start))
}

/// The stops to call at `now`: untouched, not visited, window not over, and
/// the courier within the lead time of them.
pub fn due(settings: &AutoCallAhead, stops: &[AutoStop], now: DateTime<Utc>) -> Vec<AutoDue> {
    if !settings.enabled {
        return Vec::new();
    }
    let horizon = now + settings.lead();
    stops
        .iter()
        .filter(|s| !s.touched && s.window_end > now)
        .filter_map(|s| {
            arrival(s).filter(|a| *a <= horizon).map(|_| AutoDue { id: s.id, eta: s.eta.unwrap_or(now) })
        })
        .collect()
}

/// When the next untouched stop comes within the lead time (if the ETAs hold):
/// the moment to look again. `None` when nothing is left to call.
pub fn next_check(settings: &AutoCallAhead, stops: &[AutoStop], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !settings.enabled {
        return None;
    }
    stops
        .iter()
        .filter(|s| !s.touched && s.window_end > now)
        .filter_map(arrival)
        .map(|a| (a - settings.lead()).max(now))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().expect("time")
    }

    fn stop(id: i64, eta: (u32, u32), window: ((u32, u32), (u32, u32))) -> AutoStop {
        AutoStop {
            id: StopId(id),
            eta: Some(at(eta.0, eta.1)),
            window_start: at(window.0 .0, window.0 .1),
            window_end: at(window.1 .0, window.1 .1),
            touched: false,
        }
    }

    const ON: AutoCallAhead = AutoCallAhead { enabled: true, lead_minutes: 60 };

    #[test]
    fn a_stop_is_due_when_its_eta_enters_the_lead_time() {
        let stops = [stop(1, (9, 50), ((9, 0), (12, 0))), stop(2, (10, 30), ((9, 0), (12, 0)))];
        assert_eq!(due(&ON, &stops, at(9, 0)), vec![AutoDue { id: StopId(1), eta: at(9, 50) }]);
        assert_eq!(next_check(&ON, &stops[1..], at(9, 0)), Some(at(9, 30)));
        assert_eq!(due(&ON, &stops, at(9, 30)).len(), 2);
    }

    #[test]
    fn an_early_courier_calls_by_the_window_not_the_eta() {
        // At the door at 9:10 but the customer's window opens at 11:00.
        let stops = [stop(1, (9, 10), ((11, 0), (13, 0)))];
        assert!(due(&ON, &stops, at(9, 0)).is_empty());
        assert_eq!(next_check(&ON, &stops, at(9, 0)), Some(at(10, 0)));
        assert_eq!(due(&ON, &stops, at(10, 0)).len(), 1);
    }

    #[test]
    fn touched_visited_and_closed_stops_are_never_called() {
        let mut touched = stop(1, (9, 10), ((9, 0), (12, 0)));
        touched.touched = true;
        let mut visited = stop(2, (9, 10), ((9, 0), (12, 0)));
        visited.eta = None;
        let closed = stop(3, (9, 10), ((8, 0), (9, 0)));
        let stops = [touched, visited, closed];
        assert!(due(&ON, &stops, at(9, 0)).is_empty());
        assert_eq!(next_check(&ON, &stops, at(9, 0)), None);
    }

    #[test]
    fn off_calls_nothing_and_the_lead_is_bounded() {
        let stops = [stop(1, (9, 10), ((9, 0), (12, 0)))];
        let off = AutoCallAhead { enabled: false, ..ON };
        assert!(due(&off, &stops, at(9, 0)).is_empty());
        assert_eq!(next_check(&off, &stops, at(9, 0)), None);
        let all = LeadBounds::default();
        assert!(AutoCallAhead { lead_minutes: 5, ..ON }.check(&all).is_err());
        assert!(AutoCallAhead { lead_minutes: 181, ..ON }.check(&all).is_err());
        assert!(AutoCallAhead::default().check(&all).is_ok());
        let depot = LeadBounds { min_minutes: 30, max_minutes: 45 };
        assert!(depot.check().is_ok());
        assert!(AutoCallAhead::default().check(&depot).is_err(), "60 is outside 30..=45");
        assert_eq!((depot.clamp(60), depot.clamp(10), depot.clamp(40)), (45, 30, 40));
        assert!(LeadBounds { min_minutes: 50, max_minutes: 40 }.check().is_err());
        assert!(LeadBounds { min_minutes: 5, max_minutes: 40 }.check().is_err());
        assert!(!AutoCallAhead::default().enabled, "off until the courier switches it on");
    }
}
