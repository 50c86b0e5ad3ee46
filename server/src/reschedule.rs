//! Reschedule by link (issue #4): a customer who pressed 2 gets an SMS with
//! a single-use link to a page where they pick one of a few offered windows.
//!
//! * The offer is made in the transaction that finishes the call
//!   ([`offer`]): the row, its slots and a `reschedule_offered` event commit
//!   together. The token is random; the row keeps its SHA-256 hash, and the
//!   plain token only until the SMS was accepted (so a crash between the
//!   commit and the send can resend it: at least once, never lost).
//! * The message goes through the notification cascade (`crate::cascade`):
//!   queued with the offer, sent after the commit by the cheapest channel
//!   that reaches the customer; [`sent`] starts the link's lifetime when it
//!   went out.
//! * [`choose`] is the page's POST: offer used, stop window moved and a
//!   `stop_rescheduled` event, in one transaction, with the route re-planned
//!   around the new window (`crate::replan`).
//!
//! The slots, kept simple: the first three whole local hours that start at
//! or after the end of the current window (or now, if later) and lie inside
//! the customer's calling hours, so the courier's day stays within the
//! hours the customer accepts calls anyway.

use crate::store::offers::{self as stored, Offer, OfferFor};
use crate::store::{queries, routes, Db, NewEvent, StoreError, WriteTx};
use base64::Engine;
use callahead_core::calling_hours::CallingHours;
use callahead_core::channel::Channel;
use callahead_core::template::{render_text, Language};
use callahead_core::wire::{EventKind, PickupPoint};
use callahead_core::{CallId, StopId};
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Windows offered per link.
pub const SLOTS: usize = 3;

/// One offered delivery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The windows to offer: see the module docs.
pub fn slots(window_end: DateTime<Utc>, now: DateTime<Utc>, hours: &CallingHours, tz: Tz) -> Vec<Slot> {
    let from = window_end.max(now);
    let local = from.with_timezone(&tz).naive_local();
    let Ok(mut hour) = local.duration_trunc(Duration::hours(1)) else { return Vec::new() };
    let mut out = Vec::new();
    // Three days of candidates is plenty for any calling hours `check` allows.
    for _ in 0..72 {
        if let Some(start) = tz.from_local_datetime(&hour).earliest().map(|t| t.with_timezone(&Utc)) {
            let end = start + Duration::hours(1);
            if start >= from && hours.allows(start, tz) && hours.allows(end - Duration::seconds(1), tz) {
                out.push(Slot { start, end });
                if out.len() == SLOTS {
                    break;
                }
            }
        }
        hour += Duration::hours(1);
    }
    out
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `+79161234567` → `+7******4567`: enough for the courier to recognize.
pub fn mask(phone: &str) -> String {
    callahead_core::privacy::mask_phone(phone)
}

/// The SMS, in the customer's language.
pub fn sms_text(language: Language, company: &str, orders: &str, link: &str) -> String {
    match (language, orders.is_empty()) {
        (Language::Ru, false) => format!("{company}: выберите новое время доставки заказа {orders}: {link}"),
        (Language::Ru, true) => format!("{company}: выберите новое время доставки: {link}"),
        (Language::En, false) => format!("{company}: pick a new delivery time for order {orders}: {link}"),
        (Language::En, true) => format!("{company}: pick a new delivery time: {link}"),
    }
}

/// A campaign's reminder, in the customer's language and local time.
pub fn reminder_text(
    language: Language,
    company: &str,
    orders: &str,
    w: &Slot,
    tz: Tz,
    link: &str,
) -> String {
    let (start, end) = (w.start.with_timezone(&tz), w.end.with_timezone(&tz));
    let when = format!("{} {}–{}", start.format("%d.%m"), start.format("%H:%M"), end.format("%H:%M"));
    match language {
        Language::Ru => {
            format!("{company}: заказ {orders} привезём {when}. Подтвердите или измените: {link}")
        }
        Language::En => format!("{company}: order {orders} arrives {when}. Confirm or change: {link}"),
    }
}

/// Makes the offer for a call that just finished as `reschedule_requested`,
/// inside its transaction. Returns the masked number the SMS goes to, or
/// `None` when there is nothing to offer (no slot fits, or already offered).
pub fn offer(tx: &WriteTx<'_>, call: CallId, at: DateTime<Utc>) -> Result<Option<String>, StoreError> {
    let row =
        queries::call(tx.db(), call)?.ok_or_else(|| StoreError::Corrupt(format!("call {call} vanished")))?;
    let stop = queries::stop(tx.db(), row.view.stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", row.view.stop_id)))?;
    let tz: Tz = stop.stop.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let offered = slots(stop.stop.window_end, at, &row.calling_hours, tz);
    if offered.is_empty() {
        tracing::warn!(call_id = %call, "no slot to offer for a reschedule");
        return Ok(None);
    }
    let token = new_token();
    let hash = crate::auth::hash(&token);
    let Some(id) = stored::insert(tx, OfferFor::Call(call), stop.stop.id, &hash, &token, &offered, at)?
    else {
        return Ok(None);
    };
    crate::cascade::queue(tx, crate::cascade::RESCHEDULE, id, &stop.stop, at)?;
    Ok(Some(mask(&stop.stop.phone)))
}

/// A campaign's SMS link for `stop` (run `run`): confirm the current window,
/// or pick another one or a pickup point. Returns whether it was made (a run
/// gets one link at most).
pub fn campaign_offer(
    tx: &WriteTx<'_>,
    run: i64,
    stop: StopId,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let stop =
        queries::stop(tx.db(), stop)?.ok_or_else(|| StoreError::Corrupt(format!("stop {stop} vanished")))?;
    let hours =
        queries::depot(tx.db(), stop.stop.depot_id)?.map(|d| d.policy.calling_hours).unwrap_or_default();
    let tz: Tz = stop.stop.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let offered = slots(stop.stop.window_end, at, &hours, tz);
    let token = new_token();
    let hash = crate::auth::hash(&token);
    let of = OfferFor::CampaignRun(run);
    let Some(id) = stored::insert(tx, of, stop.stop.id, &hash, &token, &offered, at)? else {
        return Ok(false);
    };
    crate::cascade::queue(tx, crate::cascade::RESCHEDULE, id, &stop.stop, at)?;
    Ok(true)
}

/// An offer as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferView {
    pub stop_id: StopId,
    pub language: Language,
    pub company: String,
    pub orders: String,
    pub time_zone: Tz,
    /// Slots that have not started yet.
    pub slots: Vec<Slot>,
    /// The depot's pickup points, offered as an alternative to a slot.
    pub pickup_points: Vec<PickupPoint>,
    /// The current window, when the link may confirm it (campaign links)
    /// and it has not started.
    pub confirm: Option<Slot>,
    pub chosen: Option<Slot>,
    pub chosen_pickup: Option<PickupPoint>,
    pub confirmed: bool,
}

/// What a link leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Open(OfferView),
    /// Already used: the page shows what was chosen.
    Used(OfferView),
    Expired(OfferView),
    /// Unknown or forged.
    Unknown,
}

