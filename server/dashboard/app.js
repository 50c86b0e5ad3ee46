// The supervisor's live dashboard. One snapshot from the API, then the
// websocket feed from the snapshot's seq; after a drop it resumes from the
// last seq it applied, so no event is lost or applied twice. Rendering is
// batched per animation frame so a busy depot does not freeze the page.
// Data always goes into the DOM as text, never as HTML.

const TOKEN_KEY = "callahead.token";
const DEPOT_KEY = "callahead.depot";
const MAX_ACTIVE = 5;
const FEED_ROWS = 150;
const LATENCY_SAMPLES = 20000;

const $ = (sel) => document.querySelector(sel);

const state = {
  token: null,
  depots: [],
  depot: null,
  date: null,
  couriers: new Map(), // id -> {courier, app_connected, last_activity}
  courierRows: new Map(), // id -> <tr>
  stops: new Map(), // id -> stop
  calls: new Map(), // id -> CallView
  callsByCourier: new Map(), // courier id -> Set of call ids
  lastSeq: 0,
  logId: null,
  ws: null,
  live: false,
  retry: 0,
  retryTimer: null,
  selectedCourier: null,
  selectedStop: null,
  dirty: new Set(), // courier ids whose rows changed
  feedPending: [],
  measurePending: [],
  latencies: [], // event cause -> its rows updated, ms
  received: [], // event cause -> its frame received, ms
  pageDelays: [], // frame received -> its rows updated, ms
  frame: 0,
  ratesDirty: false,
  ratesAt: -Infinity,
  ratesTimer: 0,
  refreshTimer: null,
  timelineTimer: null,
  savings: null, // the day's DailyReport: what call-ahead saved, answers by hour
  savingsTimer: 0,
};

/// The report is the one source of these figures (the same rule for the
/// report and the page); re-read at most every second while calls finish.
const SAVINGS_EVERY_MS = 1000;

// ------------------------------------------------------------ formatting

let clockFormat = null;
let hourFormat = null;
function setTimeZone(tz) {
  clockFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  hourFormat = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "numeric", hourCycle: "h23" });
}
const clock = (iso) => (iso ? clockFormat.format(new Date(iso)) : "–");
const hourOf = (iso) => Number(hourFormat.format(new Date(iso)));
const pct = (n, d) => (d ? `${Math.round((100 * n) / d)}%` : "–");

const OUTCOME_LABEL = {
  confirmed: "confirmed",
  reschedule_requested: "reschedule requested",
  declined: "declined",
  wants_courier: "wants the courier",
  no_answer: "no answer",
  failed: "failed",
  outside_calling_hours: "outside calling hours",
  interrupted: "interrupted (server stopped)",
};

const REPLAN_LABEL = {
  declined: "declined, out of today's chain",
  another_day: "moved to another day, out of today's chain",
  new_window_today: "moved to fit the new window",
};

