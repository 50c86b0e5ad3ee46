//! Route planning: when will the courier be at each stop, in the order they
//! planned, and does that fit the customer's delivery window?
//!
//! The estimate is deliberately simple and explainable on a phone screen:
//! travel between consecutive stops is the straight-line distance at a
//! configured speed when both carry coordinates, a fixed default otherwise;
//! each stop takes a fixed service time; a courier who arrives before a
//! window opens waits for it (the customer is not home yet either).
//!
//! [`replan`] moves one stop after its customer answered (docs/adr/0010):
//! out of today's chain on a decline or another day, to where a new window
//! fits on the same day.

use crate::ids::StopId;
use crate::wire::{GeoPoint, OutOfChain, ReplanReason};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Mean Earth radius used by the haversine formula.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// What the estimate assumes; the courier can tune it in the app.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// Minutes spent at each stop (parking, stairs, handing over).
    pub service_minutes: u32,
    /// Average speed over the straight line between two stops, km/h. City
    /// driving with a detour factor of ~1.4 makes 20–25 a sane default.
    pub speed_kmh: f64,
    /// Travel minutes when a leg's distance is unknown (a stop without
    /// coordinates, or the first stop when the courier's position is unknown).
    pub default_travel_minutes: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self { service_minutes: 5, speed_kmh: 20.0, default_travel_minutes: 10 }
    }
}

impl PlanSettings {
    /// Checks the settings make an estimate possible; the message says which.
    pub fn check(&self) -> Result<(), String> {
        if !(self.speed_kmh.is_finite() && (1.0..=200.0).contains(&self.speed_kmh)) {
            return Err(format!("speed_kmh must be between 1 and 200, got {}", self.speed_kmh));
        }
        if self.service_minutes > 240 {
            return Err(format!("service_minutes must be at most 240, got {}", self.service_minutes));
        }
        if self.default_travel_minutes > 240 {
            return Err(format!(
                "default_travel_minutes must be at most 240, got {}",
                self.default_travel_minutes
            ));
        }
        Ok(())
    }
}

/// How an estimated arrival relates to the stop's delivery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowFit {
    Inside,
    /// Arrives before the window opens (and waits).
    Early,
    /// Arrives after the window closed.
    Late,
}

/// One stop as the planner needs it, in planned order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanStop {
    pub id: StopId,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub location: Option<GeoPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopEta {
    pub id: StopId,
    /// Estimated arrival.
    pub eta: DateTime<Utc>,
    pub fit: WindowFit,
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

fn travel(from: Option<GeoPoint>, to: Option<GeoPoint>, settings: &PlanSettings) -> Duration {
    match from.zip(to) {
        Some((a, b)) => {
            let hours = distance_km(a, b) / settings.speed_kmh.max(1.0);
            // Rounded to whole seconds: an ETA is shown to the minute anyway.
            Duration::seconds((hours * 3600.0).round() as i64)
        }
        None => Duration::minutes(i64::from(settings.default_travel_minutes)),
    }
}

/// ETAs for `stops` visited in the given order, leaving `origin` (the
/// courier's position, when the app knows it) at `start`.
pub fn etas(
    stops: &[PlanStop],
    start: DateTime<Utc>,
    origin: Option<GeoPoint>,
    settings: &PlanSettings,
) -> Vec<StopEta> {
    let service = Duration::minutes(i64::from(settings.service_minutes));
    let mut clock = start;
    let mut here = origin;
    let mut out = Vec::with_capacity(stops.len());
    for stop in stops {
        let eta = clock + travel(here, stop.location, settings);
        let fit = if eta < stop.window_start {
            WindowFit::Early
        } else if eta > stop.window_end {
            WindowFit::Late
        } else {
            WindowFit::Inside
        };
        out.push(StopEta { id: stop.id, eta, fit });
        clock = eta.max(stop.window_start) + service;
        // Leaving a stop without coordinates, the next leg's length is unknown.
        here = stop.location;
    }
    out
}

// ---------------------------------------------------------------- re-planning

/// Where a stop stands when the route is re-planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Still ahead of the courier today: counted in the ETAs.
    Ahead,
    /// Behind the courier (delivered, or its window is over): keeps its place
    /// in the order but costs no time ahead.
    Behind,
    /// Out of today's chain: no ETA, not called ahead.
    Out(OutOfChain),
}

