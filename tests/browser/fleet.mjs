// Opens one fleet instance's dashboard in headless Chromium and checks its Fleet card: every
// node named on the command line is listed, alive and converged, and the card says the instance
// is connected to etcd. Saves a screenshot.
//
//   node fleet.mjs <admin-url> <out-dir> <node>...
//
// Run by tests/tests/fleet.rs; exits non-zero with a message on any failure.
import { join } from "node:path";
import { withPage } from "./page.mjs";

const [adminUrl, outDir, ...nodes] = process.argv.slice(2);
if (!adminUrl || !outDir || nodes.length === 0) {
  console.error("usage: node fleet.mjs <admin-url> <out-dir> <node>...");
  process.exit(2);
}
const log = (msg) => console.log(`[fleet.mjs] ${msg}`);

await withPage(outDir, "fleet.mjs", async (page, problems) => {
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
});
