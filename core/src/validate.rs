//! Input rules shared by server (authoritative) and client (early feedback).

use crate::ids::StopId;
use crate::wire::{ErrorCode, PickupPoint, StopInput};
use std::fmt;

/// One rejected field, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub code: ErrorCode,
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(code: ErrorCode, field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self { code, field: field.into(), message: message.to_string() }
    }
}

/// E.164: `+`, a non-zero country digit, 8 to 15 digits in all.
pub fn phone(field: &str, value: &str) -> Result<(), FieldError> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            ErrorCode::InvalidPhone,
            field,
            format!("{value:?} is not an E.164 number; write it as + country code and number, digits only, e.g. +79161234567"),
        ))
    }
}

/// An IANA time zone name such as `Europe/Moscow`.
pub fn time_zone(field: &str, value: &str) -> Result<chrono_tz::Tz, FieldError> {
    value.parse::<chrono_tz::Tz>().map_err(|_| {
        FieldError::new(
            ErrorCode::InvalidTimeZone,
            field,
            format!("{value:?} is not an IANA time zone; use a name like Europe/Moscow"),
        )
    })
}

/// Characters no text a person typed may carry: control characters (NUL,
/// escape sequences, line breaks in a one-line field) and the invisible
/// bidirectional controls that reorder what a dashboard shows and what the
/// robot reads ("Trojan Source"). They reach text-to-speech, SMS and HTML.
fn forbidden(c: char, multiline: bool) -> bool {
    (c.is_control() && !(multiline && c == '\n'))
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses control and bidi-control characters; `multiline` allows `\n`.
pub fn plain_text(field: &str, value: &str, multiline: bool) -> Result<(), FieldError> {
    match value.chars().find(|&c| forbidden(c, multiline)) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            ErrorCode::ValidationFailed,
            field,
            format!(
                "must not contain control or text-direction characters (found U+{:04X}); remove it and send plain text",
                u32::from(c)
            ),
        )),
    }
}

/// One line of plain text, not blank, at most `max_len` characters.
pub fn non_empty(field: &str, value: &str, max_len: usize) -> Result<(), FieldError> {
    plain_text(field, value, false)?;
    if value.trim().is_empty() {
        Err(FieldError::new(ErrorCode::ValidationFailed, field, "must not be empty"))
    } else if value.chars().count() > max_len {
        Err(FieldError::new(
            ErrorCode::ValidationFailed,
            field,
            format!("must be at most {max_len} characters"),
        ))
    } else {
        Ok(())
    }
}

/// Checks one imported stop; `index` names it in the error.
pub fn stop(index: usize, s: &StopInput) -> Result<(), FieldError> {
    let f = |name: &str| format!("stops[{index}].{name}");
    non_empty(&f("external_id"), &s.external_id, 128)?;
    non_empty(&f("customer_name"), &s.customer_name, 200)?;
    phone(&f("phone"), &s.phone)?;
    time_zone(&f("time_zone"), &s.time_zone)?;
    non_empty(&f("address"), &s.address, 500)?;
    if s.window_end <= s.window_start {
        return Err(FieldError::new(
            ErrorCode::ValidationFailed,
            f("window_end"),
            "the delivery window must end after it starts",
        ));
    }
    if let Some(m) = &s.amount {
        if m.minor < 0 {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                f("amount.minor"),
                "must not be negative",
            ));
        }
        if m.currency.len() != 3 || !m.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                f("amount.currency"),
                "must be an ISO 4217 code such as RUB or EUR",
            ));
        }
    }
    for (i, o) in s.order_numbers.iter().enumerate() {
        non_empty(&f(&format!("order_numbers[{i}]")), o, 64)?;
    }
    if let Some(p) = &s.location {
        if !(p.lat.is_finite() && (-90.0..=90.0).contains(&p.lat)) {
            return Err(FieldError::new(ErrorCode::ValidationFailed, f("location.lat"), "must be -90 to 90"));
        }
        if !(p.lon.is_finite() && (-180.0..=180.0).contains(&p.lon)) {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                f("location.lon"),
                "must be -180 to 180",
            ));
        }
    }
    Ok(())
}

