//! The best hour to call (docs/calling-policy.md, "Retries at the best
//! hour"): from what a depot's customers did before, pick the moment for a
//! retry that is most likely to be answered, within the policy's spacing,
//! calling hours and deadline. Pure: the server brings the history and the
//! bounds, this decides.
//!
//! The history is counted in local slots: the weekday and hour of the
//! customer's own clock when the attempt was placed (the depot's customers
//! by weekday and hour, one customer by hour alone, their history being
//! short). Rates are smoothed towards the level above them (customer
//! towards the depot's weekday-hour, that towards the depot's hour across
//! weekdays, that towards the depot's overall rate), each weighted by how
//! many attempts it rests on, so a slot with three attempts cannot outvote
//! one with three hundred.

use crate::call::AttemptResult;
use crate::calling_hours::{first_instant_at_or_after, CallingHours};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use chrono_tz::Tz;

/// Below this many attempts in a depot's whole history, retries keep the
/// fixed spacing: the hours are not known yet.
pub const MIN_DEPOT_ATTEMPTS: u32 = 100;
/// How many attempts' worth of weight a depot-level rate lends to the level
/// below it (hour → weekday-hour); the level's own attempts outweigh it once
/// there are more of them.
pub const DEPOT_PRIOR_WEIGHT: f64 = 10.0;
/// The same for one customer's own hour: a customer's few attempts weigh
/// more each than the depot's many, but three missed calls at 10:00 still
/// only halve the depot's rate for that hour.
pub const CUSTOMER_PRIOR_WEIGHT: f64 = 3.0;
/// A retry moves off the fixed spacing only for at least this much more
/// expected answer rate (absolute): waiting has a cost (the courier comes
/// closer, fewer attempts fit) that a marginal gain does not pay for.
pub const MIN_GAIN: f64 = 0.05;
/// How far past the fixed spacing the search looks.
pub const HORIZON_HOURS: i64 = 24;
/// The rate assumed where nothing at all is known.
const NEUTRAL_RATE: f64 = 0.5;

/// What an ended attempt says about the customer's answering: `Some(true)`
/// answered (heard the message: the policy's "answered"), `Some(false)` not
/// (no answer, busy, voicemail, hung up before hearing it), `None` nothing
/// (the provider failed, the call was cancelled, the server stopped).
pub fn answer_signal(result: AttemptResult) -> Option<bool> {
    match result {
        AttemptResult::Completed | AttemptResult::NoInput => Some(true),
        AttemptResult::HungUpEarly
        | AttemptResult::NoAnswer
        | AttemptResult::Busy
        | AttemptResult::Voicemail => Some(false),
        AttemptResult::Failed | AttemptResult::Cancelled | AttemptResult::Interrupted => None,
    }
}

/// Attempts that said something, and how many of them were answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub attempts: u32,
    pub answered: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.attempts = self.attempts.saturating_add(other.attempts);
        self.answered = self.answered.saturating_add(other.answered);
    }

    /// `answered / attempts` pulled towards `prior` with `weight` attempts'
    /// worth of it (a Beta prior, i.e. additive smoothing).
    fn smoothed(self, prior: f64, weight: f64) -> f64 {
        (f64::from(self.answered) + weight * prior) / (f64::from(self.attempts) + weight)
    }
}

/// A local weekday (Monday = 0) and hour (0–23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub weekday: u8,
    pub hour: u8,
}

impl Slot {
    /// The slot `at` falls in on a clock in `tz`.
    pub fn of(at: DateTime<Utc>, tz: Tz) -> Slot {
        let local = at.with_timezone(&tz);
        // Both fit in a u8 by construction (0–6, 0–23).
        Slot { weekday: local.weekday().num_days_from_monday() as u8, hour: local.hour() as u8 }
    }
}

/// What the server learned, for one retry: the depot's attempts by local
/// weekday and hour, and this customer's by local hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerHistory {
    /// `[weekday][hour]`, Monday = 0.
    pub depot: [[Tally; 24]; 7],
    pub customer: [Tally; 24],
}

