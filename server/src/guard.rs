//! The send guard (issue #12: SMS pumping): before a call is requested or a
//! text handed to a provider, the depot's limits are checked in the same
//! transaction: a daily quota of SMS and of calls (the depot's local day),
//! and the number prefixes its customers may be reached at (by default the
//! depot's own country: the calling code of the country its time zone lies
//! in, `+7` for Europe/Moscow; none for a zone of no country such as UTC,
//! whose depot must be given its destinations). A refused
//! request gets `429 quota_exceeded` or `403 destination_not_allowed` and
//! nothing is sent; a refused text (queued before the quota ran out) ends
//! `refused`, counted in the daily report.

use crate::error::AppError;
use crate::store::{limits, queries, Db, StoreError};
use callahead_core::wire::{ErrorCode, SendLimits};
use callahead_core::DepotId;
use chrono::{DateTime, Utc};

/// Limits of a depot in `time_zone` that has none of its own.
pub fn defaults(time_zone: &str) -> SendLimits {
    SendLimits {
        sms_per_day: 2000,
        calls_per_day: 5000,
        allowed_destinations: home_calling_code(time_zone).into_iter().map(str::to_owned).collect(),
    }
}

/// The calling code of the country `time_zone` lies in (`+7` for
/// Europe/Moscow and Asia/Almaty, `+49` for Europe/Berlin); `None` for a
/// zone of no country (UTC, Etc/…) or one this server does not know.
pub fn home_calling_code(time_zone: &str) -> Option<&'static str> {
    use crate::zone_calling_codes::ZONES;
    ZONES.binary_search_by(|(zone, _)| (*zone).cmp(time_zone)).ok().map(|i| ZONES[i].1)
}

pub fn check_limits(l: &SendLimits) -> Result<(), AppError> {
    let bad = |field: &str, m: &str| {
        Err(AppError::new(ErrorCode::ValidationFailed, m.to_owned()).with_field(field))
    };
    if l.sms_per_day > 1_000_000 || l.calls_per_day > 1_000_000 {
        return bad("sms_per_day", "at most 1,000,000 a day");
    }
    if l.allowed_destinations.len() > 50 {
        return bad("allowed_destinations", "at most 50 prefixes");
    }
    for (i, p) in l.allowed_destinations.iter().enumerate() {
        let digits = p.strip_prefix('+').unwrap_or("");
        if !(1..=6).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return bad(&format!("allowed_destinations[{i}]"), "a prefix is + and 1 to 6 digits, e.g. +7");
        }
    }
    Ok(())
}

/// The depot's limits; `None` if there is no such depot.
pub fn limits_of(db: &Db, depot: DepotId) -> Result<Option<SendLimits>, StoreError> {
    let Some(own) = limits::depot_limits(db, depot)? else { return Ok(None) };
    Ok(Some(match own {
        Some(own) => own,
        None => defaults(&queries::depot(db, depot)?.map(|d| d.time_zone).unwrap_or_default()),
    }))
}

/// Limits for a depot that vanished meanwhile: nothing may be sent.
fn none_allowed() -> SendLimits {
    SendLimits { sms_per_day: 0, calls_per_day: 0, allowed_destinations: Vec::new() }
}

pub fn allows(l: &SendLimits, phone: &str) -> bool {
    l.allowed_destinations.iter().any(|p| phone.starts_with(p.as_str()))
}

fn not_allowed(field: String) -> AppError {
    AppError::new(
        ErrorCode::DestinationNotAllowed,
        "this number is outside the countries the depot may call or text (by default its own country, from \
         its time zone; an admin sets others in its send limits)",
    )
    .with_field(field)
}

/// The start of the depot's local day containing `now`.
fn today(db: &Db, depot: DepotId, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
    let tz: chrono_tz::Tz =
        queries::depot(db, depot)?.and_then(|d| d.time_zone.parse().ok()).unwrap_or(chrono_tz::UTC);
    Ok(crate::report::day_start(tz, now.with_timezone(&tz).date_naive()))
}