/// One stop of the route as [`replan`] sees it, in the current order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplanStop {
    /// With the stop's current window (a new one already in place).
    pub stop: PlanStop,
    pub place: Place,
}

/// A customer's answer that may move their stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Declined,
    /// "Talk to the courier": the courier decides, nothing moves.
    WantsCourier,
    /// The customer picked a new window (already in the stop's `PlanStop`),
    /// on the route's day or on another.
    NewWindow {
        another_day: bool,
    },
}

/// The route after a re-plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replanned {
    /// Every stop of the route exactly once, in the new order.
    pub stop_ids: Vec<StopId>,
    pub reason: ReplanReason,
}

/// Whether a window starting at `start` lies on another local day (in the
/// stop's `tz`) than the route's `date`.
pub fn on_another_day(start: DateTime<Utc>, date: NaiveDate, tz: Tz) -> bool {
    start.with_timezone(&tz).date_naive() != date
}

/// Re-plans `route` (in its current order, the courier's if they planned it)
/// after the customer of `stop` answered, with the courier leaving `origin`
/// at `start`. Only that stop moves; every other stop keeps its place
/// relative to the rest, so the courier's own order survives:
///
/// * declined, or a window on another day: the stop leaves today's chain
///   and goes to the end of the route;
/// * a new window today: the stop goes where it fits best (cheapest insertion),
///   back in the chain if it had left it;
/// * "talk to the courier": nothing moves.
///
/// `None` when nothing changes (or the stop is not on the route).
pub fn replan(
    route: &[ReplanStop],
    stop: StopId,
    answer: Answer,
    start: DateTime<Utc>,
    origin: Option<GeoPoint>,
    settings: &PlanSettings,
) -> Option<Replanned> {
    let at = route.iter().position(|s| s.stop.id == stop)?;
    let moved = route[at];
    let others: Vec<ReplanStop> = route.iter().copied().filter(|s| s.stop.id != stop).collect();
    let (reason, order) = match answer {
        Answer::WantsCourier => return None,
        Answer::Declined | Answer::NewWindow { another_day: true } => {
            let reason =
                if answer == Answer::Declined { ReplanReason::Declined } else { ReplanReason::AnotherDay };
            let mut order: Vec<StopId> = others.iter().map(|s| s.stop.id).collect();
            order.push(stop);
            (reason, order)
        }
        Answer::NewWindow { another_day: false } => {
            let order = insert(&others, at, moved.stop, start, origin, settings);
            (ReplanReason::NewWindowToday, order)
        }
    };
    let was_out = matches!(moved.place, Place::Out(_));
    let unchanged =
        order.iter().eq(route.iter().map(|s| &s.stop.id)) && was_out == reason.out_of_chain().is_some();
    (!unchanged).then_some(Replanned { stop_ids: order, reason })
}

/// What an order costs, compared in this order: windows missed, then minutes
/// late in total, then when the last stop is done, then how far the moved
/// stop went from where it was (the courier's order disturbed least).
type Cost = (usize, i64, DateTime<Utc>, usize);

