// Opens one fleet instance's dashboard in headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core) and checks its Fleet card: every node named on the command line is listed,
// alive and converged, and the card says the instance is connected to etcd. Saves a screenshot.
//
//   node fleet.mjs <admin-url> <out-dir> <node>...
//
// Run by tests/tests/fleet.rs; exits non-zero with a message on any failure.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [adminUrl, outDir, ...nodes] = process.argv.slice(2);
if (!adminUrl || !outDir || nodes.length === 0) {
  console.error("usage: node fleet.mjs <admin-url> <out-dir> <node>...");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
const log = (msg) => console.log(`[fleet.mjs] ${msg}`);

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
  await page.locator("#fleet").waitFor({ state: "visible" });
  for (const node of nodes) {
    const row = page.locator(`[data-testid="fleet-${node}"]`);
    await row.waitFor();
    // Columns: node, applied revision, converged, alive, reported, error.
    await row.locator("td").nth(2).filter({ hasText: "yes" }).waitFor();
    await row.locator("td").nth(3).filter({ hasText: "yes" }).waitFor();
    log(`node ${node}: alive and converged (${(await row.innerText()).replace(/\s+/g, " ")})`);
  }
  const note = await page.locator("#fleet-note").innerText();
  if (!note.includes("connected since")) problems.push(`the fleet card does not say connected: ${note}`);
  log(`fleet card: ${note}`);
  await page.screenshot({ path: join(outDir, "dashboard-fleet.png"), fullPage: true });
  if (problems.length) {
    console.error(problems.join("\n"));
    failed = true;
  }
} catch (e) {
  console.error(`[fleet.mjs] ${e.stack || e}`);
  failed = true;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