fn quota(what: &str, n: u32) -> AppError {
    AppError::new(
        ErrorCode::QuotaExceeded,
        format!("the depot's daily quota of {n} {what} is used up; nothing was sent (it resets at midnight, depot time)"),
    )
}

/// Every stop's number must be one the depot may reach.
pub fn check_route<'a>(
    db: &Db,
    depot: DepotId,
    phones: impl Iterator<Item = &'a str>,
) -> Result<(), AppError> {
    let l = limits_of(db, depot)?.unwrap_or_else(none_allowed);
    for (i, phone) in phones.enumerate() {
        if !allows(&l, phone) {
            return Err(not_allowed(format!("stops[{i}].phone")));
        }
    }
    Ok(())
}

/// One more smart call to `phone`.
pub fn check_call(db: &Db, depot: DepotId, phone: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let l = limits_of(db, depot)?.unwrap_or_else(none_allowed);
    if !allows(&l, phone) {
        return Err(not_allowed("stop_id".into()));
    }
    if limits::calls_since(db, depot, today(db, depot, now)?)? >= l.calls_per_day {
        crate::metrics::send_refused("call", "quota");
        return Err(quota("calls", l.calls_per_day));
    }
    Ok(())
}

/// `more` SMS on top of today's (a campaign enrollment).
pub fn check_sms(db: &Db, depot: DepotId, more: u32, now: DateTime<Utc>) -> Result<(), AppError> {
    let l = limits_of(db, depot)?.unwrap_or_else(none_allowed);
    let sent = limits::sms_since(db, depot, today(db, depot, now)?)?;
    if sent.saturating_add(more) > l.sms_per_day {
        crate::metrics::send_refused("sms", "quota");
        return Err(quota("SMS", l.sms_per_day));
    }
    Ok(())
}

/// Why one SMS to `phone` may not go out now, if it may not.
pub fn sms_refusal(
    db: &Db,
    depot: DepotId,
    phone: &str,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, StoreError> {
    let l = limits_of(db, depot)?.unwrap_or_else(none_allowed);
    if !allows(&l, phone) {
        crate::metrics::send_refused("sms", "destination");
        return Ok(Some("refused: the number is outside the depot's allowed destinations"));
    }
    if limits::sms_since(db, depot, today(db, depot, now)?)? >= l.sms_per_day {
        crate::metrics::send_refused("sms", "quota");
        return Ok(Some("refused: the depot's daily SMS quota is used up"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_depot_may_reach_its_own_country_by_default() {
        assert_eq!(defaults("Europe/Moscow").allowed_destinations, ["+7"]);
        assert_eq!(defaults("Asia/Almaty").allowed_destinations, ["+7"], "Kazakhstan shares +7");
        assert_eq!(defaults("Europe/Berlin").allowed_destinations, ["+49"]);
        assert_eq!(defaults("America/New_York").allowed_destinations, ["+1"]);
        assert_eq!(defaults("Europe/Kiev").allowed_destinations, ["+380"], "an old name (a link)");
        assert_eq!(defaults("UTC").allowed_destinations, Vec::<String>::new(), "no country");
        assert!(!allows(&defaults("Europe/Moscow"), "+88213000000001"));
        assert!(allows(&defaults("Europe/Moscow"), "+79161234567"));
    }

    #[test]
    fn the_table_is_sorted_and_names_real_zones() {
        use crate::zone_calling_codes::ZONES;
        assert!(ZONES.windows(2).all(|w| w[0].0 < w[1].0), "binary search needs it sorted");
        let known = ZONES.iter().filter(|(zone, _)| zone.parse::<chrono_tz::Tz>().is_ok()).count();
        assert!(known * 100 >= ZONES.len() * 95, "{known} of {} zones known to chrono-tz", ZONES.len());
        assert!(ZONES.iter().all(|(_, code)| check_limits(&SendLimits {
            sms_per_day: 1,
            calls_per_day: 1,
            allowed_destinations: vec![(*code).to_owned()]
        })
        .is_ok()));
    }
}