export function describe(kind) {
  switch (kind.type) {
    case "call_requested": return "smart call requested";
    case "attempt_placed": return `attempt ${kind.attempt} placed`;
    case "ringing": return `attempt ${kind.attempt} ringing`;
    case "answered": return `attempt ${kind.attempt} answered`;
    case "key_pressed": return `pressed ${kind.key} (attempt ${kind.attempt})`;
    case "attempt_ended": return `attempt ${kind.attempt} ended: ${kind.result.replaceAll("_", " ")}`;
    case "call_finished": return `finished: ${OUTCOME_LABEL[kind.outcome] ?? kind.outcome}`;
    case "call_cancelled": return "call cancelled";
    case "courier_bridged":
      return kind.connected ? "put through to the courier" : "courier busy: they should call back";
    case "direct_call_logged": return `courier called directly: ${kind.note}`;
    case "call_deferred": return `next attempt waits for calling hours (${clock(kind.until)})`;
    case "route_replaced": return `route for ${kind.date} imported`;
    case "route_planned":
      return kind.reason
        ? `route re-planned: ${REPLAN_LABEL[kind.reason] ?? kind.reason.replaceAll("_", " ")}`
        : `route for ${kind.date} planned (${kind.stop_ids.length} stops)`;
    case "reschedule_offered": return `SMS with a reschedule link sent to ${kind.sms_to_masked}`;
    case "stop_rescheduled":
      return `customer rescheduled to ${clock(kind.window_start)}–${clock(kind.window_end)}`;
    case "pickup_point_chosen":
      return `customer will collect at ${kind.pickup_point.name} (${kind.pickup_point.address})`;
    case "reschedule_sms_failed": return `reschedule SMS failed (${kind.reason}): the courier should phone`;
    case "campaign_step_taken": return `campaign ${kind.campaign_id}: step ${kind.step + 1} (${kind.action})`;
    case "campaign_left": return `left campaign ${kind.campaign_id}: ${String(kind.state).replaceAll("_", " ")}`;
    case "delivery_confirmed": return "customer confirmed the delivery window by SMS link";
    case "message_delivered": return `message delivered by ${String(kind.channel).replaceAll("_", " ")}`;
    case "app_connection": return kind.connected ? "app connected" : "app disconnected";
    case "waiting_for_line":
      return `attempt ${kind.attempt} waiting for a line (${String(kind.reason).replaceAll("_", " ")})`;
    case "provider_rejected": return `the provider refused attempt ${kind.attempt}: ${kind.reason}`;
    case "direct_dial_placed":
      return `courier calling the customer through the company line${kind.recorded ? " (recorded)" : ""}`;
    case "direct_dial_ended":
      return kind.connected ? `courier's call ended after ${kind.talk_secs ?? 0} s` : "courier's call did not connect";
    case "direct_call_recorded": return `courier's call recorded (${kind.duration_secs} s, ${kind.recording_ref})`;
    default: return kind.type.replaceAll("_", " ");
  }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// ------------------------------------------------------------ API

class AuthError extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401 || res.status === 403) throw new AuthError(body.message ?? "not allowed");
  if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`);
  return body;
}

// ------------------------------------------------------------ state

function callsOf(courierId) {
  return [...(state.callsByCourier.get(courierId) ?? [])].map((id) => state.calls.get(id));
}

function applySnapshot(d) {
  state.date = d.date;
  state.couriers = new Map(d.couriers.map((c) => [c.courier.id, { ...c }]));
  state.stops = new Map(d.stops.map((s) => [s.id, s]));
  for (const c of d.calls) putCall(c);
  for (const id of state.couriers.keys()) state.dirty.add(id);
}

function putCall(call) {
  const known = state.calls.get(call.id);
  if (known && known.last_seq > call.last_seq) return;
  state.calls.set(call.id, call);
  if (!state.callsByCourier.has(call.courier_id)) state.callsByCourier.set(call.courier_id, new Set());
  state.callsByCourier.get(call.courier_id).add(call.id);
  state.ratesDirty = true;
}

function applyEvent(e, receivedAt) {
  if (e.seq <= state.lastSeq) return; // replayed after a resume: already applied
  state.lastSeq = e.seq;
  if (e.depot_id !== state.depot.id) return; // an admin's feed carries every depot
  const courier = state.couriers.get(e.courier_id);
  if (!courier) scheduleRefresh(); // a courier created after the snapshot
  if (courier && (!courier.last_activity || courier.last_activity < e.at)) courier.last_activity = e.at;
  switch (e.kind.type) {
    case "app_connection":
      if (courier) courier.app_connected = e.kind.connected;
      break;
    case "courier_position":
      if (courier) courier.position = { lat: e.kind.lat, lon: e.kind.lon, reported_at: e.kind.reported_at };
      state.ratesDirty = true;
      break;
    case "call_finished":
    case "message_delivered":
      scheduleSavings();
      break;
    case "route_replaced":
    case "stop_rescheduled":
    case "pickup_point_chosen":
    case "delivery_confirmed":
      scheduleRefresh();
      break;
  }
  if (e.call) putCall(e.call);
  if (e.kind.type === "attempt_ended") scheduleSavings();
  state.dirty.add(e.courier_id);
  state.feedPending.push(e);
  state.measurePending.push([e.origin_wall_ms, receivedAt]);
  if (state.selectedStop !== null && e.stop_id === state.selectedStop) scheduleTimeline();
  scheduleRender();
}

// ------------------------------------------------------------ rendering

function scheduleRender() {
  if (!state.frame) state.frame = requestAnimationFrame(render);
}

function render() {
  state.frame = 0;
  renderCouriers();
  renderFeed();
  // Aggregates over the whole day: at most twice a second.
  const tick = performance.now();
  if (state.ratesDirty && tick - state.ratesAt >= 500) {
    state.ratesDirty = false;
    state.ratesAt = tick;
    renderRates();
  } else if (state.ratesDirty && !state.ratesTimer) {
    state.ratesTimer = setTimeout(() => {
      state.ratesTimer = 0;
      scheduleRender();
    }, 500 - (tick - state.ratesAt));
  }
  if (state.selectedCourier !== null) renderStops();
  // The rows are in the DOM now: this is when the supervisor can see them.
  const now = Date.now();
  for (const [origin, received] of state.measurePending) {
    if (state.latencies.length < LATENCY_SAMPLES) {
      state.latencies.push(now - origin);
      state.pageDelays.push(now - received);
    }
  }
  state.measurePending = [];
}

function courierRow(id) {
  const tbody = $("#couriers tbody");
  let tr = state.courierRows.get(id);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.courier = id;
    for (let i = 0; i < 13; i++) tr.append(document.createElement("td"));
    tr.addEventListener("click", () => selectCourier(id));
    const rows = [...tbody.children];
    const after = rows.find((r) => Number(r.dataset.courier) > id);
    tbody.insertBefore(tr, after ?? null);
    state.courierRows.set(id, tr);
  }
  return tr;
}

function renderCouriers() {
  for (const id of state.dirty) {
    const c = state.couriers.get(id);
    if (!c) continue;
    const calls = callsOf(id);
    const active = calls.filter((k) => k.status !== "finished" && k.status !== "cancelled");
    const queued = active.filter((k) => k.status === "scheduled").length;
    const n = (o) => calls.filter((k) => k.outcome === o).length;
    const tr = courierRow(id);
    tr.classList.toggle("selected", state.selectedCourier === id);
    const cells = [
      c.courier.name,
      c.app_connected ? "online" : "offline",
      `${active.length}/${MAX_ACTIVE}`,
      queued,
      n("confirmed"),
      n("reschedule_requested"),
      n("declined"),
      n("wants_courier"),
      n("no_answer"),
      n("failed") + n("outside_calling_hours") + n("interrupted"),
      clock(c.last_activity),
      savedOf(id)?.failed_visits_avoided ?? 0,
      savedOf(id)?.courier_minutes_saved ?? 0,
    ];
    cells.forEach((v, i) => {
      // Only what changed: unchanged text costs no layout.
      const text = String(v);
      if (tr.children[i].textContent !== text) tr.children[i].textContent = text;
    });
    tr.children[1].className = c.app_connected ? "app on" : "app off";
    if (tr.dataset.active !== String(active.length)) tr.dataset.active = active.length;
    if (tr.dataset.calls !== String(calls.length)) tr.dataset.calls = calls.length;
  }
  state.dirty.clear();
}

function savedOf(courierId) {
  return state.savings?.savings_by_courier.find((c) => c.courier_id === courierId);
}

function scheduleSavings() {
  if (!state.savingsTimer) state.savingsTimer = setTimeout(loadSavings, SAVINGS_EVERY_MS);
}

async function loadSavings() {
  state.savingsTimer = 0;
  const depot = state.depot;
  let report;
  try {
    report = await api(`/v1/depots/${depot.id}/reports/daily?date=${state.date}`);
  } catch (err) {
    console.warn("reading the daily report failed", err);
    return;
  }
  if (state.depot !== depot) return; // another depot was opened meanwhile
  state.savings = report;
  renderSavings();
  renderAnswers(report.answers_by_hour ?? []);
  for (const id of state.couriers.keys()) state.dirty.add(id);
  scheduleRender();
}

function money(minor, currency) {
  return minor === null || minor === undefined ? "–" : `${(minor / 100).toFixed(2)} ${currency}`;
}

function renderSavings() {
  const r = state.savings;
  if (!r) return;
  const v = r.savings;
  const tiles = {
    failed_visits_avoided: [v.failed_visits_avoided, "declines and reschedules before the window opened"],
    confirmed_before_arrival: [v.confirmed_before_arrival, `of ${v.confirmed} confirmations`],
    courier_minutes_saved: [v.courier_minutes_saved, `${v.attempts} robot calls × ${r.minutes_per_manual_call} min`],
    cost_per_confirmed: [money(v.cost_per_confirmed_minor, r.cost_total.currency), `${money(v.cost_minor, r.cost_total.currency)} in all`],
  };
  for (const tile of document.querySelectorAll("#savings .saving")) {
    const [value, detail] = tiles[tile.dataset.saving];
    tile.querySelector(".value").textContent = String(value);
    tile.querySelector(".count").textContent = detail;
    tile.dataset.value = tile.dataset.saving === "cost_per_confirmed" ? String(v.cost_per_confirmed_minor ?? "") : String(value);
  }
}

function renderFeed() {
  if (!state.feedPending.length) return;
  const tbody = $("#feed tbody");
  const frag = document.createDocumentFragment();
  // Newest first.
  for (let i = state.feedPending.length - 1; i >= 0; i--) {
    const e = state.feedPending[i];
    const tr = document.createElement("tr");
    tr.dataset.seq = e.seq;
    tr.dataset.kind = e.kind.type;
    const stop = e.stop_id !== null ? state.stops.get(e.stop_id) : null;
    tr.append(
      el("td", e.seq),
      el("td", clock(e.at)),
      el("td", state.couriers.get(e.courier_id)?.courier.name ?? `#${e.courier_id}`),
      el("td", stop ? stop.customer_name : e.stop_id !== null ? `stop ${e.stop_id}` : ""),
      el("td", describe(e.kind), `kind ${e.kind.type}`),
    );
    if (e.stop_id !== null) {
      tr.dataset.stop = e.stop_id;
      tr.classList.add("clickable");
      tr.addEventListener("click", () => openTimeline(e.stop_id));
    }
    frag.append(tr);
  }
  state.feedPending = [];
  tbody.prepend(frag);
  while (tbody.children.length > FEED_ROWS) tbody.lastElementChild.remove();
}

