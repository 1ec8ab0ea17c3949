// runreport.mjs - opens a `homura run -o report.html` page in Debian's
// chromium, offline (tests/integration/test_run.py): node runreport.mjs FILE
// Prints JSON: every request that was not the file itself, console and page
// errors, the page's tables (id, class, row count, header texts), the
// summary text, whether the memory chart drew, and for each table the
// values of one numeric column after one and after two clicks on its
// header (largest first, then smallest first).
import { chromium } from 'playwright-core';

const [file] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const out = { requests: [], errors: [] };
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: true });
  const page = await ctx.newPage();
  const url = 'file://' + file;
  page.on('request', (r) => { if (r.url() !== url) out.requests.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(m.text()); });
  page.on('pageerror', (e) => out.errors.push(String(e)));
  await page.goto(url);
  out.title = await page.title();
  out.summary = await page.$eval('#summary', (e) => e.textContent).catch(() => null);
  out.chart = await page.$$eval('#memchart polyline', (ps) => ps.map((p) => p.getAttribute('points').trim().split(/\s+/).length)).catch(() => []);
  out.tables = await page.$$eval('table', (ts) => ts.map((t) => ({
    id: t.id, cls: t.className, rows: t.tBodies[0].rows.length,
    headers: Array.from(t.tHead.rows[0].cells).map((c) => c.textContent),
  })));
  out.sorted = [];
  const n = out.tables.length;
  for (let i = 0; i < n; i++) {
    const t = out.tables[i];
    const col = t.headers.indexOf(t.headers.includes('Python %') ? 'Python %' : 'alloc MB');
    if (col < 0) continue;
    const vals = async () => page.$$eval('table', (ts, [i, col]) => Array.from(ts[i].tBodies[0].rows).map(
      (r) => parseFloat(r.cells[col].dataset.v)), [i, col]);
    const th = (await page.$$('table'))[i];
    const h = await th.$$('thead th');
    await h[col].click();
    const first = await vals();
    await h[col].click();
    const second = await vals();
    out.sorted.push({ table: i, column: t.headers[col], first, second });
  }
  out.text = await page.evaluate(() => document.body.innerText.length);
  await ctx.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
