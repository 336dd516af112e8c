// Drives the safe-rollout controls of the Switchyard dashboard in headless Chromium: starts a
// mirror to the staged colour at 25%, sees the card say so, starts a one-minute ramp, sees the
// card show it, and saves a screenshot.
//
//   node rollout.mjs <admin-url> <out-dir>
//
// Run by tests/tests/dashboard.rs; exits non-zero with a message on any failure.
import { join } from "node:path";
import { withPage } from "./page.mjs";

const [adminUrl, outDir] = process.argv.slice(2);
if (!adminUrl || !outDir) {
  console.error("usage: node rollout.mjs <admin-url> <out-dir>");
  process.exit(2);
}
const log = (msg) => console.log(`[rollout.mjs] ${msg}`);

await withPage(outDir, "rollout.mjs", async (page) => {
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
});
