//! `callahead-server demo`: a morning of smart calls in about a minute.
//!
//! Starts the server on the embedded defaults (SQLite file, simulator
//! telephony) with a time-scaled clock, creates a demo depot with couriers
//! and routes over the HTTP API, and runs one real client core per courier
//! (each with its own SQLite file) that taps "call the next hour" every half
//! hour of the morning. Prints every status as the couriers' apps apply it,
//! then a summary read back from the server, with push latency measured from
//! the simulated key press to the courier core applying it.

use crate::{RunningServer, ServerConfig};
use callahead_core::client::{
    AutoCallAhead, Client, ClientConfig, ClientListener, ConnectionState, StopState,
};
use callahead_core::clock::{wall_ms, ScaledClock, SharedClock};
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::Language;
use callahead_core::wire::{self, paths, Event, EventKind, GeoPoint, ReplanReason};
use callahead_core::{CallStatus, Outcome, StopId};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Couriers on the road.
    #[arg(long, default_value_t = 4)]
    pub couriers: usize,
    /// Stops per courier, with one-hour delivery windows from 09:00.
    #[arg(long, default_value_t = 9)]
    pub stops: usize,
    /// Domain seconds per real second (300: the morning takes about a minute).
    #[arg(long, default_value_t = 300.0)]
    pub speed: f64,
    /// Seed of the simulated customers' behaviour.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the server's database here instead of a temporary file.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Print only the summary.
    #[arg(long)]
    pub quiet: bool,
}

const DEPOT_TZ: Tz = chrono_tz::Europe::Moscow;
const NAMES: [&str; 12] = [
    "Victoria Petrova",
    "Alexey Smirnov",
    "Maria Ivanova",
    "Dmitry Kuznetsov",
    "Anna Popova",
    "Sergey Volkov",
    "Elena Sokolova",
    "Pavel Morozov",
    "Olga Lebedeva",
    "Nikolai Kozlov",
    "Irina Novikova",
    "Andrey Fedorov",
];
const STREETS: [&str; 6] = ["Tverskaya", "Arbat", "Myasnitskaya", "Pokrovka", "Sretenka", "Petrovka"];
const COURIERS: [&str; 8] = ["Ivan", "Olga", "Timur", "Kate", "Boris", "Lena", "Roman", "Zoe"];

/// What one courier's app shows, printed as it happens.
struct Feed {
    courier: String,
    clock: SharedClock,
    quiet: bool,
    stops: Mutex<HashMap<StopId, (String, String)>>,
    stats: Arc<Mutex<Stats>>,
    changed: tokio::sync::Notify,
    /// Connection changes are news only between the first "online" and the
    /// end of the demo (start-up and shutdown are expected).
    was_online: AtomicBool,
    closing: Arc<AtomicBool>,
}

#[derive(Default)]
struct Stats {
    key_press_latency_ms: Vec<i64>,
    all_latency_ms: Vec<i64>,
    events: u64,
}

impl Feed {
    fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&DEPOT_TZ).format("%H:%M").to_string()
    }

    fn say(&self, stop: Option<StopId>, what: &str) {
        if self.quiet {
            return;
        }
        let who = stop
            .and_then(|id| self.stops.lock().ok()?.get(&id).cloned())
            .map(|(name, order)| format!("{name} (order {order})"))
            .unwrap_or_default();
        println!("{}  {:<6} {:<40} {}", self.local(self.clock.now()), self.courier, who, what);
    }
}

impl ClientListener for Feed {
    fn on_stop_changed(&self, _stop: StopState) {
        self.changed.notify_waiters();
    }

    fn on_connection_changed(&self, state: ConnectionState) {
        if state == ConnectionState::Online {
            if self.was_online.swap(true, Ordering::SeqCst) {
                self.say(None, "app is back online");
            }
        } else if self.was_online.load(Ordering::SeqCst) && !self.closing.load(Ordering::SeqCst) {
            self.say(None, &format!("app is {state:?}"));
        }
    }

