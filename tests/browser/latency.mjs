// How responsive the dashboard stays with a busy depot: N couriers (100 by
// default) each keep 5 smart calls going through their whole route, against
// the real server binary and the simulator's realistic customers. The page
// records, for every event it shows, the time from the event's cause
// (`origin_wall_ms`) to the frame in which its rows were updated. Prints one
// JSON line with p50/p90/p99/max; with --screenshot PATH it also saves the
// top of the dashboard mid-run (from a second tab, so the measured tab is
// not paused).
//
//   node latency.mjs [--couriers 100] [--stops 10] [--time-scale 240] [--screenshot ../../docs/dashboard.png]

import { parseArgs } from "node:util";
import { Server, seedDepot, requestCall, launchBrowser, openDashboard, WAIT_MS } from "./lib/harness.mjs";

const { values: opts } = parseArgs({
  options: {
    couriers: { type: "string", default: "100" },
    stops: { type: "string", default: "10" },
    "time-scale": { type: "string", default: "240" },
    seed: { type: "string", default: "7" },
    screenshot: { type: "string" },
  },
});
const couriers = Number(opts.couriers);
const stops = Number(opts.stops);

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const summary = (s) => ({ p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = await Server.start(["--time-scale", opts["time-scale"], "--sim-seed", opts.seed]);
const browser = await launchBrowser();
try {
  // The depot's default spacing between attempts (15 min domain time).
  const depot = await seedDepot(server, "Depot 7", couriers, stops, { policy: { retry_spacing_secs: 900, ring_timeout_secs: 30 } });
  const watched = await openDashboard(browser, server, depot.supervisor, { width: 1400, height: 1000 });

  // Every courier's app is connected, as on a working morning.
  const apps = await browser.newContext();
  const appPage = await apps.newPage();
  await appPage.goto(`${server.url}/healthz`);
  await appPage.evaluate(async (tokens) => {
    window.apps = await Promise.all(tokens.map((t) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/v1/ws?access_token=${encodeURIComponent(t)}`);
      ws.onopen = () => resolve(ws);
      ws.onerror = reject;
    })));
  }, depot.couriers.map((c) => c.token));

  // Each courier taps 5 stops, then the next one whenever a call ends, like
  // the app's outbox (at most 5 smart calls at once). The driver follows the
  // server's event log for that, so it adds little load of its own.
  const byId = new Map(depot.couriers.map((c) => [c.id, { courier: c, next: 0 }]));
  const total = couriers * stops;
  const tap = async (entry) => {
    if (entry.next >= entry.courier.stops.length) return;
    const stop = entry.courier.stops[entry.next];
    entry.next += 1;
    await requestCall(server, entry.courier, stop.id);
  };
  let cursor = (await server.request("GET", "/v1/events?limit=1", depot.supervisor)).head_seq;
  await Promise.all([...byId.values()].map(async (e) => { for (let i = 0; i < 5; i++) await tap(e); }));
  let finished = 0;
  let shot = !opts.screenshot;
  const started = Date.now();
  while (finished < total) {
    const page = await server.request("GET", `/v1/events?after=${cursor}&limit=1000`, depot.supervisor);
    const taps = [];
    for (const e of page.events) {
      cursor = e.seq;
      if (e.kind.type === "call_finished" || e.kind.type === "call_cancelled") {
        finished += 1;
        taps.push(tap(byId.get(e.courier_id)));
      }
    }
    await Promise.all(taps);
    if (!shot && finished >= total * 0.25) {
      shot = true;
      const tab = await openDashboard(browser, server, depot.supervisor, { width: 1400, height: 1000 });
      await sleep(5000); // a few seconds of live feed into the new tab
      await tab.page.screenshot({ path: opts.screenshot, fullPage: false });
      await tab.context.close();
    }
    if (Date.now() - started > 15 * 60_000) throw new Error(`${finished} of ${total} calls finished after 15 min`);
    if (page.events.length < 1000) await sleep(250);
  }
  // The page has applied everything the server logged for the depot.
  const head = (await server.request("GET", "/v1/events?limit=1", depot.supervisor)).head_seq;
  await watched.page.waitForFunction((h) => window.__dashboard.lastSeq() >= h, head, { timeout: WAIT_MS });
  await sleep(200);
  const latencies = (await watched.page.evaluate(() => window.__dashboard.latencies())).sort((a, b) => a - b);
  const received = (await watched.page.evaluate(() => window.__dashboard.received())).sort((a, b) => a - b);
  const pageDelays = (await watched.page.evaluate(() => window.__dashboard.pageDelays())).sort((a, b) => a - b);
  const logged = (await server.events(depot.supervisor, 0)).length;
  console.log(JSON.stringify({
    couriers, calls: total, events_logged: logged, events_measured: latencies.length,
    run_secs: Math.round((Date.now() - started) / 1000),
    // Cause -> the rows were updated (what the supervisor sees), split into
    // cause -> the frame reached the page (server + network) and frame
    // received -> rows updated (the page's own share).
    row_update_ms: summary(latencies),
    socket_receive_ms: summary(received),
    page_ms: summary(pageDelays),
    page_errors: watched.problems,
  }));
  await apps.close();
} finally {
  await browser.close();
  await server.stop();
}
