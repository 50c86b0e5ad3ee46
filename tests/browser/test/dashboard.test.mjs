// The supervisor dashboard in headless Chromium against the real server
// binary running the simulator: calls progress live on the page, a dropped
// websocket resumes with no missing row, the drill-down shows every attempt,
// the answer rate by hour matches the log, and another depot never shows up.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Server, seedDepot, requestCall, launchBrowser, openDashboard, artifactsDir, ADMIN, WAIT_MS,
} from "../lib/harness.mjs";

const NO_ANSWER_PHONE = "+447000009999";
let server, browser, north, south;

before(async () => {
  // Every customer picks up after 5 s and presses a key 10 s later (domain
  // time; the clock runs 10x), except the one who never answers.
  server = await Server.start([
    "--time-scale", "10", "--sim-seed", "11", "--sim-answer-rate", "1", "--sim-fail-rate", "0",
    "--sim-ring-secs", "5", "5", "--sim-talk-secs", "10", "10", "--sim-no-answer", NO_ANSWER_PHONE,
  ]);
  north = await seedDepot(server, "North", 2, 6, {
    phone: (c, s) => (c === 0 && s === 5 ? NO_ANSWER_PHONE : `+4470${String(c).padStart(4, "0")}${String(s).padStart(4, "0")}`),
  });
  south = await seedDepot(server, "South", 1, 3);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The courier's app: a websocket held open from a page of the server's origin. */
async function courierApp(courier) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  await page.evaluate(async (token) => {
    await new Promise((resolve, reject) => {
      window.app = new WebSocket(`ws://${location.host}/v1/ws?access_token=${encodeURIComponent(token)}`);
      window.app.onopen = resolve;
      window.app.onerror = reject;
    });
  }, courier.token);
  return context;
}

const cells = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
const feedSeqs = (page) => page.$$eval("#feed tbody tr", (rows) => rows.map((r) => Number(r.dataset.seq)));

/** North's attempts by UTC hour of placing, from the server's event log. */
async function answersByHourFromLog() {
  const answered = { completed: true, no_input: true, hung_up_early: false, no_answer: false, busy: false, voicemail: false };
  const placed = new Map();
  const out = new Map();
  for (const e of await server.events(north.supervisor, 0)) {
    const key = `${e.call?.id}/${e.kind.attempt}`;
    if (e.kind.type === "attempt_placed") placed.set(key, e.at);
    if (e.kind.type !== "attempt_ended" || !(e.kind.result in answered)) continue;
    const hour = new Date(placed.get(key)).getUTCHours();
    const h = out.get(hour) ?? { attempts: 0, answered: 0 };
    h.attempts += 1;
    h.answered += answered[e.kind.result] ? 1 : 0;
    out.set(hour, h);
  }
  return out;
}

async function assertNoOtherDepot(page) {
  const names = await cells(page, "#couriers tbody tr td:first-child");
  assert.deepEqual(names.sort(), north.couriers.map((c) => c.name).sort());
  const feedCouriers = new Set(await cells(page, "#feed tbody tr td:nth-child(3)"));
  for (const c of south.couriers) assert.ok(!feedCouriers.has(c.name), `${c.name} is in the feed`);
  const body = await page.textContent("body");
  assert.ok(!body.includes("South"), "nothing of the South depot on the page");
}

test("a supervisor watches a courier's calls progress live, drills down, survives a drop", async () => {
  const { context, page, problems } = await openDashboard(browser, server, north.supervisor);
  const start = await page.evaluate(() => window.__dashboard.lastSeq());
  const ivan = north.couriers[0];
  const row = `#couriers tr[data-courier="${ivan.id}"]`;
  assert.equal(await page.textContent(`${row} td:nth-child(2)`), "offline");

  // The courier's app connects: the row says so, live.
  const app = await courierApp(ivan);
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[1].textContent === "online", row, { timeout: WAIT_MS });

  // Three taps: the row shows them active, then confirmed, as it happens.
  const calls = [];
  for (const stop of ivan.stops.slice(0, 3)) calls.push(await requestCall(server, ivan, stop.id));
  // Meanwhile the other depot calls too: it must never show up.
  for (const stop of south.couriers[0].stops) await requestCall(server, south.couriers[0], stop.id);
  await page.waitForFunction((sel) => /^[1-5]\/5$/.test(document.querySelector(sel)?.children[2].textContent) &&
    document.querySelector(sel).children[2].textContent !== "0/5", row, { timeout: WAIT_MS });
  const progress = [];
  for (const kind of ["ringing", "answered", "key_pressed", "call_finished"]) {
    await page.waitForSelector(`#feed tr[data-kind=${kind}]`, { timeout: WAIT_MS });
    progress.push(kind);
  }
  assert.deepEqual(progress, ["ringing", "answered", "key_pressed", "call_finished"]);
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.active === "0", row, { timeout: WAIT_MS });
  await page.waitForFunction(() => Number(document.querySelector("#rates .rate[data-rate=reached]").dataset.finished) >= 3,
    null, { timeout: WAIT_MS });

  // A forced drop: the page says it is disconnected; calls go on meanwhile;
  // it resumes from its last seq.
  await page.evaluate(() => window.__dashboard.dropSocket());
  await page.waitForSelector("body[data-link=down]", { timeout: WAIT_MS });
  const dropped = await page.evaluate(() => window.__dashboard.lastSeq());
  assert.match(await page.textContent("#link"), /disconnected/);
  const more = [];
  for (const stop of ivan.stops.slice(3, 6)) more.push(await requestCall(server, ivan, stop.id));
  for (const stop of north.couriers[1].stops.slice(0, 2)) more.push(await requestCall(server, north.couriers[1], stop.id));
  await page.waitForSelector("body[data-link=live]", { timeout: WAIT_MS });
  // Wait until every call has finished (the no-answer one takes 3 attempts).
  const noAnswerStop = ivan.stops[5];
  await page.waitForSelector(`#feed tr[data-stop="${noAnswerStop.id}"][data-kind=call_finished]`, { timeout: WAIT_MS });
  await page.waitForFunction(() => [...document.querySelectorAll("#couriers tbody tr")].every((r) => r.dataset.active === "0"), null, { timeout: WAIT_MS });

  // No missing row, no duplicate: the feed is exactly the server's log for
  // this depot since the page opened.
  const pageSeq = await page.evaluate(() => window.__dashboard.lastSeq());
  assert.ok(pageSeq > dropped, "events after the drop arrived");
  const logged = (await server.events(north.supervisor, start)).filter((e) => e.seq <= pageSeq).map((e) => e.seq);
  const rows = await feedSeqs(page);
  assert.equal(new Set(rows).size, rows.length, "no duplicate rows");
  assert.deepEqual([...rows].sort((a, b) => a - b), logged);
  assert.ok(logged.some((s) => s > dropped), "rows from after the drop");

  // The rates on the page agree with the server's totals.
  const dash = await server.request("GET", `/v1/depots/${north.depot.id}/dashboard`, north.supervisor);
  await page.waitForFunction((n) => document.querySelector("#rates .rate[data-rate=reached]").dataset.finished === String(n),
    dash.totals.finished, { timeout: WAIT_MS });
  for (const [tile, key] of [["reached", "reached"], ["confirmed", "confirmed"], ["no_answer", "no_answer"]]) {
    assert.equal(Number(await page.getAttribute(`#rates .rate[data-rate=${tile}]`, "data-count")), dash.totals[key], tile);
  }
  assert.equal(dash.totals.no_answer, 1);
  assert.ok(await page.$$eval("#chart rect", (r) => r.length) > 0, "the chart has bars");

  // What it saved: the tiles and the courier's row show the daily report's
  // figures once the last call has finished.
  const report = await server.request("GET", `/v1/depots/${north.depot.id}/reports/daily?date=${dash.date}`, north.supervisor);
  const saved = report.savings;
  assert.ok(saved.attempts >= 10 && saved.confirmed > 0, JSON.stringify(saved));
  await page.waitForFunction((n) => document.querySelector("#savings .saving[data-saving=courier_minutes_saved]").dataset.value === String(n),
    saved.courier_minutes_saved, { timeout: WAIT_MS });
  for (const key of ["failed_visits_avoided", "confirmed_before_arrival"]) {
    assert.equal(await page.getAttribute(`#savings .saving[data-saving=${key}]`, "data-value"), String(saved[key]), key);
  }
  assert.equal(await page.getAttribute("#savings .saving[data-saving=cost_per_confirmed]", "data-value"),
    String(saved.cost_per_confirmed_minor ?? ""));
  // The courier's app reports where it is: the map shows the courier there.
  await server.request("PUT", "/v1/me/position", ivan.token, { lat: 55.7512, lon: 37.6184, at: new Date().toISOString() });
  await page.waitForSelector(`#map circle.courier[data-courier="${ivan.id}"]`, { timeout: WAIT_MS });
  const ivanSaved = report.savings_by_courier.find((c) => c.courier_id === ivan.id);
  assert.equal(await page.textContent(`${row} td:nth-child(13)`), String(ivanSaved.courier_minutes_saved));
  assert.equal(await page.textContent(`${row} td:nth-child(12)`), String(ivanSaved.failed_visits_avoided));
  // The answer rate by hour is the log's, hour by hour: each attempt in the
  // hour it was placed (the customers' clock: UTC here), answered when the
  // customer heard the message; the one who never answers is 3 misses.
  const expected = await answersByHourFromLog();
  const total = [...expected.values()].reduce((n, h) => n + h.attempts, 0);
  assert.equal(total, 10, "5 + 2 answered at once, 3 tries of the one who never answers");
  await page.waitForFunction((n) => [...document.querySelectorAll("#answers tbody tr")]
    .reduce((sum, r) => sum + Number(r.dataset.attempts), 0) === n, total, { timeout: WAIT_MS });
  const shown = await page.$$eval("#answers tbody tr", (rows) => rows.map((r) => ({
    hour: Number(r.dataset.hour), attempts: Number(r.dataset.attempts), answered: Number(r.dataset.answered),
    rate: r.children[3].textContent,
  })));
  assert.deepEqual(new Map(shown.map((h) => [h.hour, { attempts: h.attempts, answered: h.answered }])), expected);
  for (const h of shown) assert.equal(h.rate, `${Math.round((100 * h.answered) / h.attempts)}%`);
  const missed = shown.reduce((n, h) => n + h.attempts - h.answered, 0);
  assert.equal(missed, 3, "the customer who never answers, three times");
  assert.equal(await page.isHidden("#answers-empty"), true);

  // Drill-down: the courier's stops, then the customer who never answered.
  await page.click(row);
  await page.click(`#stops tr[data-stop="${noAnswerStop.id}"]`);
  await page.waitForSelector(`#timeline div[data-stop="${noAnswerStop.id}"] li.attempt`, { timeout: WAIT_MS });
  const attempts = await cells(page, "#timeline li.attempt > div");
  assert.equal(attempts.length, 3, attempts.join("\n"));
  attempts.forEach((a, i) => assert.match(a, new RegExp(`^Attempt ${i + 1}: placed .*no answer`)));
  const scripts = await cells(page, "#timeline blockquote.script");
  assert.equal(scripts.length, 3);
  assert.ok(scripts.every((s) => s.includes(noAnswerStop.customer_name)), scripts[0]);
  assert.match(await page.textContent("#timeline h4"), /no answer \(3\/3 attempts\)/);

  await assertNoOtherDepot(page);
  await page.screenshot({ path: join(artifactsDir(), "dashboard-test.png"), fullPage: true });
  assert.deepEqual(problems, [], "no script error and no CSP violation");
  await app.close();
  await context.close();
});