    fn on_event(&self, event: &Event) {
        let latency = wall_ms() - event.origin_wall_ms;
        if let Ok(mut s) = self.stats.lock() {
            s.events += 1;
            s.all_latency_ms.push(latency);
            if matches!(event.kind, EventKind::KeyPressed { .. }) {
                s.key_press_latency_ms.push(latency);
            }
        }
        let line = match &event.kind {
            EventKind::CallRequested => "smart call requested".to_string(),
            EventKind::AttemptPlaced { attempt } => format!("calling… (attempt {attempt})"),
            EventKind::Ringing { attempt } => format!("ringing (attempt {attempt})"),
            EventKind::Answered { attempt } => format!("answered (attempt {attempt}), message playing"),
            EventKind::KeyPressed { key, .. } => format!("pressed {key}  [on screen {latency} ms later]"),
            EventKind::AttemptEnded { attempt, result } => {
                format!("attempt {attempt} ended: {}", result.as_str())
            }
            EventKind::CallFinished { outcome } => format!("=> {}", outcome_text(*outcome)),
            EventKind::CallCancelled => "call cancelled".to_string(),
            EventKind::DirectCallLogged { note, .. } => format!("courier called directly: {note}"),
            EventKind::CourierBridged { connected: true, .. } => {
                "put through to the courier's phone".to_string()
            }
            EventKind::CourierBridged { connected: false, .. } => {
                "courier busy: customer told they will be called back".to_string()
            }
            EventKind::CallDeferred { until } => {
                format!("waits for calling hours until {}", until.with_timezone(&DEPOT_TZ).format("%H:%M"))
            }
            EventKind::RescheduleOffered { .. } => "message on its way: link to pick a new slot".to_string(),
            EventKind::MessageDelivered { channel, segments, cost } => format!(
                "link sent by {channel} ({segments} segment(s), {}.{:02} {})",
                cost.minor / 100,
                cost.minor % 100,
                cost.currency
            ),
            EventKind::StopRescheduled { window_start, window_end } => {
                format!("customer picked {}–{}", self.local(*window_start), self.local(*window_end))
            }
            EventKind::PickupPointChosen { pickup_point } => {
                format!("customer will collect it at {}: take the parcel there", pickup_point.name)
            }
            EventKind::DeliveryConfirmed { .. } => {
                "customer confirmed the window by the SMS link".to_string()
            }
            EventKind::CampaignStepTaken { action, step, .. } => {
                format!("campaign step {}: {action}", step + 1)
            }
            EventKind::CampaignLeft { state, .. } => format!("left the campaign: {}", state.as_str()),
            EventKind::RescheduleSmsFailed { reason } => {
                format!("SMS could not be delivered ({reason}): phone the customer")
            }
            EventKind::WaitingForLine { reason, .. } => format!("waiting for a line ({})", reason.as_str()),
            EventKind::ProviderRejected { reason, .. } => format!("the provider refused the call: {reason}"),
            EventKind::DirectDialPlaced { .. } => {
                "courier calling the customer through the company line".to_string()
            }
            EventKind::DirectDialEnded { talk_secs, .. } => {
                format!("courier's call ended ({} s)", talk_secs.unwrap_or(0))
            }
            EventKind::DirectCallRecorded { duration_secs, .. } => {
                format!("courier's call recorded ({duration_secs} s)")
            }
            EventKind::RoutePlanned { reason: Some(reason), .. } => match reason {
                ReplanReason::Declined => "route re-planned: out of today's chain, moved to the end",
                ReplanReason::AnotherDay => "route re-planned: another day, out of today's chain",
                ReplanReason::NewWindowToday => "route re-planned: moved to where the new window fits",
            }
            .to_string(),
            EventKind::RouteReplaced { .. }
            | EventKind::RoutePlanned { .. }
            | EventKind::AppConnection { .. }
            | EventKind::CourierPosition { .. } => return,
        };
        self.say(event.stop_id, &line);
    }
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Confirmed => "CONFIRMED: customer will be home",
        Outcome::RescheduleRequested => "RESCHEDULE requested: SMS link to pick a new slot",
        Outcome::Declined => "DECLINED the delivery",
        Outcome::WantsCourier => "WANTS TO TALK to the courier",
        Outcome::NoAnswer => "NO ANSWER after every attempt",
        Outcome::Failed => "FAILED (provider error)",
        Outcome::OutsideCallingHours => "NOT CALLED: outside the customer's calling hours",
        Outcome::Interrupted => "INTERRUPTED (the server stopped during the last attempt)",
    }
}