fn offer_row(db: &Db, token: &str) -> Result<Option<Offer>, StoreError> {
    stored::by_token(db, &crate::auth::hash(token))
}

/// Reads the offer behind `token` as of `now`.
pub fn lookup(conn: &Db, token: &str, now: DateTime<Utc>) -> Result<Lookup, StoreError> {
    let Some(row) = offer_row(conn, token)? else { return Ok(Lookup::Unknown) };
    let Some(stop) = queries::stop(conn, row.stop_id)? else { return Ok(Lookup::Unknown) };
    let depot = queries::depot(conn, stop.stop.depot_id)?;
    let templates = queries::templates(conn, stop.stop.depot_id)?.unwrap_or_default();
    let view = OfferView {
        stop_id: row.stop_id,
        language: templates.for_language(stop.stop.language).0,
        company: depot.map(|d| d.name).unwrap_or_default(),
        orders: stop.stop.order_numbers.join(", "),
        time_zone: stop.stop.time_zone.parse().unwrap_or(chrono_tz::UTC),
        slots: row.slots.iter().copied().filter(|s| s.start > now).collect(),
        pickup_points: queries::pickup_points(conn, stop.stop.depot_id)?,
        confirm: (row.confirmable && stop.stop.window_start > now)
            .then_some(Slot { start: stop.stop.window_start, end: stop.stop.window_end }),
        chosen: row.chosen,
        chosen_pickup: row.chosen_pickup,
        confirmed: row.confirmed,
    };
    Ok(if row.used {
        Lookup::Used(view)
    } else if stop.removed
        || row.expires_at.is_some_and(|e| now >= e)
        || (view.slots.is_empty() && view.pickup_points.is_empty() && view.confirm.is_none())
    {
        Lookup::Expired(view)
    } else {
        Lookup::Open(view)
    })
}

