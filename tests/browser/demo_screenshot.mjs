// The README's picture: the dashboard during `callahead-server demo`. Runs
// the demo binary, reads the dashboard address and supervisor token it
// prints, logs in with headless Chromium, and saves the page once the demo
// is well into its morning.
//
//   node demo_screenshot.mjs [--couriers 100] [--after-events 3000] [--out ../../docs/dashboard.png]
//
// CALLAHEAD_SERVER_BIN picks the binary (default: the release build).

import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { REPO, WAIT_MS, launchBrowser } from "./lib/harness.mjs";

const { values: opts } = parseArgs({
  options: {
    couriers: { type: "string", default: "100" },
    "after-events": { type: "string", default: "3000" },
    out: { type: "string", default: join(REPO, "docs/dashboard.png") },
  },
});
const bin = process.env.CALLAHEAD_SERVER_BIN
  ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "release/callahead-server");

const demo = spawn(bin, ["demo", "--couriers", opts.couriers, "--quiet"], { stdio: ["ignore", "pipe", "inherit"] });
const watch = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: demo.stdout });
  lines.on("line", (line) => {
    // The token is in a file only we may read (mode 0600), not on screen.
    const m = line.match(/Watch it live: (\S+)\s+\(supervisor token in (\S+)\)/);
    if (m) resolve({ url: m[1], token: readFileSync(m[2], "utf8").trim() });
  });
  demo.on("exit", (code) => reject(new Error(`the demo exited (${code}) before printing its dashboard address`)));
});

const browser = await launchBrowser();
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  await page.goto(watch.url);
  await page.fill("#token", watch.token);
  await page.click("#login-form button");
  await page.waitForSelector("body[data-link=live]", { timeout: WAIT_MS });
  const after = Number(opts["after-events"]);
  await page.waitForFunction((n) => window.__dashboard.lastSeq() >= n, after, { timeout: 5 * 60_000 });
  await page.screenshot({ path: opts.out });
  console.log(`saved ${opts.out} at event ${await page.evaluate(() => window.__dashboard.lastSeq())}`);
} finally {
  await browser.close();
  demo.kill();
}