/// Writes `secret` to a new file readable by its owner only (mode 0600).
pub fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn at_local(date: NaiveDate, h: u32, m: u32) -> Result<DateTime<Utc>, Error> {
    let naive = date.and_hms_opt(h, m, 0).ok_or("bad demo time")?;
    Ok(DEPOT_TZ.from_local_datetime(&naive).single().ok_or("ambiguous demo time")?.with_timezone(&Utc))
}

pub async fn run(args: DemoArgs) -> Result<(), Error> {
    let date = Utc::now().with_timezone(&DEPOT_TZ).date_naive();
    let morning = at_local(date, 8, 0)?;
    let clock: SharedClock = Arc::new(ScaledClock::new(morning, args.speed.max(1.0)));
    let tmp = tempfile::tempdir()?;
    let db = args.db.clone().unwrap_or_else(|| tmp.path().join("callahead-demo.db"));
    let admin = format!("demo-admin-{}", uuid::Uuid::new_v4());

    let mut config = ServerConfig::new("127.0.0.1:0".parse()?, db);
    config.admin_token = Some(admin.clone());
    config.clock = clock.clone();
    config.simulator.seed = args.seed;
    let server = RunningServer::start(config).await?;
    let base = server.base_url();
    println!("Callahead demo: server on {base}, the morning of {date} at {}x speed", args.speed);

    let http = reqwest::Client::new();
    let post = |path: String, token: String, body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let resp = http.post(url).bearer_auth(token).json(&body).send().await?;
            if !resp.status().is_success() {
                return Err::<serde_json::Value, Error>(
                    format!("{}: {}", resp.status(), resp.text().await?).into(),
                );
            }
            Ok(resp.json::<serde_json::Value>().await?)
        }
    };
    let policy = AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 15 * 60,
        ring_timeout_secs: 30,
        ..AttemptPolicy::default()
    };
    let depot: wire::Depot = serde_json::from_value(
        post(
            paths::DEPOTS.into(),
            admin.clone(),
            serde_json::to_value(wire::CreateDepot {
                name: "Demo depot, Moscow".into(),
                time_zone: DEPOT_TZ.name().into(),
                policy: Some(policy),
            })?,
        )
        .await?,
    )?;
    let depot_id = depot.id.to_string();
    let integrator: wire::CreatedIntegratorKey = serde_json::from_value(
        post(
            paths::fill(paths::DEPOT_INTEGRATOR_KEYS, &[("depot_id", &depot_id)]),
            admin.clone(),
            serde_json::json!({ "name": "demo CRM" }),
        )
        .await?,
    )?;
    // One pickup point: every other customer who reschedules collects there.
    let pickup = wire::PickupPoints {
        pickup_points: vec![wire::PickupPoint {
            id: "tverskaya".into(),
            name: "Pickup point Tverskaya".into(),
            address: "Tverskaya 7, Moscow".into(),
            hours: Some("10:00–21:00".into()),
        }],
    };
    let put = http
        .put(format!("{base}{}", paths::fill(paths::DEPOT_PICKUP_POINTS, &[("depot_id", &depot_id)])))
        .bearer_auth(&admin)
        .json(&pickup)
        .send()
        .await?;
    if !put.status().is_success() {
        return Err(format!("saving pickup points: {}", put.status()).into());
    }
    let supervisor: wire::CreatedSupervisor = serde_json::from_value(
        post(
            paths::fill(paths::DEPOT_SUPERVISORS, &[("depot_id", &depot_id)]),
            admin.clone(),
            serde_json::json!({ "name": "demo dispatcher" }),
        )
        .await?,
    )?;
    // A token on the screen ends up in screenshots and terminal logs: it
    // goes to a file only its owner can read.
    let token_file = tmp.path().join("supervisor-token");
    write_private(&token_file, &supervisor.token)?;
    println!("Watch it live: {base}/dashboard  (supervisor token in {})", token_file.display());

    // Couriers, their routes, and their phones.
    let stats = Arc::new(Mutex::new(Stats::default()));
    let closing = Arc::new(AtomicBool::new(false));
    let mut phones = Vec::new();
    for c in 0..args.couriers {
        let name = COURIERS[c % COURIERS.len()].to_string();
        let created: wire::CreatedCourier = serde_json::from_value(
            post(
                paths::fill(paths::DEPOT_COURIERS, &[("depot_id", &depot_id)]),
                admin.clone(),
                serde_json::to_value(wire::CreateCourier {
                    name: name.clone(),
                    phone: format!("+7916000{c:04}"),
                })?,
            )
            .await?,
        )?;
        let mut stops = Vec::new();
        for s in 0..args.stops {
            let start = at_local(date, 9, 0)? + Duration::minutes(25 * s as i64);
            let order = 16_000 + (c * 100 + s) as u32;
            stops.push(wire::StopInput {
                external_id: format!("ORD-{order}"),
                customer_name: NAMES[(c * 5 + s) % NAMES.len()].into(),
                phone: format!("+7925{c:03}{s:04}"),
                time_zone: DEPOT_TZ.name().into(),
                address: format!("{} {}, Moscow", STREETS[(c + s) % STREETS.len()], 3 + s * 2),
                window_start: start,
                window_end: start + Duration::hours(1),
                order_numbers: vec![order.to_string()],
                amount: Some(wire::Money { minor: 150_000 + 10_000 * s as i64, currency: "RUB".into() }),
                // Stops a few hundred metres apart around central Moscow.
                location: Some(wire::GeoPoint {
                    lat: 55.75 + 0.004 * s as f64,
                    lon: 37.60 + 0.006 * c as f64,
                }),
                // Most customers hear Russian; every fourth, English.
                language: Some(if s % 4 == 3 { Language::En } else { Language::Ru }),
            });
        }
        let path = paths::fill(
            paths::COURIER_ROUTE,
            &[("courier_id", &created.courier.id.to_string()), ("date", &date.to_string())],
        );
        let resp = http
            .put(format!("{base}{path}"))
            .bearer_auth(&integrator.token)
            .json(&wire::RouteImport { stops })
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(format!("route import: {}", resp.text().await?).into());
        }
        let feed = Arc::new(Feed {
            courier: name,
            clock: clock.clone(),
            quiet: args.quiet,
            stops: Mutex::new(HashMap::new()),
            stats: stats.clone(),
            changed: tokio::sync::Notify::new(),
            was_online: AtomicBool::new(false),
            closing: closing.clone(),
        });
        let mut client_config =
            ClientConfig::new(tmp.path().join(format!("courier-{c}.db")), base.clone(), created.token);
        // Automatic call-ahead runs on the phone's clock: the demo's morning.
        client_config.clock = clock.clone();
        let client = Client::open(client_config, feed.clone())?;
        let synced = client.sync_route(date).await?;
        if let Ok(mut names) = feed.stops.lock() {
            for s in &synced {
                let order = s.stop.order_numbers.first().cloned().unwrap_or_default();
                names.insert(s.stop.id, (s.stop.customer_name.clone(), order));
            }
        }
        phones.push((Arc::new(client), feed));
    }
    let automatic = args.couriers / 2;
    println!(
        "{} couriers with {} stops each; {} tap \"call the next hour\" every half hour, {} switch on \
         automatic call-ahead (each customer called about an hour before the courier arrives)\n",
        args.couriers,
        args.stops,
        args.couriers - automatic,
        automatic
    );

    // Customers who asked for another time open the SMS link a few minutes
    // later and take the first slot offered.
    let customers = tokio::spawn(pick_first_slots(server.messaging(), http.clone(), clock.clone()));

    // The couriers' morning: tap at 08:30, 09:00, … until no stop is left.
    let mut drivers = tokio::task::JoinSet::new();
    for (i, (client, feed)) in phones.iter().enumerate() {
        let (client, feed, clock) = (client.clone(), feed.clone(), clock.clone());
        let first_tap = at_local(date, 8, 30)?;
        // The second half of the couriers never tap.
        let auto = i >= args.couriers - automatic;
        drivers.spawn(async move {
            let mut tap = first_tap;
            loop {
                clock.sleep_until(tap).await;
                if tap == first_tap {
                    // Leaving the depot: the supervisor's map shows where.
                    client.report_position(GeoPoint { lat: 55.745, lon: 37.60 + 0.006 * i as f64 })?;
                }
                if auto {
                    if tap == first_tap {
                        feed.say(None, "switches on automatic call-ahead, 60 minutes ahead");
                        client.set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: 60 })?;
                    }
                } else {
                    let due: Vec<StopId> =
                        client.stops_due_within(clock.now(), 60)?.iter().map(|s| s.stop.id).collect();
                    if !due.is_empty() {
                        feed.say(None, &format!("taps \"call the next hour\": {} customers", due.len()));
                        client.request_calls(&due)?;
                    }
                }
                let left = client
                    .stops()?
                    .iter()
                    .filter(|s| s.stop.window_end > clock.now() && untouched(s))
                    .count();
                if left == 0 {
                    break;
                }
                tap += Duration::minutes(30);
            }
            // Wait for this courier's last calls to finish.
            loop {
                let notified = feed.changed.notified();
                if client
                    .stops()?
                    .iter()
                    .all(|s| s.outbox.is_none() && s.call.as_ref().is_none_or(|c| c.status.is_terminal()))
                {
                    break;
                }
                let _ = tokio::time::timeout(std::time::Duration::from_millis(500), notified).await;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = drivers.join_next().await {
        done??;
    }

    // The summary, as the server recorded it.
    let resp =
        http.get(format!("{base}{}?date={date}", paths::CALLS)).bearer_auth(&supervisor.token).send().await?;
    let calls: wire::CallList = resp.json().await?;
    let report_path = paths::fill(paths::DEPOT_DAILY_REPORT, &[("depot_id", &depot_id)]);
    let resp =
        http.get(format!("{base}{report_path}?date={date}")).bearer_auth(&supervisor.token).send().await?;
    let report: wire::DailyReport = resp.json().await?;
    let auto_calls = phones
        .iter()
        .map(|(client, _)| client.stops().map(|s| s.iter().filter(|s| s.auto_eta.is_some()).count()))
        .sum::<Result<usize, _>>()?;
    closing.store(true, Ordering::SeqCst);
    customers.abort();
    for (client, _) in phones.drain(..) {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close();
        }
    }
    server.shutdown().await;
    print_summary(&calls, &stats, args.couriers * args.stops, clock.now());
    print_savings(&report, auto_calls);
    Ok(())
}

