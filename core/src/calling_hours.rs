//! Calling hours: a robot never calls a customer outside the hours their
//! depot allows, in the customer's own time zone. Weekdays and weekends have
//! separate hours (or none). Daylight-saving changes are handled by working
//! in local wall-clock time and converting each candidate instant back.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One day's allowed span, local wall-clock time, `from` inclusive, `to`
/// exclusive. Serialized as `"09:00"`-style strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyHours {
    #[serde(with = "hhmm")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "09:00"))]
    pub from: NaiveTime,
    #[serde(with = "hhmm")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "21:00"))]
    pub to: NaiveTime,
}

impl DailyHours {
    pub fn new(from: (u32, u32), to: (u32, u32)) -> Option<DailyHours> {
        let from = NaiveTime::from_hms_opt(from.0, from.1, 0)?;
        let to = NaiveTime::from_hms_opt(to.0, to.1, 0)?;
        (from < to).then_some(DailyHours { from, to })
    }
}

/// When calls may start. `None` for a kind of day means no calls that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallingHours {
    pub weekdays: Option<DailyHours>,
    pub weekends: Option<DailyHours>,
}

impl Default for CallingHours {
    /// 09:00–21:00 every day: the usual legal and courteous window.
    fn default() -> Self {
        let day = DailyHours { from: time(9, 0), to: time(21, 0) };
        CallingHours { weekdays: Some(day), weekends: Some(day) }
    }
}

fn time(h: u32, m: u32) -> NaiveTime {
    // Callers pass literal, valid hours and minutes.
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// Why a span is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursError(pub String);

impl fmt::Display for HoursError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl CallingHours {
    /// Every span must start before it ends; at least one kind of day must
    /// allow calls, or no call could ever be placed.
    pub fn check(&self) -> Result<(), HoursError> {
        for (name, d) in [("weekdays", self.weekdays), ("weekends", self.weekends)] {
            if let Some(d) = d {
                if d.from >= d.to {
                    return Err(HoursError(format!("{name}: `from` must be before `to`")));
                }
            }
        }
        if self.weekdays.is_none() && self.weekends.is_none() {
            return Err(HoursError("calls must be allowed on weekdays or weekends".into()));
        }
        Ok(())
    }

    fn for_day(&self, date: NaiveDate) -> Option<DailyHours> {
        match date.weekday() {
            Weekday::Sat | Weekday::Sun => self.weekends,
            _ => self.weekdays,
        }
    }

    /// Whether a call may start at `at` for a customer in `tz`.
    pub fn allows(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz).naive_local();
        self.for_day(local.date()).is_some_and(|h| h.from <= local.time() && local.time() < h.to)
    }

    /// The earliest instant at or after `at` when a call may start, or
    /// `None` if there is none within two weeks (which `check` rules out).
    pub fn next_allowed(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.allows(at, tz) {
            return Some(at);
        }
        let today = at.with_timezone(&tz).date_naive();
        for day in 0..15 {
            let date = today + Duration::days(day);
            let Some(hours) = self.for_day(date) else { continue };
            let Some(start) = first_instant_at_or_after(tz, date.and_time(hours.from)) else { continue };
            if start >= at && self.allows(start, tz) {
                return Some(start);
            }
        }
        None
    }
}