function totals(calls) {
  const t = { finished: 0, reached: 0, confirmed: 0, rescheduled: 0, declined: 0, wants_courier: 0, no_answer: 0, other: 0 };
  for (const c of calls) {
    if (c.status !== "finished" || !c.outcome) continue;
    t.finished++;
    switch (c.outcome) {
      case "confirmed": t.confirmed++; t.reached++; break;
      case "reschedule_requested": t.rescheduled++; t.reached++; break;
      case "declined": t.declined++; t.reached++; break;
      case "wants_courier": t.wants_courier++; t.reached++; break;
      case "no_answer": t.no_answer++; break;
      default: t.other++;
    }
  }
  return t;
}

function renderRates() {
  const calls = [...state.calls.values()];
  const t = totals(calls);
  for (const tile of document.querySelectorAll("#rates .rate")) {
    const n = t[tile.dataset.rate];
    tile.querySelector(".value").textContent = pct(n, t.finished);
    tile.querySelector(".count").textContent = `${n} of ${t.finished}`;
    tile.dataset.count = n;
    tile.dataset.finished = t.finished;
  }
  renderChart(calls);
  renderMap();
}

const PIN_CLASS = {
  confirmed: "confirmed", reschedule_requested: "rescheduled", declined: "declined",
  wants_courier: "wants_courier", no_answer: "no_answer",
};