/// What choosing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Chosen(OfferView),
    Used(OfferView),
    Expired(OfferView),
    Unknown,
    /// Not one of the slots or pickup points still on offer.
    BadSlot(OfferView),
}

/// What the customer picked on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Keep the current window (campaign links).
    Confirm,
    /// Slot `index`, as listed by [`lookup`].
    Slot(usize),
    /// The depot's pickup point with this id.
    PickupPoint(String),
}

/// The customer picks a slot or a pickup point (as listed by [`lookup`] at
/// `now`): the offer is used, the stop changes and an event tells the
/// courier, in one transaction.
pub fn choose(
    tx: &mut WriteTx<'_>,
    token: &str,
    pick: &Pick,
    now: DateTime<Utc>,
    wall: i64,
) -> Result<Choice, StoreError> {
    let mut view = match lookup(tx.db(), token, now)? {
        Lookup::Open(v) => v,
        Lookup::Used(v) => return Ok(Choice::Used(v)),
        Lookup::Expired(v) => return Ok(Choice::Expired(v)),
        Lookup::Unknown => return Ok(Choice::Unknown),
    };
    let row = offer_row(tx.db(), token)?.ok_or_else(|| StoreError::Corrupt("offer vanished".into()))?;
    let kind = match pick {
        Pick::Confirm => {
            let Some(window) = view.confirm else { return Ok(Choice::BadSlot(view)) };
            stored::confirm(tx, row.id, now)?;
            view.confirmed = true;
            EventKind::DeliveryConfirmed { window_start: window.start, window_end: window.end }
        }
        Pick::Slot(index) => {
            let Some(slot) = view.slots.get(*index).copied() else { return Ok(Choice::BadSlot(view)) };
            stored::choose_slot(tx, row.id, slot, now)?;
            routes::set_window(tx, view.stop_id, slot.start, slot.end)?;
            view.chosen = Some(slot);
            EventKind::StopRescheduled { window_start: slot.start, window_end: slot.end }
        }
        Pick::PickupPoint(id) => {
            let Some(point) = view.pickup_points.iter().find(|p| &p.id == id).cloned() else {
                return Ok(Choice::BadSlot(view));
            };
            stored::choose_pickup(tx, row.id, &point, now)?;
            routes::set_pickup_point(tx, view.stop_id, &point)?;
            view.chosen_pickup = Some(point.clone());
            EventKind::PickupPointChosen { pickup_point: Box::new(point) }
        }
    };
    let stop = queries::stop(tx.db(), view.stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", view.stop_id)))?;
    tx.append_event(NewEvent {
        at: now,
        origin_wall_ms: wall,
        depot_id: stop.stop.depot_id,
        courier_id: stop.stop.courier_id,
        stop_id: Some(view.stop_id),
        kind,
        call: None,
    })?;
    if matches!(pick, Pick::Slot(_)) {
        crate::replan::after_new_window(tx, view.stop_id, now, wall)?;
    }
    // Any answer by link is a reaction: campaigns leave this customer alone.
    crate::campaigns::on_reaction(tx, view.stop_id, now, wall)?;
    Ok(Choice::Chosen(view))
}

// ---------------------------------------------------------------- the message

/// The offer's text for `channel`: the depot's template for it in the
/// customer's language, or the built-in wording. `None` once the token is
/// gone (already sent, or given up).
pub fn compose(
    conn: &Db,
    offer_id: i64,
    channel: Channel,
    base_url: &str,
) -> Result<Option<String>, StoreError> {
    let row = stored::pending(conn, offer_id)?;
    let Some(stored::Pending { stop_id, token: Some(token), confirmable }) = row else { return Ok(None) };
    let stop = queries::stop(conn, stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("offer {offer_id}'s stop vanished")))?
        .stop;
    let company = queries::depot(conn, stop.depot_id)?.map(|d| d.name).unwrap_or_default();
    let templates = queries::templates(conn, stop.depot_id)?.unwrap_or_default();
    let (language, template) = templates.for_language(stop.language);
    let link = format!("{}{}", base_url.trim_end_matches('/'), link_path(&token));
    let orders = stop.order_numbers.join(", ");
    let text = match template.texts.get(&channel) {
        // The depot's texts word the reschedule offer; a campaign reminder
        // (confirmable) keeps the built-in wording with the window in it.
        Some(custom) if !confirmable => {
            let courier = queries::courier(conn, stop.courier_id)?.map(|c| c.name).unwrap_or_default();
            let vars = crate::orchestrator::vars(&company, &stop, &courier);
            render_text(custom, &vars, &link)
        }
        _ if confirmable => {
            let tz: Tz = stop.time_zone.parse().unwrap_or(chrono_tz::UTC);
            let window = Slot { start: stop.window_start, end: stop.window_end };
            reminder_text(language, &company, &orders, &window, tz, &link)
        }
        _ => sms_text(language, &company, &orders, &link),
    };
    Ok(Some(text))
}

