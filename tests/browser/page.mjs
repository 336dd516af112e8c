// Headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) through playwright-core, for the
// dashboard scripts: `withPage(outDir, async (page, problems) => { ... })` opens one page with the
// flags that keep Chromium off the network, collects page errors into `problems`, closes
// everything afterwards, and exits the process with 1 when the callback threw or a problem was
// collected, else 0.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export async function withPage(outDir, name, body) {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  mkdirSync(outDir, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
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
    await body(page, problems);
    if (problems.length) {
      console.error(problems.join("\n"));
      failed = true;
    }
  } catch (e) {
    console.error(`[${name}] ${e.stack || e}`);
    failed = true;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}