/// Cheapest insertion of `moved` into `others` (the route without it; it
/// stood at index `was`): every position among the stops ahead is tried and
/// the one of least [`Cost`] wins, so a position that keeps every window is
/// always preferred to one that misses any (when none exists, the fewest
/// and least late misses). Stops behind the courier or out of the chain
/// keep their places and cost no time. Quadratic at worst in the stops
/// ahead; a position stops being costed as soon as its ETAs rejoin the
/// current ones (a wait for a window absorbs the detour).
fn insert(
    others: &[ReplanStop],
    was: usize,
    moved: PlanStop,
    start: DateTime<Utc>,
    origin: Option<GeoPoint>,
    settings: &PlanSettings,
) -> Vec<StopId> {
    let ahead: Vec<PlanStop> = others.iter().filter(|s| s.place == Place::Ahead).map(|s| s.stop).collect();
    let ahead_before = others[..was.min(others.len())].iter().filter(|s| s.place == Place::Ahead).count();
    let base = Chain::of(&ahead, start, origin, settings);
    let mut best: Option<(Cost, usize)> = None;
    for k in 0..=ahead.len() {
        let cost = base.cost_with(&ahead, k, moved, start, origin, settings, k.abs_diff(ahead_before));
        if best.is_none_or(|(b, _)| cost < b) {
            best = Some((cost, k));
        }
    }
    let k = best.map_or(ahead.len(), |(_, k)| k);
    // Before the k-th stop ahead; after the last one when k is past them all.
    let index = if ahead.is_empty() {
        was.min(others.len())
    } else if k < ahead.len() {
        others.iter().position(|s| s.stop.id == ahead[k].id).unwrap_or(others.len())
    } else {
        others.iter().rposition(|s| s.place == Place::Ahead).map_or(others.len(), |i| i + 1)
    };
    let mut order: Vec<StopId> = others.iter().map(|s| s.stop.id).collect();
    order.insert(index, moved.id);
    order
}

/// The current chain's timing, to cost insertions against.
struct Chain {
    /// When the courier leaves each stop (after waiting and service).
    depart: Vec<DateTime<Utc>>,
    /// Windows missed and seconds late, summed over stops `..i`.
    prefix: Vec<(usize, i64)>,
    /// The same over stops `i..`.
    suffix: Vec<(usize, i64)>,
}

fn lateness(eta: DateTime<Utc>, stop: &PlanStop) -> (usize, i64) {
    let late = (eta - stop.window_end).num_seconds();
    if late > 0 {
        (1, late)
    } else {
        (0, 0)
    }
}

fn add(a: (usize, i64), b: (usize, i64)) -> (usize, i64) {
    (a.0 + b.0, a.1 + b.1)
}

impl Chain {
    fn of(
        stops: &[PlanStop],
        start: DateTime<Utc>,
        origin: Option<GeoPoint>,
        settings: &PlanSettings,
    ) -> Chain {
        let service = Duration::minutes(i64::from(settings.service_minutes));
        let (mut clock, mut here) = (start, origin);
        let (mut depart, mut late) = (Vec::with_capacity(stops.len()), Vec::with_capacity(stops.len()));
        for stop in stops {
            let eta = clock + travel(here, stop.location, settings);
            late.push(lateness(eta, stop));
            clock = eta.max(stop.window_start) + service;
            here = stop.location;
            depart.push(clock);
        }
        let mut prefix = vec![(0, 0)];
        for l in &late {
            prefix.push(add(*prefix.last().unwrap_or(&(0, 0)), *l));
        }
        let mut suffix = vec![(0, 0); late.len() + 1];
        for i in (0..late.len()).rev() {
            suffix[i] = add(suffix[i + 1], late[i]);
        }
        Chain { depart, prefix, suffix }
    }

    /// The cost of the chain with `moved` before stop `k` (after all at
    /// `k == stops.len()`).
    #[allow(clippy::too_many_arguments)]
    fn cost_with(
        &self,
        stops: &[PlanStop],
        k: usize,
        moved: PlanStop,
        start: DateTime<Utc>,
        origin: Option<GeoPoint>,
        settings: &PlanSettings,
        shift: usize,
    ) -> Cost {
        let service = Duration::minutes(i64::from(settings.service_minutes));
        let (mut clock, mut here) = match k {
            0 => (start, origin),
            _ => (self.depart[k - 1], stops[k - 1].location),
        };
        let eta = clock + travel(here, moved.location, settings);
        let mut late = add(self.prefix[k], lateness(eta, &moved));
        clock = eta.max(moved.window_start) + service;
        here = moved.location;
        let mut finish = clock;
        for (j, stop) in stops.iter().enumerate().skip(k) {
            if j > k && clock == self.depart[j - 1] {
                // From here on the chain runs exactly as it does now.
                late = add(late, self.suffix[j]);
                finish = self.depart.last().copied().unwrap_or(finish);
                break;
            }
            let eta = clock + travel(here, stop.location, settings);
            late = add(late, lateness(eta, stop));
            clock = eta.max(stop.window_start) + service;
            here = stop.location;
            finish = clock;
        }
        (late.0, late.1, finish, shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).single().expect("valid time")
    }

