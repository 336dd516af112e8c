// Drives the Switchyard dashboard in headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core: opens the page, checks that green is live, flips to blue through the in-page
// confirmation, waits until the page shows blue (and offers "Rollback to green", not a second
// button to the same place), splits 90/10 and checks that only blue says ACTIVE, ends the split,
// then prints "make green unhealthy" and waits for the page's "staged green DOWN" state. It saves
// a screenshot of each step.
//
//   node flip.mjs <admin-url> <out-dir> [<admin-url-without-token>]
//
// With the third argument, it first opens that proxy's dashboard with every API answer held
// back for 5 s, and checks that the page shows the live colour anyway (from the state the page
// came with), before any poll could have answered.
//
// With SWITCHYARD_ADMIN_TOKEN set, the page must first ask for the token (the admin API
// answers 401 without it); the script types it into the page's token dialog.
// Run by tests/tests/dashboard.rs; exits non-zero with a message on any failure.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [adminUrl, outDir, openUrl] = process.argv.slice(2);
if (!adminUrl || !outDir) {
  console.error("usage: node flip.mjs <admin-url> <out-dir>");
  process.exit(2);
}
const token = process.env.SWITCHYARD_ADMIN_TOKEN || "";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 20_000;

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
const log = (msg) => console.log(`[flip.mjs] ${msg}`);

let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    timeout: 60_000,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(adminUrl) && !(openUrl && r.url().startsWith(openUrl))) {
      problems.push(`request to another origin: ${r.url()}`);
    }
  });

  if (openUrl) {
    log(`opening ${openUrl}/ with the API held back`);
    const held = /\/(status|stats|history)(\?|$)/;
    await page.route((url) => held.test(url.pathname), async (route) => {
      await new Promise((r) => setTimeout(r, 5000));
      await route.continue().catch(() => {});
    });
    const started = Date.now();
    await page.goto(`${openUrl}/`, { waitUntil: "domcontentloaded" });
    await page.locator('[data-testid="live-app"]', { hasText: "green live" }).waitFor({ timeout: 3000 });
    await page.locator('[data-testid="pool-app-green"] .badge', { hasText: "active" }).waitFor({ timeout: 1000 });
    const ms = Date.now() - started;
    await page.screenshot({ path: join(outDir, "dashboard-first-paint.png"), fullPage: true });
    log(`the first state was drawn ${ms} ms after navigation, with every API answer still held`);
    await page.unrouteAll({ behavior: "ignoreErrors" });
  }

  log(`opening ${adminUrl}/`);
  await page.goto(`${adminUrl}/`, { waitUntil: "domcontentloaded" });

  if (token) {
    log("waiting for the token prompt");
    await page.locator("#token-input").waitFor({ state: "visible" });
    await page.screenshot({ path: join(outDir, "dashboard-token-prompt.png") });
    await page.fill("#token-input", token);
    await page.click("#token-ok");
  }

  const live = page.locator('[data-testid="live-app"]');
  log("waiting for green to be live");
  await live.filter({ hasText: "green live" }).waitFor();
  // Let a few polls draw the chart and fill the history before acting.
  await page.waitForFunction(() => document.querySelectorAll("#history tr").length > 0 || document.querySelector("#history-empty:not([hidden])"));
  await page.waitForTimeout(2500);
  await page.screenshot({ path: join(outDir, "dashboard-before-flip.png"), fullPage: true });

  log("clicking Flip");
  const flip = page.locator('[data-testid="flip-app"]');
  await flip.filter({ hasText: "Flip to blue" }).click();
  const dialog = page.locator("#confirm");
  await dialog.waitFor({ state: "visible" });
  await page.screenshot({ path: join(outDir, "dashboard-confirm.png") });
  log("confirming");
  await page.click('[data-testid="confirm-ok"]');

  log("waiting for blue to be live");
  await live.filter({ hasText: "blue live" }).waitFor();
  await page.locator("#history tr", { hasText: "dashboard" }).first().waitFor();
  await page.waitForTimeout(1500);
  const shot = join(outDir, "dashboard-after-flip.png");
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot: ${shot}`);

  log("checking that Rollback and Flip do not both lead to green");
  await page.locator('[data-testid="rollback-app"]', { hasText: "Rollback to green" }).waitFor();
  await flip.waitFor({ state: "hidden" });

  log("splitting 90/10 from the page");
  await page.click('[data-testid="split-app"]');
  await page.locator("#split").waitFor({ state: "visible" });
  await page.click("#split-ok");
  await dialog.waitFor({ state: "visible" });
  await page.click('[data-testid="confirm-ok"]');
  const blue = page.locator('[data-testid="pool-app-blue"] .badge');
  const green = page.locator('[data-testid="pool-app-green"] .badge');
  await blue.filter({ hasText: "active · 90%" }).waitFor();
  await green.filter({ hasText: "split · 10%" }).waitFor();
  const actives = await page.locator('.pool .badge', { hasText: /^active/ }).count();
  if (actives !== 1) throw new Error(`${actives} pools say ACTIVE during the split`);
  await page.waitForTimeout(2500);
  await page.screenshot({ path: join(outDir, "dashboard-split.png"), fullPage: true });

  log("ending the split");
  await page.locator("button", { hasText: "End split" }).click();
  await dialog.waitFor({ state: "visible" });
  await page.click('[data-testid="confirm-ok"]');
  await green.filter({ hasText: "staged" }).waitFor();

  // The test reads this line and fails green's health checks.
  log("ready: make green unhealthy");
  await page.locator('[data-testid="staged-down-app"]', { hasText: "staged green DOWN" }).waitFor();
  await page.locator('[data-testid="down-app-green"]').waitFor({ state: "visible" });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: join(outDir, "dashboard-staged-down.png"), fullPage: true });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(1200);
  await page.screenshot({ path: join(outDir, "dashboard-phone.png"), fullPage: true });

  if (problems.length) {
    throw new Error(`the page reported problems:\n${problems.join("\n")}`);
  }
  log("ok: the page flipped app from green to blue, split it, and showed green down");
} catch (e) {
  console.error(`[flip.mjs] FAILED: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