/// Stops with coordinates, coloured by their call's outcome, and each
/// courier's last reported position: the progress of the morning at a glance.
function renderMap() {
  const svg = $("#map");
  svg.replaceChildren();
  const stops = [...state.stops.values()].filter((s) => s.location);
  const couriers = [...state.couriers.values()].filter((c) => c.position);
  const pts = [...stops.map((s) => [s.location.lon, s.location.lat]), ...couriers.map((c) => [c.position.lon, c.position.lat])];
  svg.dataset.couriers = couriers.length;
  if (!pts.length) return;
  const W = 480, H = 240, PAD = 12;
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const sx = (W - 2 * PAD) / Math.max(x1 - x0, 1e-4), sy = (H - 2 * PAD) / Math.max(y1 - y0, 1e-4);
  const xy = (lon, lat) => [PAD + (lon - x0) * sx, H - PAD - (lat - y0) * sy];
  const ns = "http://www.w3.org/2000/svg";
  const dot = (lon, lat, r, cls, title) => {
    const c = document.createElementNS(ns, "circle");
    const [x, y] = xy(lon, lat);
    c.setAttribute("cx", x.toFixed(1));
    c.setAttribute("cy", y.toFixed(1));
    c.setAttribute("r", r);
    c.setAttribute("class", cls);
    const t = document.createElementNS(ns, "title");
    t.textContent = title;
    c.append(t);
    svg.append(c);
    return c;
  };
  const latest = latestCalls();
  for (const s of stops) {
    const call = latest.get(s.id);
    dot(s.location.lon, s.location.lat, 3, `pin ${PIN_CLASS[call?.outcome] ?? (call ? "pending" : "none")}`, s.customer_name);
  }
  for (const c of couriers) {
    const d = dot(c.position.lon, c.position.lat, 6, "courier", `${c.courier.name} at ${clock(c.position.reported_at)}`);
    d.dataset.courier = c.courier.id;
  }
}