    fn stop(id: i64, from: (u32, u32), to: (u32, u32), location: Option<(f64, f64)>) -> PlanStop {
        PlanStop {
            id: StopId(id),
            window_start: at(from.0, from.1),
            window_end: at(to.0, to.1),
            location: location.map(|(lat, lon)| GeoPoint { lat, lon }),
        }
    }

    #[test]
    fn distance_matches_a_known_pair() {
        // Moscow Kremlin to Saint Basil's Cathedral is about 0.4 km; Moscow
        // to Saint Petersburg about 634 km.
        let kremlin = GeoPoint { lat: 55.7520, lon: 37.6175 };
        let spb = GeoPoint { lat: 59.9386, lon: 30.3141 };
        let d = distance_km(kremlin, spb);
        assert!((d - 634.0).abs() < 5.0, "got {d}");
        assert_eq!(distance_km(kremlin, kremlin), 0.0);
    }

    #[test]
    fn stops_without_coordinates_use_the_default_leg_and_service_time() {
        let s = PlanSettings { service_minutes: 5, speed_kmh: 20.0, default_travel_minutes: 10 };
        let stops = [stop(1, (9, 0), (11, 0), None), stop(2, (9, 0), (11, 0), None)];
        let e = etas(&stops, at(9, 0), None, &s);
        assert_eq!(e[0].eta, at(9, 10));
        // 9:10 arrival + 5 min service + 10 min travel.
        assert_eq!(e[1].eta, at(9, 25));
        assert!(e.iter().all(|x| x.fit == WindowFit::Inside));
    }

    #[test]
    fn straight_line_legs_follow_the_configured_speed() {
        // Two points 0.1° of latitude apart: ~11.12 km; at 20 km/h ~33.4 min.
        let s = PlanSettings { service_minutes: 0, speed_kmh: 20.0, default_travel_minutes: 10 };
        let stops =
            [stop(1, (9, 0), (12, 0), Some((55.0, 37.0))), stop(2, (9, 0), (12, 0), Some((55.1, 37.0)))];
        let e = etas(&stops, at(9, 0), Some(GeoPoint { lat: 55.0, lon: 37.0 }), &s);
        assert_eq!(e[0].eta, at(9, 0), "the courier is already there");
        let leg = (e[1].eta - e[0].eta).num_seconds();
        assert!((1990..=2015).contains(&leg), "leg of {leg} s");
    }

    #[test]
    fn an_early_arrival_waits_for_the_window_and_is_flagged() {
        let s = PlanSettings { service_minutes: 5, speed_kmh: 20.0, default_travel_minutes: 10 };
        let stops = [stop(1, (10, 0), (11, 0), None), stop(2, (10, 0), (10, 10), None)];
        let e = etas(&stops, at(9, 0), None, &s);
        assert_eq!((e[0].eta, e[0].fit), (at(9, 10), WindowFit::Early));
        // Waits until 10:00, serves until 10:05, 10 min to the next: 10:15.
        assert_eq!((e[1].eta, e[1].fit), (at(10, 15), WindowFit::Late));
    }

