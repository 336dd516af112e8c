// Drives the safe-rollout controls of the Switchyard dashboard in headless Chromium (Debian's
// /usr/bin/chromium, through playwright-core): starts a mirror to the staged colour at 25%, sees
// the card say so, starts a one-minute ramp, sees the card show it, and saves a screenshot.
//
//   node rollout.mjs <admin-url> <out-dir>
//
// Run by tests/tests/dashboard.rs; exits non-zero with a message on any failure.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [adminUrl, outDir] = process.argv.slice(2);
if (!adminUrl || !outDir) {
  console.error("usage: node rollout.mjs <admin-url> <out-dir>");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
const log = (msg) => console.log(`[rollout.mjs] ${msg}`);

let context;
let failed = false;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${adminUrl}/`, { waitUntil: "domcontentloaded" });
  const line = page.locator('[data-testid="rollout-app"]');

  await page.locator('[data-testid="mirror-app"]', { hasText: "Mirror to blue" }).click();
  await page.locator('[data-testid="confirm-input"]').fill("25");
  await page.locator('[data-testid="confirm-ok"]').click();
  await line.filter({ hasText: "mirroring 25% of GET, HEAD to blue" }).waitFor();
  log(`after the mirror: ${await line.innerText()}`);

  await page.locator('[data-testid="ramp-app"]', { hasText: "Ramp to blue" }).click();
  await page.locator('[data-testid="confirm-input"]').fill("60s");
  await page.locator('[data-testid="confirm-ok"]').click();
  await line.filter({ hasText: "ramping green → blue" }).waitFor();
  log(`after the ramp: ${await line.innerText()}`);
  await page.locator('[data-testid="mirror-app"]', { hasText: "Stop mirror" }).waitFor();
  await page.screenshot({ path: join(outDir, "dashboard-rollout.png"), fullPage: true });
  if (problems.length) {
    console.error(problems.join("\n"));
    failed = true;
  }
} catch (e) {
  console.error(`[rollout.mjs] ${e.stack || e}`);
  failed = true;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