const CHART_KEYS = ["confirmed", "rescheduled", "declined", "wants_courier", "no_answer", "other"];

function renderChart(calls) {
  const hours = new Map();
  for (const c of calls) {
    if (c.status !== "finished" || !c.outcome) continue;
    const h = hourOf(c.updated_at);
    if (!hours.has(h)) hours.set(h, []);
    hours.get(h).push(c);
  }
  const svg = $("#chart");
  svg.replaceChildren();
  if (!hours.size) return;
  const keys = [...hours.keys()].sort((a, b) => a - b);
  const first = keys[0];
  const last = keys[keys.length - 1];
  const span = last - first + 1;
  const perHour = new Map(keys.map((h) => [h, totals(hours.get(h))]));
  const max = Math.max(...[...perHour.values()].map((t) => t.finished));
  const W = 480, H = 120, bw = W / span;
  const ns = "http://www.w3.org/2000/svg";
  for (let h = first; h <= last; h++) {
    const t = perHour.get(h);
    const x = (h - first) * bw;
    if (t) {
      let y = H;
      for (const k of CHART_KEYS) {
        if (!t[k]) continue;
        const height = (t[k] / max) * (H - 4);
        y -= height;
        const r = document.createElementNS(ns, "rect");
        r.setAttribute("x", x + bw * 0.15);
        r.setAttribute("y", y);
        r.setAttribute("width", bw * 0.7);
        r.setAttribute("height", height);
        r.setAttribute("class", `bar ${k}`);
        const title = document.createElementNS(ns, "title");
        title.textContent = `${h}:00 ${k.replace("_", " ")}: ${t[k]}`;
        r.append(title);
        svg.append(r);
      }
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x + bw / 2);
    label.setAttribute("y", 136);
    label.setAttribute("class", "hour");
    label.textContent = `${h}h`;
    svg.append(label);
  }
}

function selectCourier(id) {
  const previous = state.selectedCourier;
  state.selectedCourier = id;
  if (previous !== null) state.dirty.add(previous);
  state.dirty.add(id);
  $("#stops-box").hidden = false;
  $("#stops-title").textContent = `Stops of ${state.couriers.get(id)?.courier.name ?? id}`;
  scheduleRender();
}

/// Each stop's latest call, in one pass over the calls.
function latestCalls() {
  const latest = new Map();
  for (const c of state.calls.values()) {
    const known = latest.get(c.stop_id);
    if (!known || c.id > known.id) latest.set(c.stop_id, c);
  }
  return latest;
}

