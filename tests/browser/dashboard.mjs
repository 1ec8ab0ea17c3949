// dashboard.mjs - drives Debian's chromium (playwright-core) through the
// dashboard of a running `homura server`, for tests/integration/test_dashboard.py:
//   node dashboard.mjs URL SERVICE OUTDIR FUNC SEARCH BASE_LABEL COMP_LABEL
// It opens the page at 1280x720, waits for the first load, clicks into the
// frame FUNC, hovers it, opens its source, searches SEARCH, moves with the
// keys, sorts the top table, opens FUNC's
// sandwich, compares BASE_LABEL with COMP_LABEL, reloads a shared URL,
// switches theme and downloads the collapsed export; it prints one JSON
// object with what the page exposed at each step (window.__homura) and
// leaves screenshots in OUTDIR. The test checks the numbers against the API.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const [url, service, outdir, func, search, baseLabel, compLabel, evil] = process.argv.slice(2);
fs.mkdirSync(outdir, { recursive: true });
const out = { errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => out.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(m.text()); });
  const H = () => page.evaluate(() => JSON.parse(JSON.stringify({ ...window.__homura, where: undefined })));
  const loaded = async (n) => page.waitForFunction((k) => window.__homura && window.__homura.ready && window.__homura.loads >= k, n, { timeout: 15000 });
  const shot = (name) => page.screenshot({ path: path.join(outdir, name + '.png') });

  // 1. first load
  const t0 = Date.now();
  await page.goto(`${url}/?svc=${encodeURIComponent(service)}&from=now-1h`);
  await loaded(1);
  out.firstLoadMs = Date.now() - t0;
  out.paint = await page.evaluate(() => performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]));
  out.load = await H();
  out.title = await page.title();
  await shot('1-flamegraph');

  // 2. hover then click into FUNC
  const at = await page.evaluate((f) => window.__homura.where(f), func);
  out.where = at;
  if (at) {
    await page.mouse.move(at.x, at.y);
    await page.waitForSelector('#tip:not([hidden])');
    out.tooltip = await page.textContent('#tip');
    await shot('2-tooltip');
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction((f) => window.__homura.flame && window.__homura.flame.focus.startsWith(f + ' '), func);
    out.focus = await H();
    out.crumbs = await page.textContent('#crumbs');
    out.focusURL = page.url();
    await shot('3-focused');
    // the source view of the focused function (its file is readable here)
    await page.click('#crumbs a[data-src]');
    await page.waitForFunction(() => window.__homura.source && (window.__homura.source.lines || window.__homura.source.error));
    out.source = await H();
    await shot('3b-source');
    await page.keyboard.press('Escape');
  }

  // 3. search
  await page.fill('#search', search);
  await page.waitForFunction(() => window.__homura.search);
  await page.waitForFunction((q) => window.__homura.state.q === q, search);
  out.search = await H();
  out.searchInfo = await page.textContent('#searchinfo');
  await shot('4-search');

  // 4. the shared URL restores focus and search
  const shared = page.url();
  const p2 = await ctx.newPage();
  await p2.goto(shared);
  await p2.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.search);
  out.restored = await p2.evaluate(() => JSON.parse(JSON.stringify({ ...window.__homura, where: undefined })));
  await p2.close();

  // 5. keyboard: Escape leaves the focus, then clears the search
  await page.focus('#flame');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  out.afterEscape = await H();
  // arrows move the selection (icicle: down is the first child), Enter focuses
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  out.keyboard = await H();
  await page.keyboard.press('Escape');

  // 6. top table, sorted by total
  await page.click('#tabs [data-tab=table]');
  await page.waitForSelector('#table tbody tr');
  await page.click('#table th[data-k=total]');
  out.table = await H();
  out.tableFirstRow = await page.textContent('#table tbody tr');
  await shot('5-table');

  // 7. sandwich of the first frame named FUNC
  await page.click('#tabs [data-tab=flame]');
  const at2 = await page.evaluate((f) => window.__homura.where(f), func);
  await page.mouse.move(at2.x, at2.y);
  await page.keyboard.press('s');
  await page.waitForFunction(() => window.__homura.sandwich);
  out.sandwich = await H();
  await shot('6-sandwich');

  // 7b. bottom-up
  await page.goto(`${url}/?svc=${encodeURIComponent(service)}&from=now-1h&mode=bottomup`);
  await loaded(1);
  out.bottomup = await H();
  out.bottomupRoots = await page.evaluate(() => window.__homura.roots());
  await shot('6b-bottom-up');

  // 8. comparison of two label values
  const cmp = `${url}/?svc=${encodeURIComponent(service)}&from=now-1h&tab=compare&bl=${encodeURIComponent(baseLabel)}&cl=${encodeURIComponent(compLabel)}`;
  await page.goto(cmp);
  await page.waitForFunction(() => window.__homura && window.__homura.diff, null, { timeout: 15000 });
  out.diff = await H();
  out.cmpInfo = await page.textContent('#cmpinfo');
  await shot('7-compare');
  await page.click('#side');
  await page.waitForFunction(() => window.__homura.side);
  out.side = await H();
  await shot('7b-side-by-side');

  // 9. dark theme, back on the flame graph; collapsed export
  await page.goto(`${url}/?svc=${encodeURIComponent(service)}&from=now-1h`);
  await loaded(1);
  await page.keyboard.press('t');
  out.theme = await page.evaluate(() => document.documentElement.dataset.theme);
  await shot('8-dark');
  // brush: drag over the right half of the chart
  const loads = await page.evaluate(() => window.__homura.loads);
  const box = await page.locator('#chart .u-over').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width - 1, box.y + box.height / 2, { steps: 8 });
  await page.mouse.up();
  await loaded(loads + 1);
  out.brush = await H();
  await shot('9-brushed');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('.export [data-fmt=collapsed]')]);
  const file = path.join(outdir, 'export.collapsed.txt');
  await dl.saveAs(file);
  out.collapsed = fs.readFileSync(file, 'utf8');
  const [dl2] = await Promise.all([page.waitForEvent('download'), page.click('.export [data-fmt=svg]')]);
  await dl2.saveAs(path.join(outdir, 'flamegraph.svg'));
  out.svg = fs.readFileSync(path.join(outdir, 'flamegraph.svg'), 'utf8').length;

  // 10. hostile names (service EVIL) are shown as text, never run as HTML
  if (evil) {
    await page.goto(`${url}/?svc=${encodeURIComponent(evil)}&from=now-1h&tab=both`);
    await loaded(1);
    await page.waitForSelector('#table tbody tr');
    const w = await page.evaluate(() => window.__homura.where(window.__homura.flame && document.querySelector('#table td.fn').textContent));
    if (w) { await page.mouse.move(w.x, w.y); await page.mouse.click(w.x, w.y); }
    out.evil = await page.evaluate(() => ({ pwned: window.__pwned || 0, cells: [...document.querySelectorAll('#table td.fn')].map((e) => e.textContent),
      crumbs: document.querySelector('#crumbs').textContent, imgs: document.querySelectorAll('img').length }));
    await shot('10-hostile-names');
  }
} catch (e) {
  out.errors.push('driver: ' + (e && e.stack || e));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
