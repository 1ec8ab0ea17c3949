// firstload.mjs - times the dashboard's first load in Debian's chromium
// (bench/bench_dashboard.sh): node firstload.mjs URL QUERY [RUNS]
// For each run, a fresh page opens URL/?QUERY at 1280x720 and reports the
// first contentful paint and the time until the chart, flame graph and top
// table are drawn (window.__homura.ready), the flame graph's size and the
// fastest of 20 redraws of it.
import { chromium } from 'playwright-core';

const [url, query, runs = '5'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const res = [];
try {
  for (let r = 0; r < +runs; r++) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${url}/?${query}`);
    await page.waitForFunction(() => window.__homura && window.__homura.ready && window.__homura.flame, null, { timeout: 60000 });
    const ready = Date.now() - t0;
    const m = await page.evaluate(() => ({
      fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
      nodes: window.__homura.flame.nodes, drawn: window.__homura.flame.drawn, drawMs: window.__homura.flame.drawMs,
      steps: window.__homura.chart.timestamps.length, timing: window.__homura.timing,
    }));
    // the fastest of 20 redraws: the canvas cost without the machine's noise
    m.redrawMs = await page.evaluate(() => Math.min(...Array.from({ length: 20 }, () => window.__homura.redraw())));
    res.push({ ready, ...m });
    await ctx.close();
  }
} finally {
  await browser.close();
}
const med = (k) => res.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(res.length / 2)];
console.log(JSON.stringify({ query, runs: res, median_fcp_ms: Math.round(med('fcp')), median_ready_ms: med('ready'),
  median_redraw_ms: +med('redrawMs').toFixed(1), nodes: res[0].nodes, drawn: res[0].drawn }));