    #[test]
    fn the_order_decides_the_fit() {
        let s = PlanSettings::default();
        let late_first = [stop(1, (12, 0), (13, 0), None), stop(2, (9, 0), (9, 30), None)];
        let e = etas(&late_first, at(9, 0), None, &s);
        assert_eq!(e[1].fit, WindowFit::Late);
        let reordered = [late_first[1], late_first[0]];
        let e = etas(&reordered, at(9, 0), None, &s);
        assert_eq!(e[0].fit, WindowFit::Inside);
    }

    fn ahead(s: PlanStop) -> ReplanStop {
        ReplanStop { stop: s, place: Place::Ahead }
    }

    fn ids(order: &[StopId]) -> Vec<i64> {
        order.iter().map(|s| s.0).collect()
    }

    fn replanned(route: &[ReplanStop], id: i64, answer: Answer) -> Option<(Vec<i64>, ReplanReason)> {
        replan(route, StopId(id), answer, at(9, 0), None, &PlanSettings::default())
            .map(|r| (ids(&r.stop_ids), r.reason))
    }

    /// The ETAs of `order` over the stops ahead in `route`.
    fn fits(route: &[ReplanStop], order: &[i64]) -> Vec<(i64, WindowFit)> {
        let chain: Vec<PlanStop> = order
            .iter()
            .filter_map(|id| route.iter().find(|s| s.stop.id.0 == *id))
            .filter(|s| s.place == Place::Ahead)
            .map(|s| s.stop)
            .collect();
        etas(&chain, at(9, 0), None, &PlanSettings::default()).into_iter().map(|e| (e.id.0, e.fit)).collect()
    }

    #[test]
    fn a_declined_stop_leaves_the_chain_for_the_end_and_the_rest_keep_the_couriers_order() {
        // The courier's own order, not the windows'.
        let route = [
            ahead(stop(3, (10, 0), (11, 0), None)),
            ahead(stop(1, (9, 0), (10, 0), None)),
            ahead(stop(2, (9, 0), (12, 0), None)),
        ];
        assert_eq!(replanned(&route, 1, Answer::Declined), Some((vec![3, 2, 1], ReplanReason::Declined)));
        // Already last: the order stays, the stop still leaves the chain.
        assert_eq!(replanned(&route, 2, Answer::Declined), Some((vec![3, 1, 2], ReplanReason::Declined)));
        // Already out and last: nothing to say.
        let mut out = route;
        out[2].place = Place::Out(OutOfChain::Declined);
        assert_eq!(replanned(&out, 2, Answer::Declined), None);
        assert_eq!(replanned(&route, 9, Answer::Declined), None, "not on this route");
    }

    #[test]
    fn a_customer_who_asks_for_the_courier_stays_put() {
        let route = [ahead(stop(1, (9, 0), (10, 0), None)), ahead(stop(2, (9, 0), (10, 0), None))];
        assert_eq!(replanned(&route, 1, Answer::WantsCourier), None);
    }

    #[test]
    fn a_window_on_another_day_leaves_the_chain_like_a_decline() {
        let route = [ahead(stop(1, (9, 0), (10, 0), None)), ahead(stop(2, (9, 0), (10, 0), None))];
        let answer = Answer::NewWindow { another_day: true };
        assert_eq!(replanned(&route, 1, answer), Some((vec![2, 1], ReplanReason::AnotherDay)));
        let tz = chrono_tz::Europe::Moscow;
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        // 23:30 UTC on the 23rd is 02:30 on the 24th in Moscow.
        assert!(on_another_day(at(23, 30), day, tz));
        assert!(!on_another_day(at(20, 30), day, tz), "23:30 in Moscow is still the 23rd");
    }

