//! Route planning: when will the courier be at each stop, in the order they
//! planned, and does that fit the customer's delivery window?
//!
//! The estimate is deliberately simple and explainable on a phone screen:
//! travel between consecutive stops is the straight-line distance at a
//! configured speed when both carry coordinates, a fixed default otherwise;
//! each stop takes a fixed service time; a courier who arrives before a
//! window opens waits for it (the customer is not home yet either).

use crate::ids::StopId;
use crate::wire::GeoPoint;
use chrono::{DateTime, Duration, Utc};
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

    #[test]
    fn settings_are_checked() {
        assert!(PlanSettings::default().check().is_ok());
        assert!(PlanSettings { speed_kmh: 0.0, ..PlanSettings::default() }.check().is_err());
        assert!(PlanSettings { speed_kmh: f64::NAN, ..PlanSettings::default() }.check().is_err());
        assert!(PlanSettings { service_minutes: 1000, ..PlanSettings::default() }.check().is_err());
    }
}