test("the app going offline shows on the row, and the token never leaves the page", async () => {
  const { context, page, problems } = await openDashboard(browser, server, north.supervisor);
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const courier = north.couriers[1];
  const row = `#couriers tr[data-courier="${courier.id}"]`;
  const app = await courierApp(courier);
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[1].textContent === "online", row, { timeout: WAIT_MS });
  await app.close();
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[1].textContent === "offline", row, { timeout: WAIT_MS });
  await page.reload();
  await page.waitForSelector("body[data-link=live]", { timeout: WAIT_MS });
  const stored = await page.evaluate(() => Object.keys(sessionStorage));
  assert.ok(stored.includes("callahead.token"), "kept in this tab's session only");
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  for (const url of requests) {
    if (!url.startsWith("ws")) assert.ok(!url.includes(north.supervisor), `token in ${url}`);
  }
  await assertNoOtherDepot(page);
  assert.deepEqual(problems, []);
  await context.close();
});

test("another depot's supervisor sees none of North; an admin can pick either depot", async () => {
  const { context, page } = await openDashboard(browser, server, south.supervisor);
  const names = await cells(page, "#couriers tbody tr td:first-child");
  assert.deepEqual(names, south.couriers.map((c) => c.name));
  assert.ok(!(await page.textContent("body")).includes("North"));
  assert.equal(await page.isHidden("#depot-select"), true);
  await context.close();

  const admin = await openDashboard(browser, server, ADMIN);
  const options = await cells(admin.page, "#depot-select option");
  assert.deepEqual(options, ["North", "South"]);
  await admin.page.selectOption("#depot-select", String(south.depot.id));
  await admin.page.waitForFunction((id) => document.querySelector(`#couriers tr[data-courier="${id}"]`), south.couriers[0].id, { timeout: WAIT_MS });
  await admin.context.close();

  const bad = await browser.newContext();
  const login = await bad.newPage();
  await login.goto(`${server.url}/dashboard`);
  await login.fill("#token", "cah_sup_not-a-real-token");
  await login.click("#login-form button");
  await login.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
  assert.match(await login.textContent("#login-error"), /not valid/);
  await bad.close();
});
