//! What call-ahead saved (issue #15 part 4): failed visits avoided, customers
//! confirmed before the courier arrived, courier minutes not spent phoning,
//! and what each confirmed delivery cost. One rule, used by the daily report
//! and through it by the dashboard (docs/messaging.md, "What it saved").
//!
//! The server does not know when a courier arrived (visits are local to the
//! phone, ADR 0003), so "before arrival" means before the stop's delivery
//! window opened: a customer who declined once the window had started may
//! still have saved the trip, but is not counted. The figures are a floor.

use crate::call::Outcome;
use crate::ids::CourierId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Minutes a courier spends phoning one customer by hand, unless the depot
/// says otherwise: dialling, ringing, a short talk, noting the answer.
pub const DEFAULT_MINUTES_PER_MANUAL_CALL: u32 = 2;
pub const MAX_MINUTES_PER_MANUAL_CALL: u32 = 60;

/// One smart call as the figures see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    pub courier_id: CourierId,
    /// `None` while the call is not finished.
    pub outcome: Option<Outcome>,
    /// When the outcome was known (the call's last change).
    pub learned_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    /// Robot attempts placed for it.
    pub attempts: u32,
}

/// The figures for a depot or one courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Savings {
    /// Declines and reschedules learned before the delivery window opened:
    /// trips the courier did not make to a customer who would not be there.
    pub failed_visits_avoided: u32,
    /// Customers who confirmed before the delivery window opened.
    pub confirmed_before_arrival: u32,
    /// Every confirmation, whenever it came.
    pub confirmed: u32,
    /// Robot attempts placed: each a call the courier did not make.
    pub attempts: u32,
    /// `attempts` × the depot's minutes per manual call.
    pub courier_minutes_saved: u32,
    /// What the day's messages and robot calls cost, in minor units of the
    /// report's currency.
    pub cost_minor: i64,
    /// `cost_minor / confirmed`, rounded; absent when nobody confirmed.
    pub cost_per_confirmed_minor: Option<i64>,
}

/// One courier's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CourierSavings {
    pub courier_id: CourierId,
    #[serde(flatten)]
    pub savings: Savings,
}

impl Savings {
    /// Counts one call in.
    pub fn add(&mut self, call: &CallFacts, minutes_per_manual_call: u32) {
        self.attempts += call.attempts;
        self.courier_minutes_saved += call.attempts * minutes_per_manual_call;
        let early = call.learned_at < call.window_start;
        match call.outcome {
            Some(Outcome::Confirmed) => {
                self.confirmed += 1;
                self.confirmed_before_arrival += u32::from(early);
            }
            Some(Outcome::Declined | Outcome::RescheduleRequested) => {
                self.failed_visits_avoided += u32::from(early);
            }
            _ => {}
        }
    }

    /// Adds what was spent and derives the cost per confirmed delivery.
    pub fn with_cost(mut self, cost_minor: i64) -> Savings {
        self.cost_minor = cost_minor;
        self.cost_per_confirmed_minor = (self.confirmed > 0).then(|| {
            let confirmed = i64::from(self.confirmed);
            (cost_minor + confirmed / 2) / confirmed
        });
        self
    }
}

/// The depot's figures and each courier's (couriers in id order), from its
/// calls and what was spent per courier.
pub fn tally(
    calls: &[CallFacts],
    cost_by_courier: &[(CourierId, i64)],
    minutes_per_manual_call: u32,
) -> (Savings, Vec<CourierSavings>) {
    let mut depot = Savings::default();
    let mut couriers: std::collections::BTreeMap<CourierId, Savings> = std::collections::BTreeMap::new();
    for c in calls {
        depot.add(c, minutes_per_manual_call);
        couriers.entry(c.courier_id).or_default().add(c, minutes_per_manual_call);
    }
    for (courier, _) in cost_by_courier {
        couriers.entry(*courier).or_default();
    }
    let cost_of =
        |id: CourierId| cost_by_courier.iter().filter(|(c, _)| *c == id).map(|(_, m)| m).sum::<i64>();
    let total: i64 = cost_by_courier.iter().map(|(_, m)| m).sum();
    let per_courier = couriers
        .into_iter()
        .map(|(courier_id, s)| CourierSavings { courier_id, savings: s.with_cost(cost_of(courier_id)) })
        .collect();
    (depot.with_cost(total), per_courier)
}

/// Minutes billed for an answered robot call: every started minute.
pub fn billed_minutes(talk_secs: u32) -> u32 {
    talk_secs.div_ceil(60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().expect("time")
    }

    fn call(courier: i64, outcome: Option<Outcome>, learned: (u32, u32), attempts: u32) -> CallFacts {
        CallFacts {
            courier_id: CourierId(courier),
            outcome,
            learned_at: at(learned.0, learned.1),
            window_start: at(10, 0),
            attempts,
        }
    }

    #[test]
    fn only_answers_learned_before_the_window_count_as_avoided_or_early() {
        let calls = [
            call(1, Some(Outcome::Declined), (9, 0), 1),
            call(1, Some(Outcome::RescheduleRequested), (9, 59), 2),
            call(1, Some(Outcome::Declined), (10, 0), 1),
            call(2, Some(Outcome::Confirmed), (9, 30), 1),
            call(2, Some(Outcome::Confirmed), (10, 30), 3),
            call(2, Some(Outcome::NoAnswer), (9, 30), 3),
            call(2, None, (9, 30), 1),
        ];
        let (depot, couriers) = tally(&calls, &[(CourierId(2), 700), (CourierId(3), 50)], 2);
        assert_eq!(depot.failed_visits_avoided, 2);
        assert_eq!(depot.confirmed_before_arrival, 1);
        assert_eq!(depot.confirmed, 2);
        assert_eq!(depot.attempts, 12);
        assert_eq!(depot.courier_minutes_saved, 24);
        assert_eq!((depot.cost_minor, depot.cost_per_confirmed_minor), (750, Some(375)));
        let ids: Vec<i64> = couriers.iter().map(|c| c.courier_id.0).collect();
        assert_eq!(ids, vec![1, 2, 3], "a courier with only costs is listed too");
        assert_eq!(couriers[0].savings.failed_visits_avoided, 2);
        assert_eq!(couriers[0].savings.cost_per_confirmed_minor, None, "nobody confirmed");
        assert_eq!(couriers[1].savings.cost_per_confirmed_minor, Some(350));
        assert_eq!(couriers[1].savings.courier_minutes_saved, 16);
    }

    #[test]
    fn a_started_minute_is_billed() {
        assert_eq!([0, 1, 60, 61].map(billed_minutes), [0, 1, 1, 2]);
    }
}