impl AnswerHistory {
    pub fn depot_total(&self) -> Tally {
        let mut t = Tally::default();
        for day in &self.depot {
            for h in day {
                t.add(*h);
            }
        }
        t
    }

    /// The expected answer rate of an attempt placed in `slot`.
    pub fn expected_rate(&self, slot: Slot) -> f64 {
        let (w, h) = (usize::from(slot.weekday % 7), usize::from(slot.hour % 24));
        let overall = self.depot_total().smoothed(NEUTRAL_RATE, DEPOT_PRIOR_WEIGHT);
        let mut hour = Tally::default();
        for day in &self.depot {
            hour.add(day[h]);
        }
        let hour = hour.smoothed(overall, DEPOT_PRIOR_WEIGHT);
        let weekday_hour = self.depot[w][h].smoothed(hour, DEPOT_PRIOR_WEIGHT);
        self.customer[h].smoothed(weekday_hour, CUSTOMER_PRIOR_WEIGHT)
    }
}

/// Where a retry may go: not before `earliest` (the end of the attempt plus
/// the policy's spacing), only when `hours` allow in the customer's `tz`,
/// strictly before `deadline` (the delivery window's start or end, as the
/// policy says).
#[derive(Debug, Clone, Copy)]
pub struct RetryBounds<'a> {
    pub earliest: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub hours: &'a CallingHours,
    pub tz: Tz,
}

/// When the next attempt goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryAt {
    /// At the fixed spacing (`earliest`; calling hours still defer it as
    /// they always do): too little history, or no allowed hour clearly
    /// better.
    Spacing,
    /// At `at`, the start of a local hour whose expected answer rate
    /// (`expected`) beats the fixed spacing's (`at_spacing`) by at least
    /// [`MIN_GAIN`].
    BestHour { at: DateTime<Utc>, expected: f64, at_spacing: f64 },
}

