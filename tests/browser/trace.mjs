// trace.mjs - the dashboard showing one trace (tests/integration/test_spans.py):
// node trace.mjs URL SERVICE TYPE TRACE_ID. Opens the page on the service,
// then types the trace id into the trace box as a user pastes it; prints the
// flame graph it drew for all samples and for the trace.
import { chromium } from 'playwright-core';

const [url, service, type, traceId] = process.argv.slice(2);
const out = { errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (e) => out.errors.push(String(e)));
  await page.goto(`${url}/?svc=${encodeURIComponent(service)}&type=${encodeURIComponent(type)}&from=now-1h`);
  await page.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.flame, null, { timeout: 20000 });
  out.all = await page.evaluate(() => window.__homura.flame);
  const loads = await page.evaluate(() => window.__homura.loads);
  await page.fill('#trace', traceId);
  await page.press('#trace', 'Enter');
  await page.waitForFunction((n) => window.__homura.loads > n, loads, { timeout: 20000 });
  out.trace = await page.evaluate(() => window.__homura.flame);
  out.url = page.url();
  out.state = await page.evaluate(() => window.__homura.state);
} catch (e) {
  out.errors.push('driver: ' + (e && e.stack || e));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
