//! The customer's reschedule page, reached from the SMS link: a small,
//! script-free HTML page in the customer's language. Every outcome is a
//! page a person can read — an old, used or mistyped link included.

use crate::api::limits::ClientIp;
use crate::app::AppState;
use crate::reschedule::{self, Choice, Lookup, OfferView, Pick, Slot};
use crate::store::StoreError;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use callahead_core::clock::wall_ms;
use callahead_core::template::Language;
use callahead_core::wire::{paths, PickupPoint};
use serde::Deserialize;
use std::sync::Arc;

/// Longer than any token we issue: refused without a database read.
const MAX_TOKEN_LEN: usize = 128;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::RESCHEDULE, get(show).post(pick))
}

/// The form's body: `choice=slot-N` (an index into the listed slots) or
/// `choice=pickup-ID` (one of the depot's pickup points); `slot=N` also
/// works.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PickSlot {
    #[serde(default)]
    pub choice: Option<String>,
    #[serde(default)]
    pub slot: Option<usize>,
}

impl PickSlot {
    fn pick(&self) -> Option<Pick> {
        match (&self.choice, self.slot) {
            (Some(c), _) if c == "confirm" => Some(Pick::Confirm),
            (Some(c), _) => match c.split_once('-') {
                Some(("slot", n)) => n.parse().ok().map(Pick::Slot),
                Some(("pickup", id)) => Some(Pick::PickupPoint(id.to_owned())),
                _ => None,
            },
            (None, Some(n)) => Some(Pick::Slot(n)),
            (None, None) => None,
        }
    }
}

#[utoipa::path(get, path = "/r/{token}", tag = "reschedule",
    params(("token" = String, Path, description = "the token from the SMS link")),
    responses(
        (status = 200, description = "the offered slots as a form", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
        (status = 410, description = "link used or expired", content_type = "text/html", body = String)))]
/// The page behind the SMS link: the offered delivery windows.
pub async fn show(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
) -> Response {
    if let Err(e) = state.limiters.reschedule_page(ip) {
        return slow_down(&e);
    }
    if token.len() > MAX_TOKEN_LEN {
        return unknown();
    }
    let now = state.clock.now();
    let found = state.readers.read(move |c| reschedule::lookup(c, &token, now)).await;
    match found {
        Ok(Lookup::Open(v)) => page(StatusCode::OK, v.language, &form(&v, None)),
        Ok(Lookup::Used(v)) => used(&v),
        Ok(Lookup::Expired(v)) => expired(v.language),
        Ok(Lookup::Unknown) => unknown(),
        Err(e) => failed(e),
    }
}

#[utoipa::path(post, path = "/r/{token}", tag = "reschedule",
    params(("token" = String, Path, description = "the token from the SMS link")),
    request_body(content = PickSlot, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "chosen: the new window", content_type = "text/html", body = String),
        (status = 400, description = "not one of the offered slots", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
        (status = 410, description = "link used or expired", content_type = "text/html", body = String)))]
/// Picks one slot: the stop's window moves and the courier's app shows it.
pub async fn pick(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Result<Form<PickSlot>, FormRejection>,
) -> Response {
    if let Err(e) = state.limiters.reschedule_page(ip) {
        return slow_down(&e);
    }
    if cross_site(&headers) {
        return forbidden();
    }
    if token.len() > MAX_TOKEN_LEN {
        return unknown();
    }
    let (now, wall) = (state.clock.now(), wall_ms());
    let Some(pick) = form.ok().and_then(|Form(f)| f.pick()) else {
        // Without a valid choice, show the form again with a hint.
        let found = state.readers.read(move |c| reschedule::lookup(c, &token, now)).await;
        return match found {
            Ok(Lookup::Open(v)) => bad_slot(&v),
            Ok(Lookup::Used(v)) => used(&v),
            Ok(Lookup::Expired(v)) => expired(v.language),
            Ok(Lookup::Unknown) => unknown(),
            Err(e) => failed(e),
        };
    };
    let chosen = state.writer.write(move |tx| reschedule::choose(tx, &token, &pick, now, wall)).await;
    match chosen {
        Ok(Choice::Chosen(v)) => done(&v),
        Ok(Choice::BadSlot(v)) => bad_slot(&v),
        Ok(Choice::Used(v)) => used(&v),
        Ok(Choice::Expired(v)) => expired(v.language),
        Ok(Choice::Unknown) => unknown(),
        Err(e) => failed(e),
    }
}