/// Checks a planned order against the route's live stops: each exactly once.
pub fn plan(stop_ids: &[StopId], live: &[StopId]) -> Result<(), FieldError> {
    let mismatch = |msg: String| Err(FieldError::new(ErrorCode::PlanMismatch, "stop_ids", msg));
    let mut seen = std::collections::HashSet::new();
    for id in stop_ids {
        if !seen.insert(*id) {
            return mismatch(format!("stop {id} appears twice"));
        }
        if !live.contains(id) {
            return mismatch(format!(
                "stop {id} is not on this route (any more); sync the route and plan again"
            ));
        }
    }
    if seen.len() != live.len() {
        return mismatch(format!(
            "the plan has {} stops but the route has {}; sync the route and plan again",
            seen.len(),
            live.len()
        ));
    }
    Ok(())
}

/// Checks a whole route: each stop, and external ids unique within it.
pub fn route(stops: &[StopInput]) -> Result<(), FieldError> {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in stops.iter().enumerate() {
        stop(i, s)?;
        if !seen.insert(s.external_id.as_str()) {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                format!("stops[{i}].external_id"),
                format!("{:?} appears twice in this route", s.external_id),
            ));
        }
    }
    Ok(())
}

/// A depot offers at most this many pickup points on the reschedule page.
pub const MAX_PICKUP_POINTS: usize = 20;

/// A depot's pickup points: ids short, URL-safe and unique; names and
/// addresses present.
pub fn pickup_points(points: &[PickupPoint]) -> Result<(), FieldError> {
    if points.len() > MAX_PICKUP_POINTS {
        return Err(FieldError::new(
            ErrorCode::ValidationFailed,
            "pickup_points",
            format!("at most {MAX_PICKUP_POINTS} pickup points; offer the nearest ones"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in points.iter().enumerate() {
        let field = |f: &str| format!("pickup_points[{i}].{f}");
        let id_ok = (1..=64).contains(&p.id.len())
            && p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                field("id"),
                "1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(FieldError::new(
                ErrorCode::ValidationFailed,
                field("id"),
                format!("{:?} appears twice", p.id),
            ));
        }
        non_empty(&field("name"), &p.name, 200)?;
        non_empty(&field("address"), &p.address, 500)?;
        if let Some(h) = &p.hours {
            non_empty(&field("hours"), h, 200)?;
        }
    }
    Ok(())
}

/// Client-generated idempotency keys: 8 to 128 printable ASCII characters.
pub fn idempotency_key(value: &str) -> Result<(), FieldError> {
    if (8..=128).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::new(
            ErrorCode::ValidationFailed,
            "idempotency_key",
            "must be 8 to 128 printable ASCII characters; a UUID is ideal",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert!(phone("p", "+79161234567").is_ok());
        assert!(phone("p", "+4915112345678").is_ok());
        for bad in ["79161234567", "+7 916 123", "+0123456789", "+7916", "+7916123456789012", ""] {
            let e = phone("p", bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidPhone);
        }
    }

    #[test]
    fn names_refuse_nul_control_and_text_direction_characters() {
        assert!(non_empty("name", "Анна-Мария O'Neil, кв. 5", 200).is_ok());
        for bad in
            ["Anna\0", "Anna\u{202E}lanA", "\u{2066}x", "a\u{1b}[31mred", "two\nlines", "rtl\u{200F}mark"]
        {
            let e = non_empty("name", bad, 200).expect_err(bad);
            assert_eq!((e.code, e.field.as_str()), (ErrorCode::ValidationFailed, "name"), "{bad:?}");
        }
        assert!(plain_text("text", "line one\nline two", true).is_ok());
        assert!(plain_text("text", "tab\there", true).is_err());
    }

    #[test]
    fn time_zones() {
        assert!(time_zone("tz", "Europe/Moscow").is_ok());
        assert_eq!(time_zone("tz", "Mars/Olympus").expect_err("bad").code, ErrorCode::InvalidTimeZone);
    }

    #[test]
    fn pickup_points_need_unique_safe_ids_and_a_name_and_address() {
        let point = |id: &str, name: &str| PickupPoint {
            id: id.into(),
            name: name.into(),
            address: "Tverskaya 1".into(),
            hours: None,
        };
        assert!(pickup_points(&[point("pp-1", "Shop"), point("locker_2", "Locker")]).is_ok());
        let field = |points: &[PickupPoint]| pickup_points(points).expect_err("refused").field;
        assert_eq!(field(&[point("pp 1", "Shop")]), "pickup_points[0].id");
        assert_eq!(field(&[point("a", "Shop"), point("a", "Other")]), "pickup_points[1].id");
        assert_eq!(field(&[point("a", " ")]), "pickup_points[0].name");
        let many: Vec<PickupPoint> = (0..=MAX_PICKUP_POINTS).map(|i| point(&format!("p{i}"), "x")).collect();
        assert_eq!(field(&many), "pickup_points");
    }
}
