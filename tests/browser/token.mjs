// token.mjs - the dashboard against a server with --read-token
// (tests/integration/test_dashboard.py): node token.mjs URL SERVICE TOKEN
// The page asks for the token on the first 401 (a prompt, answered here),
// then loads; prints what it drew and how many prompts it showed.
import { chromium } from 'playwright-core';

const [url, service, token] = process.argv.slice(2);
const out = { errors: [], prompts: 0 };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (e) => out.errors.push(String(e)));
  page.on('dialog', (d) => { out.prompts++; d.accept(token); });
  await page.goto(`${url}/?svc=${encodeURIComponent(service)}&from=now-1h`);
  await page.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.flame, null, { timeout: 15000 });
  out.flame = await page.evaluate(() => window.__homura.flame);
  // a reload in the same tab reuses the token (sessionStorage): no prompt
  const before = out.prompts;
  await page.reload();
  await page.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.flame, null, { timeout: 15000 });
  out.promptsOnReload = out.prompts - before;
  // a shared URL (service and type: its queries start together) in a new
  // tab asks once
  const shared = page.url();
  const p2 = await browser.newPage();
  let asked = 0;
  p2.on('dialog', (d) => { asked++; d.accept(token); });
  await p2.goto(shared);
  await p2.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.flame, null, { timeout: 15000 });
  out.promptsShared = asked;
  out.sharedTotal = await p2.evaluate(() => window.__homura.flame.total);
} catch (e) {
  out.errors.push('driver: ' + (e && e.stack || e));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