/// The first real instant whose local time is `local` or, when `local` falls
/// into a spring-forward gap, the first one after the gap. For a fall-back
/// overlap, the earlier of the two.
pub(crate) fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut candidate = local;
    // Gaps are at most a couple of hours anywhere on Earth.
    for _ in 0..=(4 * 60 / 15) {
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => return Some(earliest.with_timezone(&Utc)),
            LocalResult::None => candidate += Duration::minutes(15),
        }
    }
    None
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(&s, "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a time; use HH:MM, e.g. \"09:00\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid")
    }

    const MOSCOW: Tz = chrono_tz::Europe::Moscow;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const VLADIVOSTOK: Tz = chrono_tz::Asia::Vladivostok;

    #[test]
    fn inside_hours_a_call_starts_now_before_them_it_waits_for_the_opening() {
        let hours = CallingHours::default();
        // Monday 2026-11-23, 12:00 in Moscow (UTC+3).
        assert_eq!(hours.next_allowed(utc(2026, 11, 23, 9, 0), MOSCOW), Some(utc(2026, 11, 23, 9, 0)));
        // 07:30 Moscow waits until 09:00 Moscow.
        assert_eq!(hours.next_allowed(utc(2026, 11, 23, 4, 30), MOSCOW), Some(utc(2026, 11, 23, 6, 0)));
        // 21:00 Moscow is closed: next morning.
        assert!(!hours.allows(utc(2026, 11, 23, 18, 0), MOSCOW));
        assert_eq!(hours.next_allowed(utc(2026, 11, 23, 18, 0), MOSCOW), Some(utc(2026, 11, 24, 6, 0)));
    }

    #[test]
    fn the_customers_time_zone_decides_not_the_servers() {
        let hours = CallingHours::default();
        // 06:00 UTC is 09:00 in Moscow but 16:00 in Vladivostok (UTC+10)...
        let at = utc(2026, 11, 23, 6, 0);
        assert!(hours.allows(at, MOSCOW) && hours.allows(at, VLADIVOSTOK));
        // ...and 12:00 UTC is 15:00 in Moscow, 22:00 in Vladivostok.
        let at = utc(2026, 11, 23, 12, 0);
        assert!(hours.allows(at, MOSCOW));
        assert!(!hours.allows(at, VLADIVOSTOK));
        assert_eq!(hours.next_allowed(at, VLADIVOSTOK), Some(utc(2026, 11, 23, 23, 0)));
    }

    #[test]
    fn weekends_have_their_own_hours_or_none() {
        let hours = CallingHours {
            weekdays: DailyHours::new((9, 0), (21, 0)),
            weekends: DailyHours::new((11, 0), (18, 0)),
        };
        // Saturday 2026-11-28 10:00 Moscow: wait until 11:00.
        assert_eq!(hours.next_allowed(utc(2026, 11, 28, 7, 0), MOSCOW), Some(utc(2026, 11, 28, 8, 0)));
        // Saturday 18:30: Sunday 11:00.
        assert_eq!(hours.next_allowed(utc(2026, 11, 28, 15, 30), MOSCOW), Some(utc(2026, 11, 29, 8, 0)));
        let no_weekends = CallingHours { weekends: None, ..hours };
        // Friday 21:30: Monday 09:00.
        assert_eq!(
            no_weekends.next_allowed(utc(2026, 11, 27, 18, 30), MOSCOW),
            Some(utc(2026, 11, 30, 6, 0))
        );
    }

    #[test]
    fn daylight_saving_changes_move_the_utc_opening_not_the_local_one() {
        let hours = CallingHours::default();
        // Berlin springs forward on 2026-03-29 (CET+1 -> CEST+2): 09:00 local
        // is 08:00 UTC on Saturday and 07:00 UTC on Sunday.
        assert_eq!(hours.next_allowed(utc(2026, 3, 28, 21, 0), BERLIN), Some(utc(2026, 3, 29, 7, 0)));
        assert_eq!(hours.next_allowed(utc(2026, 3, 27, 21, 0), BERLIN), Some(utc(2026, 3, 28, 8, 0)));
        // Falls back on 2026-10-25: 21:00 local is 19:00 UTC the day before
        // and 20:00 UTC that day.
        assert!(hours.allows(utc(2026, 10, 25, 19, 30), BERLIN));
        assert!(!hours.allows(utc(2026, 10, 24, 19, 30), BERLIN));
    }

    #[test]
    fn an_opening_inside_a_spring_forward_gap_moves_past_the_gap() {
        // A depot that opens at 02:30 on the night Berlin skips 02:00–03:00.
        let hours = CallingHours {
            weekdays: DailyHours::new((2, 30), (5, 0)),
            weekends: DailyHours::new((2, 30), (5, 0)),
        };
        // 03:00 CEST = 01:00 UTC is the first real instant after the gap.
        assert_eq!(hours.next_allowed(utc(2026, 3, 28, 23, 0), BERLIN), Some(utc(2026, 3, 29, 1, 0)));
    }

    #[test]
    fn hours_are_checked_and_read_as_hh_mm() {
        assert!(CallingHours::default().check().is_ok());
        assert!(CallingHours { weekdays: None, weekends: None }.check().is_err());
        let bad =
            CallingHours { weekdays: Some(DailyHours { from: time(21, 0), to: time(9, 0) }), weekends: None };
        assert!(bad.check().is_err());
        let json = r#"{"weekdays":{"from":"08:30","to":"20:00"},"weekends":null}"#;
        let parsed: CallingHours = serde_json::from_str(json).expect("parses");
        assert_eq!(parsed.weekdays, DailyHours::new((8, 30), (20, 0)));
        assert_eq!(serde_json::to_string(&parsed).expect("serializes"), json);
        let err = serde_json::from_str::<CallingHours>(
            r#"{"weekdays":{"from":"8am","to":"20:00"},"weekends":null}"#,
        );
        assert!(err.is_err_and(|e| e.to_string().contains("HH:MM")));
    }
}