    #[test]
    fn a_later_window_today_moves_the_stop_to_where_every_window_holds() {
        // Stop 5 was second; its customer picked 11:00–12:00. 10 min legs,
        // 5 min at each stop, from 9:00: after 3 the courier is at 10:15,
        // waits for 11:00, and reaches 4 at 11:15, before its window opens.
        let route = [
            ahead(stop(1, (9, 0), (10, 0), None)),
            ahead(stop(5, (11, 0), (12, 0), None)),
            ahead(stop(2, (9, 30), (10, 30), None)),
            ahead(stop(3, (10, 0), (11, 0), None)),
            ahead(stop(4, (12, 0), (13, 0), None)),
        ];
        let answer = Answer::NewWindow { another_day: false };
        let (order, reason) = replanned(&route, 5, answer).expect("moved");
        assert_eq!((order.clone(), reason), (vec![1, 2, 3, 5, 4], ReplanReason::NewWindowToday));
        assert!(
            fits(&route, &order).iter().all(|(_, f)| *f != WindowFit::Late),
            "{:?}",
            fits(&route, &order)
        );
        // Where it was, stop 2 and 3 would be late.
        assert!(fits(&route, &[1, 5, 2, 3, 4]).iter().any(|(_, f)| *f == WindowFit::Late));
        // Already where it fits: nothing changes.
        let settled: Vec<ReplanStop> = [0, 2, 3, 1, 4].iter().map(|&i| route[i]).collect();
        assert_eq!(replanned(&settled, 5, answer), None);
    }

    #[test]
    fn when_no_place_keeps_every_window_the_fewest_and_least_late_misses_win() {
        let route = [
            ahead(stop(9, (9, 10), (9, 20), None)),
            ahead(stop(1, (9, 0), (9, 15), None)),
            ahead(stop(2, (9, 10), (9, 30), None)),
        ];
        // First: 1 and 2 miss theirs; between them: 9 and 2; last: only 9.
        let (order, _) = replanned(&route, 9, Answer::NewWindow { another_day: false }).expect("moved");
        assert_eq!(order, vec![1, 2, 9]);
        let late: Vec<i64> = fits(&route, &order)
            .into_iter()
            .filter(|(_, f)| *f == WindowFit::Late)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(late, vec![9]);
    }

    #[test]
    fn stops_behind_the_courier_or_out_of_the_chain_keep_their_places_and_cost_no_time() {
        // Six stops of the early morning, done (or given up); one declined.
        let mut route: Vec<ReplanStop> = (10..16)
            .map(|id| ReplanStop { stop: stop(id, (7, 0), (8, 0), None), place: Place::Behind })
            .collect();
        route.push(ahead(stop(1, (9, 0), (10, 0), None)));
        route.push(ReplanStop {
            stop: stop(20, (9, 0), (10, 0), None),
            place: Place::Out(OutOfChain::Declined),
        });
        route.push(ahead(stop(2, (10, 0), (10, 40), None)));
        route.push(ahead(stop(7, (9, 30), (10, 0), None)));
        // Had the six cost 15 min each, 7 could only go last, late. As it
        // is, it fits before 1 or before 2 (ahead or behind 1 costs the
        // same); it stays nearest to where it was.
        let (order, _) = replanned(&route, 7, Answer::NewWindow { another_day: false }).expect("moved");
        assert_eq!(order, vec![10, 11, 12, 13, 14, 15, 1, 20, 7, 2]);
    }

    #[test]
    fn a_stop_out_of_the_chain_with_a_new_window_today_comes_back() {
        let route = [
            ahead(stop(1, (9, 0), (10, 0), None)),
            ReplanStop { stop: stop(2, (10, 0), (11, 0), None), place: Place::Out(OutOfChain::AnotherDay) },
        ];
        let got = replanned(&route, 2, Answer::NewWindow { another_day: false });
        assert_eq!(got, Some((vec![1, 2], ReplanReason::NewWindowToday)), "same order, back in the chain");
    }

    #[test]
    fn settings_are_checked() {
        assert!(PlanSettings::default().check().is_ok());
        assert!(PlanSettings { speed_kmh: 0.0, ..PlanSettings::default() }.check().is_err());
        assert!(PlanSettings { speed_kmh: f64::NAN, ..PlanSettings::default() }.check().is_err());
        assert!(PlanSettings { service_minutes: 1000, ..PlanSettings::default() }.check().is_err());
    }
}