pub fn link_path(token: &str) -> String {
    callahead_core::wire::paths::fill(callahead_core::wire::paths::RESCHEDULE, &[("token", token)])
}

/// The offer's message went out: the link's lifetime starts, and the plain
/// token is no longer kept.
pub fn sent(tx: &WriteTx<'_>, offer_id: i64, at: DateTime<Utc>, ttl: Duration) -> Result<(), StoreError> {
    stored::sent(tx, offer_id, at, at + ttl)
}

/// No channel reached the customer: the token is dropped (the link never
/// went out, so it can never be used), and the courier, who can still phone
/// the customer, is told on the stop.
pub fn undeliverable(
    tx: &mut WriteTx<'_>,
    offer_id: i64,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stop_id = stored::undeliverable(tx, offer_id, reason)?;
    let stop = queries::stop(tx.db(), stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("offer {offer_id}'s stop vanished")))?
        .stop;
    tx.append_event(NewEvent {
        at,
        origin_wall_ms: callahead_core::clock::wall_ms(),
        depot_id: stop.depot_id,
        courier_id: stop.courier_id,
        stop_id: Some(stop.id),
        kind: EventKind::RescheduleSmsFailed { reason: reason.to_owned() },
        call: None,
    })?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cascade::{CascadeConfig, CascadeSender};
    use crate::hub::Hub;
    use crate::providers::simulator::{SimMessaging, SimMessagingConfig};
    use crate::providers::Message;
    use crate::store::Store;
    use callahead_core::clock::{Clock, ManualClock, SharedClock};
    use std::sync::Arc;
    use tokio::sync::Notify;

    fn moscow(h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Moscow
            .with_ymd_and_hms(2027, 1, 15, h, m, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn slots_are_the_next_whole_hours_inside_calling_hours() {
        let tz = chrono_tz::Europe::Moscow;
        let hours = CallingHours::default();
        let got = slots(moscow(11, 10), moscow(10, 5), &hours, tz);
        assert_eq!(
            got,
            vec![
                Slot { start: moscow(12, 0), end: moscow(13, 0) },
                Slot { start: moscow(13, 0), end: moscow(14, 0) },
                Slot { start: moscow(14, 0), end: moscow(15, 0) },
            ]
        );
        // Late in the day they continue the next morning.
        let late = slots(moscow(19, 30), moscow(19, 0), &hours, tz);
        assert_eq!(late[0], Slot { start: moscow(20, 0), end: moscow(21, 0) });
        assert_eq!(late[1].start.with_timezone(&tz).format("%d %H:%M").to_string(), "16 09:00");
    }

    #[test]
    fn the_sms_is_in_the_customers_language_and_the_number_masked() {
        assert_eq!(
            sms_text(Language::En, "FastBox", "1001, 1002", "https://x/r/abc"),
            "FastBox: pick a new delivery time for order 1001, 1002: https://x/r/abc"
        );
        assert_eq!(
            sms_text(Language::Ru, "FastBox", "1001", "https://x/r/abc"),
            "FastBox: выберите новое время доставки заказа 1001: https://x/r/abc"
        );
        assert_eq!(mask("+79161234567"), "+7******4567");
        assert_eq!(mask("123"), "***");
    }

    /// A store with one stop whose call finished as reschedule-requested
    /// at 10:05 Moscow (window 10:00–11:00), and the offer made.
    pub(crate) async fn offered(at: DateTime<Utc>) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db"), Hub::new()).expect("open");
        store
            .writer
            .write(move |tx| -> Result<(), StoreError> {
                crate::store::fixtures::reschedule_requested(tx, moscow(10, 0), moscow(11, 0))?;
                let masked = offer(tx, CallId(1), at)?;
                assert_eq!(masked.as_deref(), Some("+7******0001"));
                assert_eq!(offer(tx, CallId(1), at)?, None, "one offer per call");
                Ok(())
            })
            .await
            .expect("seed");
        (dir, store)
    }

    /// A sender with the default channels and prices, links to ca.example.
    pub(crate) fn sender(store: &Store, clock: &ManualClock, sim: Arc<SimMessaging>) -> Arc<CascadeSender> {
        let shared: SharedClock = Arc::new(clock.clone());
        Arc::new(CascadeSender {
            writer: store.writer.clone(),
            readers: store.readers.clone(),
            clock: shared.clone(),
            messaging: sim,
            config: CascadeConfig::default(),
            link_base: "https://ca.example".into(),
            link_ttl: Duration::hours(24),
            wake: Arc::new(Notify::new()),
            claims: crate::store::leases::Claims::sole(shared.clone()),
        })
    }

    fn token_of(sms: &Message) -> String {
        sms.text.rsplit("/r/").next().expect("link").to_owned()
    }

    #[tokio::test]
    async fn an_outage_is_retried_and_the_link_expires_a_day_after_it_was_sent() {
        let t0 = moscow(10, 5);
        let (_dir, store) = offered(t0).await;
        let clock = ManualClock::new(t0);
        let sim = SimMessaging::new(SimMessagingConfig { fail_first: 1, ..Default::default() });
        let s = sender(&store, &clock, sim.clone());

        s.send_due(clock.now()).await.expect("pass");
        assert!(sim.sent().is_empty(), "the outage");
        s.send_due(clock.now()).await.expect("pass");
        assert!(sim.sent().is_empty(), "the retry waits for its backoff");
        clock.advance(Duration::minutes(2));
        s.send_due(clock.now()).await.expect("pass");
        let sms = sim.sent().remove(0);
        assert_eq!(sms.to, "+79160000001");
        assert!(sms
            .text
            .starts_with("FastBox: pick a new delivery time for order 1001: https://ca.example/r/"));
        let token = token_of(&sms);

        let now = clock.now();
        let t = token.clone();
        let open = store.readers.read(move |c| lookup(c, &t, now)).await.expect("lookup");
        let Lookup::Open(view) = open else { panic!("open, got {open:?}") };
        assert_eq!(view.slots.len(), SLOTS);
        assert_eq!(view.slots[0].start, moscow(11, 0), "from the end of the 10:00–11:00 window");

        clock.advance(Duration::hours(24));
        let later = clock.now();
        let choice =
            store.writer.write(move |tx| choose(tx, &token, &Pick::Slot(0), later, 0)).await.expect("choose");
        assert!(matches!(choice, Choice::Expired(_)), "a day after sending the link no longer works");
        let store_stop = store.readers.read(|c| queries::stop(c, StopId(1))).await;
        assert_eq!(
            store_stop.expect("read").expect("stop").stop.window_start,
            moscow(10, 0),
            "window unchanged"
        );
    }

    #[tokio::test]
    async fn a_link_works_once_and_a_forged_one_not_at_all() {
        let t0 = moscow(10, 5);
        let (_dir, store) = offered(t0).await;
        let clock = ManualClock::new(t0);
        let sim = SimMessaging::new(SimMessagingConfig::default());
        sender(&store, &clock, sim.clone()).send_due(t0).await.expect("pass");
        let token = token_of(&sim.sent()[0]);

        let (t1, t2) = (token.clone(), token.clone());
        let first =
            store.writer.write(move |tx| choose(tx, &t1, &Pick::Slot(9), t0, 0)).await.expect("choose");
        assert!(matches!(first, Choice::BadSlot(_)));
        let chosen =
            store.writer.write(move |tx| choose(tx, &t2, &Pick::Slot(1), t0, 0)).await.expect("choose");
        let Choice::Chosen(v) = chosen else { panic!("chosen, got {chosen:?}") };
        assert_eq!(v.chosen, Some(Slot { start: moscow(12, 0), end: moscow(13, 0) }));
        let again =
            store.writer.write(move |tx| choose(tx, &token, &Pick::Slot(0), t0, 0)).await.expect("choose");
        assert!(matches!(again, Choice::Used(_)));
        let forged = store
            .writer
            .write(move |tx| choose(tx, "forged-token", &Pick::Slot(0), t0, 0))
            .await
            .expect("choose");
        assert_eq!(forged, Choice::Unknown);
        let stop = store.readers.read(|c| queries::stop(c, StopId(1))).await;
        let stop = stop.expect("read").expect("stop").stop;
        assert_eq!((stop.window_start, stop.window_end), (moscow(12, 0), moscow(13, 0)));
    }
}