function renderStops() {
  const tbody = $("#stops tbody");
  const rows = [];
  const stops = [...state.stops.values()]
    .filter((s) => s.courier_id === state.selectedCourier)
    .sort((a, b) => a.sequence - b.sequence || a.position - b.position);
  const latest = latestCalls();
  for (const s of stops) {
    const call = latest.get(s.id);
    const tr = document.createElement("tr");
    tr.dataset.stop = s.id;
    tr.classList.add("clickable");
    tr.append(
      el("td", s.sequence + 1),
      el("td", s.customer_name),
      el("td", `${clock(s.window_start)}–${clock(s.window_end)}`),
      el("td", call ? call.status : "not called"),
      el("td", call ? `${call.attempts_made}/${call.max_attempts}` : ""),
      el("td", call?.outcome ? OUTCOME_LABEL[call.outcome] : ""),
    );
    tr.addEventListener("click", () => openTimeline(s.id));
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

// ------------------------------------------------------------ timeline

async function openTimeline(stopId) {
  state.selectedStop = stopId;
  $("#timeline-box").hidden = false;
  await loadTimeline();
  $("#timeline-box").scrollIntoView({ block: "nearest" });
}

function scheduleTimeline() {
  clearTimeout(state.timelineTimer);
  state.timelineTimer = setTimeout(loadTimeline, 200);
}

async function loadTimeline() {
  const stopId = state.selectedStop;
  if (stopId === null) return;
  let t;
  try {
    t = await api(`/v1/stops/${stopId}/timeline`);
  } catch (err) {
    $("#timeline").replaceChildren(el("p", `Cannot load the stop: ${err.message}`, "error"));
    return;
  }
  if (state.selectedStop !== stopId) return;
  const box = el("div");
  box.dataset.stop = stopId;
  const s = t.stop;
  box.append(
    el("h3", `${s.customer_name} — ${s.address}`),
    el("p", `${s.phone} · window ${clock(s.window_start)}–${clock(s.window_end)} · order ${s.order_numbers.join(", ") || "–"}${t.removed ? " · removed from the route" : ""}`),
  );
  for (const detail of t.calls) {
    const c = detail.call;
    const sec = el("section", null, "call");
    sec.dataset.call = c.id;
    sec.append(el("h4", `Smart call #${c.id}: ${c.status}${c.outcome ? ` — ${OUTCOME_LABEL[c.outcome]}` : ""} (${c.attempts_made}/${c.max_attempts} attempts)`));
    const list = el("ol", null, "attempts");
    for (const a of detail.attempts) {
      const li = el("li", null, "attempt");
      li.dataset.attempt = a.number;
      const steps = [`placed ${clock(a.placed_at)}`];
      if (a.ringing_at) steps.push(`ringing ${clock(a.ringing_at)}`);
      if (a.answered_at) steps.push(`answered ${clock(a.answered_at)}`);
      if (a.key) steps.push(`key ${a.key}`);
      if (a.ended_at) steps.push(`ended ${clock(a.ended_at)}`);
      if (a.result) steps.push(a.result.replaceAll("_", " "));
      li.append(el("div", `Attempt ${a.number}: ${steps.join(" · ")}`));
      if (a.script) li.append(el("blockquote", a.script, "script"));
      list.append(li);
    }
    sec.append(list);
    box.append(sec);
  }
  const events = el("ol", null, "events");
  for (const e of t.events) {
    const li = el("li", `${clock(e.at)} #${e.seq} ${describe(e.kind)}`);
    li.dataset.seq = e.seq;
    li.dataset.kind = e.kind.type;
    events.append(li);
  }
  box.append(el("h4", "Every event"), events);
  $("#timeline").replaceChildren(box);
}

// ------------------------------------------------------------ answer rate by hour

// Counted by the server (the daily report, on the customer's own clock, as
// the best-hour retries learn it); read with the savings (`loadSavings`).
function renderAnswers(hours) {
  const rows = hours.map((h) => {
    const tr = document.createElement("tr");
    tr.dataset.hour = h.hour;
    tr.dataset.attempts = h.attempts;
    tr.dataset.answered = h.answered;
    const meter = el("td", null, "meter");
    const bar = el("span");
    // Set through the CSSOM: the page's CSP refuses inline style attributes.
    bar.style.width = `${Math.round(100 * h.answer_rate)}%`;
    meter.append(bar);
    tr.append(
      el("td", `${String(h.hour).padStart(2, "0")}:00`),
      el("td", h.attempts),
      el("td", h.answered),
      el("td", pct(h.answered, h.attempts)),
      meter,
    );
    return tr;
  });
  $("#answers tbody").replaceChildren(...rows);
  $("#answers-empty").hidden = rows.length > 0;
}

// ------------------------------------------------------------ websocket

function setLink(text, live) {
  const link = $("#link");
  link.textContent = text;
  link.className = live ? "link on" : "link off";
  document.body.dataset.link = live ? "live" : "down";
}

function connect() {
  clearTimeout(state.retryTimer);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}/v1/ws?after=${state.lastSeq}&access_token=${encodeURIComponent(state.token)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  setLink(state.retry ? "reconnecting…" : "connecting…", false);
  ws.onmessage = (m) => {
    if (ws !== state.ws) return;
    const frame = JSON.parse(m.data);
    switch (frame.type) {
      case "event": {
        const now = Date.now();
        if (state.received.length < LATENCY_SAMPLES) state.received.push(now - frame.event.origin_wall_ms);
        applyEvent(frame.event, now);
        break;
      }
      case "hello":
        // Another log (the server's database was replaced): the seqs we hold
        // mean nothing there; start over from a fresh snapshot.
        if (state.logId && frame.log_id && frame.log_id !== state.logId) return resync();
        state.logId = frame.log_id ?? state.logId;
        break;
      case "caught_up":
        state.live = true;
        state.retry = 0;
        setLink("live", true);
        break;
      case "error":
        // Our cursor is beyond the log's head (a restored database).
        if (frame.code === "cursor_ahead") return resync();
        setLink(`server: ${frame.message}`, false);
        break;
    }
  };
  ws.onclose = () => {
    if (ws !== state.ws) return;
    state.ws = null;
    state.live = false;
    // Backoff with jitter, so a restarted server is not hit by every page at once.
    const delay = Math.min(10000, 500 * 2 ** state.retry) * (0.5 + Math.random() / 2);
    state.retry = Math.min(state.retry + 1, 6);
    setLink(`disconnected — retrying in ${Math.ceil(delay / 1000)} s`, false);
    state.retryTimer = setTimeout(connect, delay);
  };
}

function resync() {
  state.logId = null;
  openDepot(state.depot).catch((err) => setLink(`cannot reload: ${err.message}`, false));
}

function disconnect() {
  clearTimeout(state.retryTimer);
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 300);
}

/// New couriers or stops: merge a fresh snapshot; calls keep the newer copy.
async function refresh() {
  try {
    const d = await api(`/v1/depots/${state.depot.id}/dashboard?date=${state.date}`);
    for (const c of d.couriers) {
      const known = state.couriers.get(c.courier.id);
      if (!known) state.couriers.set(c.courier.id, { ...c });
      state.dirty.add(c.courier.id);
    }
    state.stops = new Map(d.stops.map((s) => [s.id, s]));
    for (const c of d.calls) putCall(c);
    scheduleRender();
  } catch (err) {
    console.warn("refresh failed", err);
  }
}

// ------------------------------------------------------------ start

async function openDepot(depot) {
  disconnect();
  state.depot = depot;
  sessionStorage.setItem(DEPOT_KEY, String(depot.id));
  setTimeZone(depot.time_zone);
  state.calls.clear();
  state.callsByCourier.clear();
  state.selectedCourier = null;
  state.selectedStop = null;
  $("#couriers tbody").replaceChildren();
  state.courierRows.clear();
  $("#feed tbody").replaceChildren();
  $("#stops-box").hidden = true;
  $("#timeline-box").hidden = true;
  renderAnswers([]);
  const d = await api(`/v1/depots/${depot.id}/dashboard`);
  applySnapshot(d);
  state.lastSeq = d.head_seq;
  $("#depot-name").textContent = depot.name;
  $("#day").textContent = d.date;
  document.title = `${depot.name} — Callahead live`;
  state.savings = null;
  clearTimeout(state.savingsTimer);
  state.savingsTimer = 0;
  loadSavings();
  scheduleRender();
  connect();
}

async function start(token) {
  state.token = token;
  const { depots } = await api("/v1/depots");
  if (!depots.length) throw new Error("no depot to watch");
  state.depots = depots;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#logout").hidden = false;
  const select = $("#depot-select");
  select.replaceChildren(...depots.map((d) => {
    const o = el("option", d.name);
    o.value = d.id;
    return o;
  }));
  select.hidden = depots.length < 2;
  const saved = Number(sessionStorage.getItem(DEPOT_KEY));
  const depot = depots.find((d) => d.id === saved) ?? depots[0];
  select.value = depot.id;
  await openDepot(depot);
}

function showLogin(message) {
  disconnect();
  sessionStorage.removeItem(TOKEN_KEY);
  $("#login").hidden = false;
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#login-error").textContent = message ?? "";
  setLink("disconnected", false);
}

function init() {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("#token").value.trim();
    $("#token").value = "";
    start(token).catch((err) => showLogin(err instanceof AuthError ? "This token is not valid." : err.message));
  });
  $("#logout").addEventListener("click", () => showLogin());
  $("#depot-select").addEventListener("change", (ev) => {
    const depot = state.depots.find((d) => d.id === Number(ev.target.value));
    if (depot) openDepot(depot).catch((err) => setLink(err.message, false));
  });
  $("#timeline-close").addEventListener("click", () => {
    state.selectedStop = null;
    $("#timeline-box").hidden = true;
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) start(saved).catch((err) => showLogin(err instanceof AuthError ? "Please log in again." : err.message));
  else showLogin();
}

// For the browser tests and the latency measurement: read-only views of the
// state and a way to cut the socket as a network drop would.
window.__dashboard = {
  lastSeq: () => state.lastSeq,
  live: () => state.live,
  latencies: () => state.latencies.slice(),
  received: () => state.received.slice(),
  pageDelays: () => state.pageDelays.slice(),
  dropSocket: () => state.ws?.close(),
};

init();