/// Picks the moment for a retry: the first allowed moment at or after the
/// spacing, or the start of a later local hour (within [`HORIZON_HOURS`],
/// allowed by the calling hours, before the deadline) with the best expected
/// answer rate; ties go to the earlier moment.
pub fn choose(history: &AnswerHistory, bounds: &RetryBounds<'_>) -> RetryAt {
    if history.depot_total().attempts < MIN_DEPOT_ATTEMPTS {
        return RetryAt::Spacing;
    }
    let tz = bounds.tz;
    let Some(first) = bounds.hours.next_allowed(bounds.earliest, tz) else { return RetryAt::Spacing };
    if first >= bounds.deadline {
        return RetryAt::Spacing;
    }
    let at_spacing = history.expected_rate(Slot::of(first, tz));
    let (mut best, mut best_rate) = (first, at_spacing);
    let end = bounds.deadline.min(first + Duration::hours(HORIZON_HOURS));
    let local = first.with_timezone(&tz).naive_local();
    let Some(mut hour) = local.date().and_hms_opt(local.hour(), 0, 0) else { return RetryAt::Spacing };
    loop {
        hour += Duration::hours(1);
        let Some(candidate) = first_instant_at_or_after(tz, hour) else { break };
        if candidate >= end {
            break;
        }
        if candidate <= first || !bounds.hours.allows(candidate, tz) {
            continue;
        }
        let rate = history.expected_rate(Slot::of(candidate, tz));
        if rate > best_rate {
            (best, best_rate) = (candidate, rate);
        }
    }
    if best != first && best_rate >= at_spacing + MIN_GAIN {
        RetryAt::BestHour { at: best, expected: best_rate, at_spacing }
    } else {
        RetryAt::Spacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calling_hours::DailyHours;
    use chrono::TimeZone;

    const MOSCOW: Tz = chrono_tz::Europe::Moscow;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid")
    }

    fn tally(attempts: u32, answered: u32) -> Tally {
        Tally { attempts, answered }
    }

    /// A depot whose customers answer 30% of the time at every hour of every
    /// day (20 attempts a slot from 08:00 to 21:59), except `good` on
    /// `weekday`, where they answer 90%.
    fn depot_with_a_good_hour(weekday: u8, good: u8) -> AnswerHistory {
        let mut h = AnswerHistory::default();
        for day in 0..7 {
            for hour in 8..22 {
                h.depot[day][hour] = tally(20, 6);
            }
        }
        h.depot[usize::from(weekday)][usize::from(good)] = tally(20, 18);
        h
    }

    fn bounds(earliest: DateTime<Utc>, deadline: DateTime<Utc>, hours: &CallingHours) -> RetryBounds<'_> {
        RetryBounds { earliest, deadline, hours, tz: MOSCOW }
    }

    // Monday 2026-11-23; Moscow is UTC+3 all year.
    fn monday_moscow(h: u32, mi: u32) -> DateTime<Utc> {
        utc(2026, 11, 23, h - 3, mi)
    }

    #[test]
    fn only_attempts_that_tell_something_about_the_customer_count() {
        assert_eq!(answer_signal(AttemptResult::Completed), Some(true));
        assert_eq!(answer_signal(AttemptResult::NoInput), Some(true));
        for r in [
            AttemptResult::HungUpEarly,
            AttemptResult::NoAnswer,
            AttemptResult::Busy,
            AttemptResult::Voicemail,
        ] {
            assert_eq!(answer_signal(r), Some(false), "{r:?}");
        }
        for r in [AttemptResult::Failed, AttemptResult::Cancelled, AttemptResult::Interrupted] {
            assert_eq!(answer_signal(r), None, "{r:?}");
        }
    }

    #[test]
    fn a_retry_waits_for_the_hour_customers_answer_in() {
        // A no-answer at 10:20 Monday, 15 min spacing: the fixed retry would
        // be 10:35; Monday 18:00 is far better.
        let history = depot_with_a_good_hour(0, 18);
        let hours = CallingHours::default();
        let b = bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours);
        match choose(&history, &b) {
            RetryAt::BestHour { at, expected, at_spacing } => {
                assert_eq!(at, monday_moscow(18, 0));
                assert!(expected > 0.7 && at_spacing < 0.35, "{expected} vs {at_spacing}");
            }
            other => panic!("expected the best hour, got {other:?}"),
        }
    }

    #[test]
    fn the_good_hour_of_another_weekday_does_not_move_a_retry() {
        // Tuesday's 18:00 is good, Monday's is not: a Monday retry keeps its
        // spacing (the hour across weekdays rises a little, not enough).
        let history = depot_with_a_good_hour(1, 18);
        let hours = CallingHours::default();
        assert_eq!(
            choose(&history, &bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours)),
            RetryAt::Spacing
        );
    }

    #[test]
    fn never_past_the_deadline_nor_outside_calling_hours() {
        let history = depot_with_a_good_hour(0, 18);
        let hours = CallingHours::default();
        // The delivery window starts at 17:30: 18:00 is too late.
        let b = bounds(monday_moscow(10, 35), monday_moscow(17, 30), &hours);
        assert_eq!(choose(&history, &b), RetryAt::Spacing);
        // Calls end at 17:00 on weekdays: 18:00 is not allowed either.
        let short = CallingHours { weekdays: DailyHours::new((9, 0), (17, 0)), ..CallingHours::default() };
        let b = bounds(monday_moscow(10, 35), monday_moscow(23, 0), &short);
        assert_eq!(choose(&history, &b), RetryAt::Spacing);
    }

    #[test]
    fn a_new_depot_keeps_the_fixed_spacing() {
        let mut history = AnswerHistory::default();
        // 99 attempts, all answered at 18:00 on Mondays: too few to trust.
        history.depot[0][18] = tally(MIN_DEPOT_ATTEMPTS - 1, MIN_DEPOT_ATTEMPTS - 1);
        let hours = CallingHours::default();
        assert_eq!(
            choose(&history, &bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours)),
            RetryAt::Spacing
        );
        history.depot[0][10] = tally(1, 0);
        assert!(matches!(
            choose(&history, &bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours)),
            RetryAt::BestHour { .. }
        ));
    }

    #[test]
    fn a_customers_own_history_outweighs_the_depots() {
        // The depot answers best at 18:00; this customer never did (4 tries)
        // but answered every time at 13:00.
        let mut history = depot_with_a_good_hour(0, 18);
        history.customer[18] = tally(4, 0);
        history.customer[13] = tally(4, 4);
        let hours = CallingHours::default();
        match choose(&history, &bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours)) {
            RetryAt::BestHour { at, .. } => assert_eq!(at, monday_moscow(13, 0)),
            other => panic!("expected 13:00, got {other:?}"),
        }
    }

    #[test]
    fn a_small_gain_is_not_worth_the_wait() {
        let mut history = depot_with_a_good_hour(0, 18);
        history.depot[0][18] = tally(20, 7); // 35% against 30%: smoothed, under MIN_GAIN
        let hours = CallingHours::default();
        assert_eq!(
            choose(&history, &bounds(monday_moscow(10, 35), monday_moscow(20, 0), &hours)),
            RetryAt::Spacing
        );
    }

    #[test]
    fn when_the_spacing_ends_at_night_the_search_starts_at_the_opening() {
        // A retry due at 22:10 Monday: calls open 09:00 Tuesday. Tuesday's
        // 09:00 is as good as any: the ordinary deferral handles it.
        let history = depot_with_a_good_hour(0, 18);
        let hours = CallingHours::default();
        let tuesday_evening = utc(2026, 11, 24, 17, 0);
        assert_eq!(
            choose(&history, &bounds(monday_moscow(22, 10), tuesday_evening, &hours)),
            RetryAt::Spacing
        );
        // With Tuesday's 11:00 the best, it goes there.
        let mut history = history;
        history.depot[1][11] = tally(20, 19);
        match choose(&history, &bounds(monday_moscow(22, 10), tuesday_evening, &hours)) {
            RetryAt::BestHour { at, .. } => assert_eq!(at, utc(2026, 11, 24, 8, 0)),
            other => panic!("expected Tuesday 11:00, got {other:?}"),
        }
    }

    #[test]
    fn hours_are_the_customers_local_hours() {
        // The same history read for a customer in Vladivostok (UTC+10):
        // Monday 18:00 there is 08:00 UTC.
        let history = depot_with_a_good_hour(0, 18);
        let hours = CallingHours::default();
        let vladivostok = chrono_tz::Asia::Vladivostok;
        let b = RetryBounds {
            earliest: utc(2026, 11, 23, 0, 35),
            deadline: utc(2026, 11, 23, 10, 0),
            hours: &hours,
            tz: vladivostok,
        };
        match choose(&history, &b) {
            RetryAt::BestHour { at, .. } => assert_eq!(at, utc(2026, 11, 23, 8, 0)),
            other => panic!("expected 18:00 Vladivostok, got {other:?}"),
        }
        assert_eq!(Slot::of(utc(2026, 11, 23, 8, 0), vladivostok), Slot { weekday: 0, hour: 18 });
    }

    #[test]
    fn smoothing_leans_on_the_level_above_until_a_slot_has_attempts_of_its_own() {
        let mut history = AnswerHistory::default();
        for hour in 8..22 {
            history.depot[0][hour] = tally(10, 5);
        }
        // One lucky answer at 07:00 does not make 07:00 a sure thing.
        history.depot[0][7] = tally(1, 1);
        let rate = history.expected_rate(Slot { weekday: 0, hour: 7 });
        assert!(rate > 0.5 && rate < 0.6, "{rate}");
        // An hour nobody was called in gets the depot's overall rate.
        let unknown = history.expected_rate(Slot { weekday: 3, hour: 3 });
        assert!((unknown - 76.0 / 151.0).abs() < 1e-9, "{unknown}");
    }
}