/// The simulated customers' side of a reschedule: every SMS link is opened
/// three domain minutes after the SMS arrived; alternately the first slot or
/// the depot's pickup point is chosen.
async fn pick_first_slots(
    messaging: Arc<crate::providers::simulator::SimMessaging>,
    http: reqwest::Client,
    clock: SharedClock,
) {
    let mut changes = messaging.changes();
    let mut handled = 0;
    loop {
        let sent = messaging.sent();
        for (i, sms) in sent.iter().enumerate().skip(handled) {
            let Some(at) = sms.text.find("http") else { continue };
            let choice = if i % 2 == 0 { "choice=slot-0" } else { "choice=pickup-tverskaya" };
            let url = sms.text[at..].to_owned();
            let (http, clock) = (http.clone(), clock.clone());
            tokio::spawn(async move {
                clock.sleep_until(clock.now() + Duration::minutes(3)).await;
                let picked = http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(choice)
                    .send()
                    .await;
                if let Err(e) = picked {
                    tracing::warn!(error = %e, "demo customer could not open the link");
                }
            });
        }
        handled = sent.len();
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// What call-ahead saved, as the daily report says.
fn print_savings(r: &wire::DailyReport, auto_calls: usize) {
    let v = &r.savings;
    println!("\n== What it saved ==");
    println!("calls placed automatically   {auto_calls} (ETA within the hour, nobody tapped)");
    println!(
        "failed visits avoided        {} (declined or rescheduled before the window opened)",
        v.failed_visits_avoided
    );
    println!("confirmed before arrival     {} of {}", v.confirmed_before_arrival, v.confirmed);
    println!(
        "courier minutes saved        {} ({} robot calls × {} min by hand)",
        v.courier_minutes_saved, v.attempts, r.minutes_per_manual_call
    );
    match v.cost_per_confirmed_minor {
        Some(c) => println!("cost per confirmed delivery  {:.2} {}", c as f64 / 100.0, r.cost_total.currency),
        None => println!("cost per confirmed delivery  – (nobody confirmed)"),
    }
}

fn untouched(s: &StopState) -> bool {
    s.call.is_none() && s.outbox.is_none()
}

fn percentile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn print_summary(calls: &wire::CallList, stats: &Mutex<Stats>, stops: usize, end: DateTime<Utc>) {
    let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
    let mut attempts = 0;
    let mut unfinished = 0;
    for c in &calls.calls {
        attempts += c.attempts.len();
        match (c.call.status, c.call.outcome) {
            (CallStatus::Finished, Some(o)) => *outcomes.entry(o).or_default() += 1,
            _ => unfinished += 1,
        }
    }
    let n = calls.calls.len().max(1);
    println!("\n== Summary ({} local) ==", end.with_timezone(&DEPOT_TZ).format("%H:%M"));
    println!("stops on routes        {stops}");
    println!("smart calls            {}", calls.calls.len());
    for o in Outcome::ALL {
        let k = outcomes.get(&o).copied().unwrap_or(0);
        println!("  {:<22} {:>4}  ({:.0}%)", o.as_str(), k, 100.0 * k as f64 / n as f64);
    }
    if unfinished > 0 {
        println!("  {:<22} {:>4}", "unfinished", unfinished);
    }
    let reached: usize = outcomes.iter().filter(|(o, _)| o.is_reached()).map(|(_, k)| k).sum();
    println!("customers reached      {reached} ({:.0}%)", 100.0 * reached as f64 / n as f64);
    println!("attempts               {attempts} ({:.2} per call)", attempts as f64 / n as f64);
    if let Ok(mut s) = stats.lock() {
        let events = s.events;
        let (k50, k99) =
            (percentile(&mut s.key_press_latency_ms, 0.5), percentile(&mut s.key_press_latency_ms, 0.99));
        let (a50, a99) = (percentile(&mut s.all_latency_ms, 0.5), percentile(&mut s.all_latency_ms, 0.99));
        println!("events applied by apps {events}");
        println!("push latency, key press -> courier app: p50 {k50} ms, p99 {k99} ms");
        println!("push latency, any event -> courier app: p50 {a50} ms, p99 {a99} ms");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(unix)]
    fn the_token_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t");
        super::write_private(&path, "cah_sup_x").expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "cah_sup_x\n");
        assert!(super::write_private(&path, "again").is_err(), "never overwrites");
    }
}