/// CSRF defence for the form's POST: a browser says where a request comes
/// from (`Sec-Fetch-Site`, `Origin`), and only this page itself may post to
/// it. The link's token is the only credential (no cookie), so a foreign
/// page could only replay a link it already knows; this refuses even that.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        // Not a browser, or one that sends neither: nothing to check.
        (None, _) => false,
    }
}

fn forbidden() -> Response {
    let body = "<h1>Откройте ссылку из SMS ещё раз</h1>\n<p>Эта форма работает только на своей странице.</p>\n\
                <h1>Please open the link from your text message again</h1>\n<p>This form works only on its own page.</p>";
    page(StatusCode::FORBIDDEN, Language::Ru, body)
}

fn slow_down(e: &crate::error::AppError) -> Response {
    let body = "<h1>Слишком много запросов</h1>\n<p>Попробуйте ещё раз через минуту.</p>\n\
                <h1>Too many requests</h1>\n<p>Please try again in a minute.</p>";
    let mut resp = page(StatusCode::TOO_MANY_REQUESTS, Language::Ru, body);
    if let Some(secs) = e.retry_after_secs {
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    resp
}

// ---------------------------------------------------------------- pages

fn ru(lang: Language) -> bool {
    lang == Language::Ru
}

fn slot_text(lang: Language, tz: chrono_tz::Tz, s: &Slot) -> String {
    let (start, end) = (s.start.with_timezone(&tz), s.end.with_timezone(&tz));
    let day = if ru(lang) { start.format("%d.%m") } else { start.format("%a %d %b") };
    format!("{day}, {}–{}", start.format("%H:%M"), end.format("%H:%M"))
}

fn form(v: &OfferView, hint: Option<&str>) -> String {
    let lang = v.language;
    let (title, intro, button) = if ru(lang) {
        (
            "Новое время доставки",
            format!("{}, заказ {}. Выберите удобное время:", v.company, v.orders),
            "Выбрать",
        )
    } else {
        (
            "A new delivery time",
            format!("{}, order {}. Pick a time that suits you:", v.company, v.orders),
            "Choose",
        )
    };
    let mut options = String::new();
    if let Some(w) = &v.confirm {
        let keep = if ru(lang) { "Оставить" } else { "Keep" };
        let home = if ru(lang) { "я буду дома" } else { "I will be home" };
        options.push_str(&format!(
            "<label><input type=\"radio\" name=\"choice\" value=\"confirm\" required> {keep} <b>{}</b>: {home}</label>\n",
            esc(&slot_text(lang, v.time_zone, w))
        ));
    }
    for (i, s) in v.slots.iter().enumerate() {
        options.push_str(&format!(
            "<label><input type=\"radio\" name=\"choice\" value=\"slot-{i}\" required> {}</label>\n",
            esc(&slot_text(lang, v.time_zone, s))
        ));
    }
    if !v.pickup_points.is_empty() {
        let or =
            if ru(lang) { "Или заберите заказ сами:" } else { "Or collect it yourself:" };
        options.push_str(&format!("<p>{}</p>\n", esc(or)));
    }
    for p in &v.pickup_points {
        options.push_str(&format!(
            "<label><input type=\"radio\" name=\"choice\" value=\"pickup-{}\" required> {}</label>\n",
            esc(&p.id),
            pickup_text(p)
        ));
    }
    let hint = hint.map(|h| format!("<p class=\"hint\">{}</p>", esc(h))).unwrap_or_default();
    format!(
        "<h1>{}</h1>\n<p>{}</p>\n{hint}<form method=\"post\">\n{options}<button type=\"submit\">{button}</button>\n</form>",
        esc(title),
        esc(&intro)
    )
}

/// Name, address and hours, escaped.
fn pickup_text(p: &PickupPoint) -> String {
    let hours = p.hours.as_deref().map(|h| format!(" ({})", esc(h))).unwrap_or_default();
    format!("<b>{}</b>, {}{hours}", esc(&p.name), esc(&p.address))
}

fn done(v: &OfferView) -> Response {
    let ru = ru(v.language);
    let kept = v.confirm.filter(|_| v.confirmed).map(|w| esc(&slot_text(v.language, v.time_zone, &w)));
    let body = match (&v.chosen_pickup, v.chosen) {
        _ if kept.is_some() => {
            let when = kept.unwrap_or_default();
            if ru {
                format!("<h1>Спасибо!</h1>\n<p>Ждите курьера: <b>{when}</b>.</p>")
            } else {
                format!("<h1>Thank you!</h1>\n<p>Your courier comes <b>{when}</b>.</p>")
            }
        }
        (Some(p), _) if ru => {
            format!("<h1>Спасибо!</h1>\n<p>Заказ будет ждать вас: {}. Курьер уже знает.</p>", pickup_text(p))
        }
        (Some(p), _) => format!(
            "<h1>Thank you!</h1>\n<p>Your order will wait for you at {}. The courier knows.</p>",
            pickup_text(p)
        ),
        (None, s) => {
            let when = esc(&s.map(|s| slot_text(v.language, v.time_zone, &s)).unwrap_or_default());
            if ru {
                format!("<h1>Спасибо!</h1>\n<p>Доставка перенесена: <b>{when}</b>. Курьер уже знает.</p>")
            } else {
                format!("<h1>Thank you!</h1>\n<p>Your delivery is now <b>{when}</b>. The courier knows.</p>")
            }
        }
    };
    page(StatusCode::OK, v.language, &body)
}

fn used(v: &OfferView) -> Response {
    let ru = ru(v.language);
    let body = match (&v.chosen_pickup, v.chosen) {
        _ if v.confirmed && ru => {
            "<h1>Ссылка уже использована</h1>\n<p>Вы подтвердили доставку.</p>".to_owned()
        }
        _ if v.confirmed => {
            "<h1>This link was already used</h1>\n<p>You confirmed the delivery.</p>".to_owned()
        }
        (Some(p), _) if ru => {
            format!("<h1>Ссылка уже использована</h1>\n<p>Вы выбрали пункт выдачи: {}.</p>", pickup_text(p))
        }
        (Some(p), _) => format!(
            "<h1>This link was already used</h1>\n<p>You chose to collect it at {}.</p>",
            pickup_text(p)
        ),
        (None, s) => {
            let when = esc(&s.map(|s| slot_text(v.language, v.time_zone, &s)).unwrap_or_default());
            if ru {
                format!("<h1>Ссылка уже использована</h1>\n<p>Время доставки уже выбрано: <b>{when}</b>.</p>")
            } else {
                format!("<h1>This link was already used</h1>\n<p>Your delivery time is <b>{when}</b>.</p>")
            }
        }
    };
    page(StatusCode::GONE, v.language, &body)
}

fn expired(lang: Language) -> Response {
    let body = if ru(lang) {
        "<h1>Срок действия ссылки истёк</h1>\n<p>Чтобы изменить время, свяжитесь с магазином или курьером.</p>"
    } else {
        "<h1>This link has expired</h1>\n<p>To change the time, please contact the shop or your courier.</p>"
    };
    page(StatusCode::GONE, lang, body)
}

fn bad_slot(v: &OfferView) -> Response {
    let hint = if ru(v.language) {
        "Выберите одно из предложенных времён."
    } else {
        "Please pick one of the times below."
    };
    page(StatusCode::BAD_REQUEST, v.language, &form(v, Some(hint)))
}

fn unknown() -> Response {
    // Nothing is known about whom it was for: both languages.
    let body = "<h1>Ссылка не найдена</h1>\n<p>Проверьте ссылку из SMS.</p>\n\
                <h1>Link not found</h1>\n<p>Please check the link in your text message.</p>";
    page(StatusCode::NOT_FOUND, Language::Ru, body)
}

fn failed(e: StoreError) -> Response {
    let status = match e {
        StoreError::Closed => StatusCode::SERVICE_UNAVAILABLE,
        other => {
            tracing::error!(error = %other, "reschedule page failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let body = "<h1>Что-то пошло не так</h1>\n<p>Попробуйте ещё раз через минуту.</p>\n\
                <h1>Something went wrong</h1>\n<p>Please try again in a minute.</p>";
    page(status, Language::Ru, body)
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:1.5rem auto;padding:0 1rem;\
color:#222;line-height:1.4}h1{font-size:1.3rem}label{display:block;padding:.8rem;margin:.5rem 0;\
border:1px solid #ccc;border-radius:.5rem;font-size:1.1rem}button{width:100%;padding:.9rem;font-size:1.1rem;\
border:0;border-radius:.5rem;background:#1a7f37;color:#fff}.hint{color:#b35900}";

fn page(status: StatusCode, lang: Language, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>Callahead</title><style>{STYLE}</style></head>\n\
         <body>\n{body}\n</body></html>\n",
        lang.code()
    );
    let headers = [
        (axum::http::header::CACHE_CONTROL, "no-store"),
        (axum::http::header::CONTENT_SECURITY_POLICY, csp()),
        (axum::http::header::REFERRER_POLICY, "no-referrer"),
        (axum::http::header::X_FRAME_OPTIONS, "DENY"),
    ];
    (status, headers, Html(html)).into_response()
}

/// No script at all, only the page's own style sheet (by its hash), the
/// form posting back to itself, never inside a frame.
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'"
        )
    })
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_speaks_the_customers_language() {
        let t =
            |h| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2027, 1, 15, h, 0, 0).single().expect("t");
        let v = OfferView {
            stop_id: callahead_core::StopId(1),
            language: Language::Ru,
            company: "Быстро & <Ко>".into(),
            orders: "1001".into(),
            time_zone: chrono_tz::Europe::Moscow,
            slots: vec![Slot { start: t(9), end: t(10) }],
            pickup_points: vec![PickupPoint {
                id: "pp-1".into(),
                name: "Пункт <1>".into(),
                address: "Тверская, 1".into(),
                hours: Some("10–20".into()),
            }],
            confirm: None,
            chosen: None,
            chosen_pickup: None,
            confirmed: false,
        };
        let html = form(&v, None);
        assert!(html.contains("Быстро &amp; &lt;Ко&gt;, заказ 1001. Выберите удобное время:"), "{html}");
        assert!(html.contains("value=\"slot-0\" required> 15.01, 12:00–13:00"), "{html}");
        assert!(
            html.contains("value=\"pickup-pp-1\" required> <b>Пункт &lt;1&gt;</b>, Тверская, 1 (10–20)"),
            "{html}"
        );
        let en = form(&OfferView { language: Language::En, ..v }, Some("Please pick"));
        assert!(
            en.contains("Fri 15 Jan, 12:00–13:00") && en.contains("<p class=\"hint\">Please pick</p>"),
            "{en}"
        );
    }

    #[test]
    fn the_form_body_names_a_slot_or_a_pickup_point() {
        let f = |choice: Option<&str>, slot| PickSlot { choice: choice.map(str::to_owned), slot }.pick();
        assert_eq!(f(Some("slot-2"), None), Some(Pick::Slot(2)));
        assert_eq!(f(Some("confirm"), None), Some(Pick::Confirm));
        assert_eq!(f(Some("pickup-pp-1"), None), Some(Pick::PickupPoint("pp-1".into())));
        assert_eq!(f(None, Some(1)), Some(Pick::Slot(1)));
        assert_eq!(f(Some("slot-x"), None), None);
        assert_eq!(f(Some("teleport-1"), None), None);
        assert_eq!(f(None, None), None);
    }

    #[test]
    fn only_the_page_itself_may_post_its_form() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().expect("value"));
            }
            m
        };
        assert!(!cross_site(&h(&[("host", "ca.example")])), "no browser headers: nothing to check");
        assert!(!cross_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&h(&[("origin", "https://ca.example"), ("host", "ca.example")])));
        assert!(cross_site(&h(&[("origin", "https://evil.example"), ("host", "ca.example")])));
        assert!(cross_site(&h(&[("origin", "null"), ("host", "ca.example")])));
    }

    #[test]
    fn the_policy_allows_the_pages_own_style_and_nothing_else() {
        let csp = csp();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"), "{csp}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<b>\"A&B\"</b>"), "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;");
    }
}
