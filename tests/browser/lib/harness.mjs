// The real `callahead-server serve` binary as a child process on a free
// loopback port, its admin API to seed depots, and headless Chromium.

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../../..");
export const ADMIN = "browser-tests-admin-token-0123456789";
export const WAIT_MS = 30_000;

/** Where screenshots go: $CALLAHEAD_ARTIFACTS or tests/browser/artifacts. */
export function artifactsDir() {
  const dir = process.env.CALLAHEAD_ARTIFACTS ?? join(REPO, "tests/browser/artifacts");
  mkdirSync(dir, { recursive: true });
  return dir;
}

function serverBinary() {
  const bin = process.env.CALLAHEAD_SERVER_BIN
    ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug/callahead-server");
  return bin;
}

export class Server {
  /** Starts the binary; `args` are extra `serve` flags (time scale, simulator). */
  static async start(args = []) {
    const dir = mkdtempSync(join(tmpdir(), "callahead-browser-"));
    const log = join(dir, "server.log");
    const logFd = openSync(log, "a");
    const child = spawn(
      serverBinary(),
      ["serve", "--listen", "127.0.0.1:0", "--db", join(dir, "server.db"), ...args],
      { env: { ...process.env, CALLAHEAD_ADMIN_TOKEN: ADMIN, RUST_LOG: process.env.RUST_LOG ?? "warn" },
        stdio: ["ignore", "pipe", logFd] },
    );
    const url = await new Promise((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start:\n${readFileSync(log, "utf8")}`)), WAIT_MS);
      child.on("error", (e) => { clearTimeout(timer); reject(e); });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code}):\n${readFileSync(log, "utf8")}`));
      });
      const prefix = "callahead-server listening on ";
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (line.startsWith(prefix)) {
          clearTimeout(timer);
          resolveUrl(line.slice(prefix.length).trim());
        }
      });
    });
    child.removeAllListeners("exit");
    return new Server(child, dir, url);
  }

  constructor(child, dir, url) {
    this.child = child;
    this.dir = dir;
    this.url = url;
  }

  async request(method, path, token, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const value = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return value;
  }

  /** Every event in `token`'s scope after `after`, as the server logged it. */
  async events(token, after) {
    const out = [];
    for (;;) {
      const page = await this.request("GET", `/v1/events?after=${after}&limit=1000`, token);
      out.push(...page.events);
      if (page.events.length < 1000) return out;
      after = page.events[page.events.length - 1].seq;
    }
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (this.child.exitCode === null) this.child.kill("SIGKILL");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const ALL_DAY = { from: "00:00", to: "23:59" };

/**
 * A depot with `couriers` couriers of `stops` stops each, a supervisor and an
 * integrator key; every window opens within the hour (server time). The
 * depot runs on UTC so "today" is the same date for the routes and the page.
 */
export async function seedDepot(server, name, couriers, stops, { phone = (c, s) => `+4470${String(c).padStart(4, "0")}${String(s).padStart(4, "0")}`, policy = {} } = {}) {
  const depot = await server.request("POST", "/v1/depots", ADMIN, {
    name,
    time_zone: "UTC",
    policy: {
      max_attempts: 3, retry_spacing_secs: 10, ring_timeout_secs: 10,
      // The clock runs faster than real time and CI may run at night.
      calling_hours: { weekdays: ALL_DAY, weekends: ALL_DAY }, stop_at_window_start: false,
      ...policy,
    },
  });
  // A British depot: its customers' numbers are +44 (the default allows +7 only).
  await server.request("PUT", `/v1/depots/${depot.id}/send-limits`, ADMIN, {
    sms_per_day: 2000, calls_per_day: 5000, allowed_destinations: ["+44"],
  });
  const supervisor = await server.request("POST", `/v1/depots/${depot.id}/supervisors`, ADMIN, { name: `${name} dispatcher` });
  const integrator = await server.request("POST", `/v1/depots/${depot.id}/integrator-keys`, ADMIN, { name: "crm" });
  const now = Date.now();
  const date = new Date(now).toISOString().slice(0, 10);
  const out = { depot, supervisor: supervisor.token, couriers: [], date };
  for (let c = 0; c < couriers; c++) {
    const created = await server.request("POST", `/v1/depots/${depot.id}/couriers`, ADMIN, {
      name: `${name} courier ${c + 1}`, phone: `+4479${String(depot.id).padStart(3, "0")}${String(c).padStart(5, "0")}`,
    });
    const route = await server.request("PUT", `/v1/couriers/${created.courier.id}/routes/${date}`, integrator.token, {
      stops: Array.from({ length: stops }, (_, s) => ({
        external_id: `${name}-${c}-${s}`,
        customer_name: `Customer ${c + 1}.${s + 1}`,
        phone: phone(c, s),
        time_zone: "UTC",
        address: `${s + 1} High Street`,
        window_start: new Date(now + (20 + 10 * s) * 60_000).toISOString(),
        window_end: new Date(now + (80 + 10 * s) * 60_000).toISOString(),
        order_numbers: [`${name.slice(0, 1)}-${c}-${s}`],
      })),
    });
    out.couriers.push({ ...created.courier, token: created.token, stops: route.stops.map((s) => s.stop) });
  }
  return out;
}

let keys = 0;
/** The courier taps "call" on a stop. */
export function requestCall(server, courier, stopId) {
  keys += 1;
  return server.request("POST", "/v1/calls", courier.token, {
    stop_id: stopId, idempotency_key: `browser-${process.pid}-${keys}-${stopId}`,
  });
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Opens the dashboard and logs in with `token`; resolves once it is live. */
export async function openDashboard(browser, server, token, viewport = { width: 1400, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  await page.goto(`${server.url}/dashboard`);
  await page.fill("#token", token);
  await page.click("#login-form button");
  await page.waitForSelector("body[data-link=live]", { timeout: WAIT_MS });
  return { context, page, problems };
}
