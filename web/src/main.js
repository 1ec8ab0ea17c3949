// main.js - the dashboard served by `homura server` at / (docs/dashboard.md).
// It reads only the JSON query API (docs/api.md): services, profile types,
// labels and series (label values with counts), timeseries (the chart),
// flamegraph (flame graph, bottom-up, sandwich, and a client-side merge of
// two selections for comparisons), top (table, most-grown functions),
// download (exports) and source (the source view, served by server/ui.c).
// The whole view lives in the URL (history.replaceState) so a link restores
// it. window.__homura exposes what was drawn, for tests and benchmarks.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { Tree, FlameView, bottomUp, sandwich, mergeDiff, matcher, searchTree, KIND_COLOR } from './flame.js';
import { fmtValue, pct, esc, normTime, KINDS } from './util.js';

const $ = (id) => document.getElementById(id);
const MAX_NODES = 10000;
const H = (window.__homura = { ready: false, gen: 0, loads: 0 });

// ---- state <-> URL -----------------------------------------------------------

const DEF = { svc: '', type: '', from: 'now-1h', until: 'now', tab: 'flame', mode: 'icicle', q: '', focus: '', fn: '', by: '', src: '',
  bl: '', bfrom: '', buntil: '', cl: '', cfrom: '', cuntil: '', side: '', trace: '' };
const S = { ...DEF, l: [] };
function readURL() {
  const u = new URLSearchParams(location.search);
  for (const k of Object.keys(DEF)) if (u.has(k)) S[k] = u.get(k);
  S.l = u.getAll('l');
}
function writeURL() {
  const u = new URLSearchParams();
  for (const k of Object.keys(DEF)) if (S[k] !== DEF[k]) u.set(k, S[k]);
  for (const l of S.l) u.append('l', l);
  const q = u.toString();
  history.replaceState(null, '', q ? '?' + q : location.pathname);
}

// ---- the API -------------------------------------------------------------------

let token = sessionStorage.getItem('homura-token') || '';
function status(msg, err) {
  const s = $('status');
  s.textContent = msg || '';
  s.className = err ? 'muted err' : 'muted';
}
async function api(path, params, raw) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else if (v !== '' && v != null) u.set(k, v);
  }
  const used = token;
  const r = await fetch(path + '?' + u, { headers: token ? { Authorization: 'Bearer ' + token } : {} });
  if (r.status === 401) {
    // requests in flight together: the first one asks, the others retry
    if (token !== used) return api(path, params, raw);
    const t = prompt('This server needs a read token (--read-token):');
    if (t) { token = t; sessionStorage.setItem('homura-token', t); return api(path, params, raw); }
  }
  if (!r.ok) {
    let m = r.status + '';
    try { m = (await r.json()).error || m; } catch { /* not JSON */ }
    throw new Error(m);
  }
  return raw ? r.blob() : r.json();
}

// '*' picks every service
const svcArg = () => (S.svc === '*' ? '' : S.svc);
// With a trace id: that trace's samples, from the span series the server
// keeps beside each profile type (<type>_spans, docs/spans.md).
function sel(extra = {}) {
  const base = S.type.split(':')[0];
  const tr = S.trace ? { type: base.endsWith('_spans') ? base : base + '_spans', trace_id: S.trace } : {};
  return { service: svcArg(), type: S.type, label: S.l, from: S.from, until: S.until, ...tr, ...extra };
}

// ---- header: service, type, label filters, range -------------------------------------

let services = [];
async function loadServices() {
  const d = await api('/api/v1/services', { from: 'now-30d' });
  services = d.services.sort((a, b) => a.name.localeCompare(b.name));
  if (!S.svc || (S.svc !== '*' && !services.find((s) => s.name === S.svc))) S.svc = services[0]?.name || '';
  $('service').innerHTML = services.map((s) => `<option value="${esc(s.name)}">${esc(s.name)} (${s.series})</option>`).join('') +
    (services.length > 1 ? `<option value="*">all ${services.length} services</option>` : '');
  $('service').value = S.svc;
  await loadTypes();
}
async function loadTypes() {
  const d = S.svc ? await api('/api/v1/profile_types', { service: svcArg(), from: 'now-30d' }) : { profile_types: [] };
  const ids = d.profile_types.map((t) => t.id);
  if (!ids.includes(S.type)) S.type = ids.find((i) => i.startsWith('process_cpu:cpu')) || ids[0] || '';
  $('ptype').innerHTML = d.profile_types.map((t) =>
    `<option value="${esc(t.id)}">${esc(t.name)} · ${t.sample_unit === 'count' ? 'samples' : t.sample_unit}</option>`).join('');
  $('ptype').value = S.type;
}
function drawFilters() {
  $('filters').innerHTML = S.l.map((l, i) => `<span class="chip">${esc(l)}<button data-i="${i}" title="remove">×</button></span>`).join('');
}
$('filters').addEventListener('click', (e) => {
  const i = e.target.dataset?.i;
  if (i === undefined) return;
  S.l.splice(+i, 1);
  drawFilters();
  reload();
});
// label names, then values with their series counts (from /api/v1/series)
$('addfilter').addEventListener('click', async () => {
  const m = $('filtermenu');
  if (!m.hidden) { m.hidden = true; return; }
  const d = await api('/api/v1/labels', { service: svcArg(), from: 'now-30d' });
  m.innerHTML = d.labels.filter((n) => n !== 'service_name').map((n) => `<div data-n="${esc(n)}">${esc(n)}</div>`).join('') ||
    '<div>no labels</div>';
  m.hidden = false;
});
$('filtermenu').addEventListener('click', async (e) => {
  const el = e.target.closest('div');
  if (!el) return;
  const m = $('filtermenu');
  if (el.dataset.v !== undefined) {
    S.l.push(el.dataset.n + '=' + el.dataset.v);
    m.hidden = true;
    drawFilters();
    reload();
    return;
  }
  const name = el.dataset.n;
  if (!name) return;
  const d = await api('/api/v1/series', { service: svcArg(), label: S.l, from: S.from, until: S.until });
  const counts = new Map();
  for (const s of d.series) {
    if (S.type && s.type !== S.type.split(':')[0]) continue;
    const v = s.labels[name];
    if (v !== undefined) counts.set(v, (counts.get(v) || 0) + 1);
  }
  m.innerHTML = `<div class="muted">${esc(name)} = … <span class="count">series</span></div>` + [...counts].sort((a, b) => b[1] - a[1]).map(([v, c]) =>
    `<div data-n="${esc(name)}" data-v="${esc(v)}"><span>${esc(v)}</span><span class="count">${c}</span></div>`).join('');
});
document.addEventListener('click', (e) => {
  if (!e.target.closest('.addf')) $('filtermenu').hidden = true;
});
$('service').addEventListener('change', async () => { S.svc = $('service').value; S.l = []; S.focus = ''; drawFilters(); await loadTypes(); reload(); });
$('ptype').addEventListener('change', () => { S.type = $('ptype').value; reload(); });
// unix seconds shown as a local date (typed back the same way)
function showTime(v) {
  if (!/^\d+$/.test(v)) return v;
  const d = new Date(+v * 1000), p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function drawRange() {
  for (const b of $('ranges').children) b.classList.toggle('on', S.until === 'now' && b.dataset.r === S.from);
  $('from').value = showTime(S.from);
  $('until').value = showTime(S.until);
}
$('ranges').addEventListener('click', (e) => {
  const r = e.target.dataset?.r;
  if (!r) return;
  S.from = r; S.until = 'now';
  reload();
});
for (const id of ['from', 'until']) {
  $(id).addEventListener('change', () => {
    const v = normTime($(id).value);
    if (!v) { status(`bad time '${$(id).value}': now-2h, unix seconds or a date`, true); return; }
    S[id] = v;
    reload();
  });
}
$('trace').addEventListener('change', () => {
  const v = $('trace').value.trim().toLowerCase();
  if (v && !/^[0-9a-f]{32}$/.test(v)) { status(`bad trace id '${v}': 32 hex digits`, true); return; }
  S.trace = v; S.focus = '';
  reload();
});
$('theme').addEventListener('click', () => toggleTheme());
function toggleTheme() {
  const t = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = t;
  localStorage.setItem('homura-theme', t);
  drawAll();
}

// ---- the chart ---------------------------------------------------------------------

let plot = null, series = null, chartText = '';
async function loadChart(gen) {
  const d = await api('/api/v1/timeseries', sel());
  if (gen !== H.gen) return;
  series = d;
  const div = d.unit === 'nanoseconds' ? 1e9 : 1;
  const vals = d.values.map((v) => v / div);
  const data = [d.timestamps, vals];
  const sum = d.values.reduce((a, b) => a + b, 0);
  chartText = `${fmtValue(sum, d.unit)} in ${d.timestamps.length} steps of ${d.step} s` +
    (d.unit === 'nanoseconds' ? ' (CPU seconds per step)' : ' (samples per step)') + ' · drag on the chart to pick a range';
  $('chartinfo').textContent = chartText;
  H.chart = { timestamps: d.timestamps, values: d.values, step: d.step, unit: d.unit, total: sum };
  const w = $('chart').clientWidth || 1000;
  if (plot) { plot.setData(data); plot.setSize({ width: w, height: 150 }); return; }
  const css = getComputedStyle(document.documentElement);
  plot = new uPlot({
    width: w, height: 150, legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true } },
    axes: [{ stroke: () => css.getPropertyValue('--muted'), grid: { stroke: () => css.getPropertyValue('--line') } },
      { stroke: () => css.getPropertyValue('--muted'), grid: { stroke: () => css.getPropertyValue('--line') }, size: 50 }],
    series: [{}, { label: 'total', stroke: '#d9622b', width: 1.5, fill: 'rgba(217,98,43,0.18)', points: { show: false } }],
    hooks: {
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i == null || !series) { $('chartinfo').textContent = chartText; return; }
        $('chartinfo').textContent = `${showTime(String(series.timestamps[i]))}: ${fmtValue(series.values[i], series.unit)} in ${series.step} s`;
      }],
      setSelect: [(u) => {
        if (u.select.width < 3) return;
        // each point is the start of a slot of one step: the selection takes
        // the slots of the points nearest to its edges, whole
        const t0 = series.timestamps[0], st = series.step;
        const near = (px) => t0 + Math.round((u.posToVal(px, 'x') - t0) / st) * st;
        const a = near(u.select.left), b = near(u.select.left + u.select.width) + st - 1;
        u.setSelect({ left: 0, width: 0 }, false);
        if (b <= a) return;
        S.from = String(a); S.until = String(b);
        reload();
      }],
    },
  }, data, $('chart'));
}

// ---- the flame graph -----------------------------------------------------------------

let tree = null, shown = null, unit = 'nanoseconds', flameDoc = null;
const tip = $('tip');
function showTip(i, e, view) {
  const t = view.tree;
  if (i < 0 || !t || !e) { tip.hidden = true; return; }
  const u = view.unit || unit;
  const loc = t.file[i] ? t.file[i] + (t.line[i] ? ':' + t.line[i] : '') : '';
  let h = `<div class="t">${esc(t.name[i])}</div>` + (loc ? `<div class="f">${esc(loc)}</div>` : '') + `<div class="f">${KINDS[t.kind[i]]}</div>`;
  if (t.diff) {
    h += `<div><b class="base">baseline</b> total ${fmtValue(t.btotal[i], u)} (${pct(t.btotal[i], t.rootBase)}), self ${fmtValue(t.bself[i], u)} (${pct(t.bself[i], t.rootBase)})</div>` +
      `<div><b class="comp">comparison</b> total ${fmtValue(t.total[i], u)} (${pct(t.total[i], t.rootTotal)}), self ${fmtValue(t.self[i], u)} (${pct(t.self[i], t.rootTotal)})</div>`;
    const d = 100 * (t.total[i] / (t.rootTotal || 1) - t.btotal[i] / (t.rootBase || 1));
    h += `<div>change of total share: ${d >= 0 ? '+' : ''}${d.toFixed(2)} points</div>`;
  } else {
    h += `<div>total ${fmtValue(t.total[i], u)} · ${pct(t.total[i], t.rootTotal)}</div><div>self ${fmtValue(t.self[i], u)} · ${pct(t.self[i], t.rootTotal)}</div>`;
  }
  h += '<div class="f">click: focus · s: sandwich · v: source</div>';
  tip.innerHTML = h;
  tip.hidden = false;
  const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = e.clientY + 16 + tip.offsetHeight > window.innerHeight ? e.clientY - tip.offsetHeight - 8 : e.clientY + 16;
  tip.style.left = x + 'px'; tip.style.top = y + 'px';
  hovered = { i, view };
}
let hovered = null;

const view = new FlameView($('flame'), {
  onHover: showTip,
  onClick: (i, v) => { setFocus(v, i); },
  onSelect: (i, v) => { hovered = { i, view: v }; },
});
const view2 = new FlameView($('flame2'), {
  onHover: showTip,
  onClick: (i, v) => { setFocus(v, i); },
  onSelect: (i, v) => { hovered = { i, view: v }; },
});

function setFocus(v, i) {
  v.focus = i;
  v.sel = -1;
  if (v === view) {
    S.focus = v.tree.path(i).slice(1).map((k) => v.tree.text[k]).join('\n');
    writeURL();
    drawCrumbs();
    if (S.tab === 'both' && i > 0) {     // the table follows: its row selected
      tsel = v.tree.text[i];
      drawTable();
      document.querySelector('#table tr.sel')?.scrollIntoView({ block: 'nearest' });
    }
  }
  v.draw();
  expose();
}

function drawCrumbs() {
  const t = view.tree;
  if (!t || !t.n) { $('crumbs').innerHTML = ''; return; }
  const p = t.path(view.focus);
  $('crumbs').innerHTML = p.map((i, k) => k === p.length - 1 ? `<b>${esc(t.name[i])}</b>` : `<a data-i="${i}">${esc(t.name[i])}</a>`).join(' › ') +
    (p.length > 1 ? ' <span class="muted">(Esc: back to all)</span>' : '') +
    (/\.pyw?$/.test(t.file[view.focus]) ? ` · <a data-src="${view.focus}">source</a>` : '');
}
$('crumbs').addEventListener('click', (e) => {
  const i = e.target.dataset?.i;
  if (i !== undefined) setFocus(view, +i);
  const k = e.target.dataset?.src;
  if (k !== undefined) openSource(view.tree.text[+k]);
});

// ---- the source view: a function's file with per-line self and total ----------------------

async function openSource(text) {
  S.src = text;
  writeURL();
  const box = $('sourcebox');
  if (!text) { box.hidden = true; H.source = null; return; }
  const name = text.replace(/ \(.*\)$/, '');
  const file = text.slice(name.length + 2, -1).replace(/:\d+$/, '');
  box.hidden = false;
  $('sourcehead').innerHTML = `<b>${esc(name)}</b><span class="muted">${esc(file)}</span><span class="spacer"></span><span class="muted">columns: total · self · line</span><button id="srcclose" title="close (Esc)">×</button>`;
  $('source').textContent = 'loading …';
  try {
    const [src, fl] = await Promise.all([api('/api/v1/source', sel({ file })),
      api('/api/v1/flamegraph', sel({ by: 'line', max_nodes: MAX_NODES }))]);
    const t = Tree.fromApi(fl);
    // per line of this file: self, and total counted once per stack
    const self = new Map(), total = new Map();
    const open = new Map();    // line -> depth of the outermost open occurrence
    const stackLines = [];
    for (let i = 1; i < t.n; i++) {
      while (stackLines.length && stackLines[stackLines.length - 1].end <= i) {
        const x = stackLines.pop();
        if (open.get(x.line) === x.i) open.delete(x.line);
      }
      if (t.file[i] !== file || !t.line[i]) continue;
      const ln = t.line[i];
      self.set(ln, (self.get(ln) || 0) + t.self[i]);
      if (!open.has(ln)) {
        total.set(ln, (total.get(ln) || 0) + t.total[i]);
        open.set(ln, i);
        stackLines.push({ end: t.end[i], line: ln, i });
      }
    }
    let hot = 0, hotv = -1;
    for (let i = 1; i < t.n; i++) {
      if (t.file[i] === file && t.name[i] === name && t.total[i] > hotv) { hot = t.line[i]; hotv = t.total[i]; }
    }
    const T = t.rootTotal || 1;
    const maxv = Math.max(1, ...total.values());
    $('source').innerHTML = src.lines.map((l, k) => {
      const n = k + 1, sv = self.get(n) || 0, tv = total.get(n) || 0;
      const bg = tv ? ` style="background: rgba(240,150,40,${(0.12 + 0.5 * tv / maxv).toFixed(2)})"` : '';
      return `<span class="ln" id="L${n}"${bg}><span class="v">${tv ? pct(tv, T) : ''}</span><span class="v">${sv ? pct(sv, T) : ''}</span><span class="v">${n}</span>${esc(l)}</span>`;
    }).join('');
    const hl = hot && $('L' + hot);
    if (hl) $('source').scrollTop = hl.offsetTop - $('source').offsetTop - $('source').clientHeight / 3;
    H.source = { file, lines: src.lines.length, hot, hits: [...total].map(([line, v]) => ({ line, total: v, self: self.get(line) || 0 })) };
    expose();
  } catch (err) {
    $('source').textContent = 'no source: ' + err.message;
    H.source = { file, error: err.message };
  }
}
$('sourcehead').addEventListener('click', (e) => { if (e.target.id === 'srcclose') openSource(''); });

async function loadFlame(gen) {
  const t0 = performance.now();
  const d = await api('/api/v1/flamegraph', sel({ max_nodes: MAX_NODES, by: S.by ? 'line' : '' }));
  if (gen !== H.gen) return;
  const t1 = performance.now();
  flameDoc = d;
  unit = d.unit;
  tree = Tree.fromApi(d);
  const t2 = performance.now();
  drawFlame();
  H.timing = { fetchMs: t1 - t0, buildMs: t2 - t1, drawMs: performance.now() - t2 };
}

function currentTree() {
  if (!tree) return null;
  return S.mode === 'bottomup' ? bottomUp(tree) : tree;
}

let searchRes = null;
function drawFlame() {
  if (S.tab === 'compare') return;
  if (S.tab === 'sandwich') { drawSandwich(); return; }
  shown = currentTree();
  const focus = shown && S.focus ? shown.find(S.focus.split('\n')) : 0;
  const test = matcher(S.q);
  searchRes = shown && test ? searchTree(shown, test) : null;
  view.unit = unit;
  view.set(shown, { focus, mode: S.mode === 'flame' ? 'flame' : 'icicle', marks: searchRes?.marks });
  drawCrumbs();
  drawSearchInfo();
  expose();
}

function drawSearchInfo() {
  if (!searchRes) { $('searchinfo').textContent = ''; return; }
  $('searchinfo').textContent = `${searchRes.count} matching · ${pct(searchRes.value, shown.rootTotal)} (${fmtValue(searchRes.value, unit)})`;
  $('searchinfo').title = 'frames matching the search; their share of the total, each stack counted once';
}

function drawSandwich() {
  if (!tree) return;
  if (!S.fn) {
    view.set(null); view2.set(null);
    $('crumbs').innerHTML = '<span class="muted">Sandwich: press s on a frame, or pick a function in the top table.</span>';
    return;
  }
  const sw = sandwich(tree, S.fn);
  view.unit = unit; view2.unit = unit;
  view.set(sw.callers, { mode: 'flame' });
  view2.set(sw.callees, { mode: 'icicle' });
  $('crumbs').innerHTML = `Sandwich of <b>${esc(S.fn)}</b>: ${fmtValue(sw.total, unit)} (${pct(sw.total, tree.rootTotal)}) — callers above, callees below`;
  H.sandwich = { fn: S.fn, total: sw.total, callers: sw.callers.n, callees: sw.callees.n };
}

function openSandwich(text) {
  S.fn = text;
  setTab('sandwich');
}

// ---- the top table ---------------------------------------------------------------------

// The table is fetched only while it is shown (the flame graph alone needs
// one query, not two, for a first load over much data).
let top = null, topKey = '', sortKey = 'self', sortDir = -1, tsel = '';
const tableShown = () => S.tab === 'table' || S.tab === 'both';
async function loadTop(gen) {
  const key = JSON.stringify(sel());
  if (!tableShown() || (key === topKey && top)) return;
  const d = await api('/api/v1/top', sel({ limit: 2000, sort: 'self' }));
  if (gen !== H.gen) return;
  top = d;
  topKey = key;
  drawTable();
}
function drawTable() {
  if (!top) return;
  const f = $('tsearch').value.toLowerCase();
  let rows = top.functions.filter((r) => !f || r.name.toLowerCase().includes(f) || r.file.toLowerCase().includes(f));
  rows = rows.slice().sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    return (typeof x === 'string' ? x.localeCompare(y) : x - y) * sortDir;
  });
  const T = top.total || 1, max = rows.reduce((m, r) => Math.max(m, r.self), 1);
  const head = [['name', 'function'], ['file', 'file'], ['self', 'self'], ['selfp', 'self %'], ['total', 'total'], ['totalp', 'total %']];
  const shown = rows.slice(0, 500);
  $('table').innerHTML = '<thead><tr>' + head.map(([k, n]) => `<th data-k="${k}" class="${k === 'name' || k === 'file' ? 'fn' : ''}">${n}${sortKey === k ? (sortDir < 0 ? ' ▾' : ' ▴') : ''}</th>`).join('') + '</tr></thead><tbody>' +
    shown.map((r, i) => {
      const text = r.file ? `${r.name} (${r.file})` : r.name;
      return `<tr data-i="${i}" class="${text === tsel ? 'sel' : ''}" title="${esc(text)}: click to highlight, double-click for the sandwich"><td class="fn">${esc(r.name)}</td><td class="file" title="${esc(r.file)}">${esc(tail(r.file))}</td>` +
        `<td>${r.self ? fmtValue(r.self, top.unit) : '–'}</td><td><span class="bar" style="width:${Math.round(40 * r.self / max)}px"></span>${r.self ? pct(r.self, T) : '–'}</td>` +
        `<td>${fmtValue(r.total, top.unit)}</td><td>${pct(r.total, T)}</td></tr>`;
    }).join('') + '</tbody>';
  $('table').rows_ = shown;
  $('tableinfo').textContent = `${rows.length} of ${top.functions.length} functions`;
  H.table = { rows: rows.length, first: shown[0] ? { name: shown[0].name, self: shown[0].self, total: shown[0].total } : null };
}
$('table').addEventListener('click', (e) => {
  const th = e.target.closest('th');
  if (th) {
    const k = th.dataset.k.replace(/p$/, '');
    if (sortKey === k) sortDir = -sortDir; else { sortKey = k; sortDir = k === 'name' || k === 'file' ? 1 : -1; }
    drawTable();
    return;
  }
  const tr = e.target.closest('tr[data-i]');
  if (!tr) return;
  const r = $('table').rows_[+tr.dataset.i];
  const text = r.file ? `${r.name} (${r.file})` : r.name;
  tsel = text;
  // highlight it in the flame graph: an exact search on the frame's text
  S.q = '/^' + text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') + '$/';
  $('search').value = S.q;
  $('trace').value = S.trace;
  if (S.tab === 'table') setTab('both'); else { writeURL(); drawFlame(); drawTable(); }
});
$('table').addEventListener('dblclick', (e) => {
  const tr = e.target.closest('tr[data-i]');
  if (!tr) return;
  const r = $('table').rows_[+tr.dataset.i];
  openSandwich(r.file ? `${r.name} (${r.file})` : r.name);
});
$('tsearch').addEventListener('input', drawTable);

// ---- comparison ----------------------------------------------------------------------------

function tail(f, n = 48) {
  return f.length > n ? '…' + f.slice(f.length - n + 1) : f;
}
function labelsOf(s) {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}
function cmpSel(which) {
  const extra = labelsOf(S[which + 'l']);
  const names = new Set(extra.map((l) => l.split(/[!=~]/)[0]));
  return {
    service: svcArg(), type: S.type,
    label: [...S.l.filter((l) => !names.has(l.split(/[!=~]/)[0])), ...extra],
    from: S[which + 'from'] || S.from, until: S[which + 'until'] || S.until,
  };
}
let diffTree = null;
async function runCompare() {
  const gen = ++H.gen;
  status('comparing …');
  try {
    const a = cmpSel('b'), b = cmpSel('c');
    const [fa, fb, ta, tb] = await Promise.all([
      api('/api/v1/flamegraph', { ...a, max_nodes: MAX_NODES }), api('/api/v1/flamegraph', { ...b, max_nodes: MAX_NODES }),
      api('/api/v1/top', { ...a, limit: 5000 }), api('/api/v1/top', { ...b, limit: 5000 })]);
    if (gen !== H.gen) return;
    unit = fb.unit;
    const treeA = Tree.fromApi(fa), treeB = Tree.fromApi(fb);
    diffTree = mergeDiff(treeA, treeB);
    view.unit = unit; view2.unit = unit;
    const mode = S.mode === 'flame' ? 'flame' : 'icicle';
    if (S.side) {
      $('f1title').innerHTML = `<b class="base">baseline</b> ${fmtValue(fa.total, unit)}`;
      $('f2title').innerHTML = `<b class="comp">comparison</b> ${fmtValue(fb.total, unit)}`;
      view.set(treeA, { mode });
      view2.set(treeB, { mode });
    } else {
      view.set(diffTree, { mode });
    }
    // most grown first: change of the self share, then of the total share
    const key = (f) => f.name + '\0' + f.file;
    const m = new Map();
    for (const f of ta.functions) m.set(key(f), { name: f.name, file: f.file, bself: f.self, btotal: f.total, self: 0, total: 0 });
    for (const f of tb.functions) {
      const e = m.get(key(f)) || { name: f.name, file: f.file, bself: 0, btotal: 0 };
      e.self = f.self; e.total = f.total;
      m.set(key(f), e);
    }
    const A = ta.total || 1, B = tb.total || 1;
    const grown = [...m.values()].map((e) => ({ ...e, dself: e.self / B - e.bself / A, dtotal: e.total / B - e.btotal / A }))
      .sort((x, y) => y.dself - x.dself || y.dtotal - x.dtotal);
    const desc = (s) => `${esc(s.label.join(', ') || 'all')} · ${esc(s.from)} → ${esc(s.until)}`;
    $('cmpinfo').innerHTML = `<div><b class="base">baseline</b> ${desc(a)}: ${fmtValue(ta.total, unit)} &nbsp; <b class="comp">comparison</b> ${desc(b)}: ${fmtValue(tb.total, unit)}` +
      ` &nbsp; <span class="muted">red: a larger share in the comparison, green: smaller</span></div>` +
      '<table class="grown"><thead><tr><th class="fn">function (most grown first)</th><th class="fn">file</th><th>self before</th><th>self after</th><th>Δ self share</th><th>Δ total share</th></tr></thead><tbody>' +
      grown.slice(0, 12).map((g) => `<tr><td class="fn">${esc(g.name)}</td><td class="file" title="${esc(g.file)}">${esc(tail(g.file))}</td><td>${pct(g.bself, A)}</td><td>${pct(g.self, B)}</td>` +
        `<td class="${g.dself > 0 ? 'up' : 'down'}">${g.dself >= 0 ? '+' : ''}${(100 * g.dself).toFixed(2)}</td><td class="${g.dtotal > 0 ? 'up' : 'down'}">${g.dtotal >= 0 ? '+' : ''}${(100 * g.dtotal).toFixed(2)}</td></tr>`).join('') +
      '</tbody></table>';
    $('crumbs').innerHTML = S.side ? '<span class="muted">baseline and comparison side by side (each to its own total)</span>' :
      '<span class="muted">diff flame graph: width = mean of both shares; hover for both values</span>';
    H.diff = { baseTotal: fa.total, total: fb.total, treeBase: diffTree.rootBase, treeTotal: diffTree.rootTotal, nodes: diffTree.n,
      grown: grown.slice(0, 20).map((g) => ({ name: g.name, dself: g.dself, dtotal: g.dtotal })) };
    H.side = S.side ? { baseTotal: view.tree.rootTotal, total: view2.tree.rootTotal, drawn: [view.drawn, view2.drawn] } : null;
    H.loads++;
    status('');
  } catch (err) {
    status(err.message, true);
  }
}
$('side').addEventListener('change', () => {
  S.side = $('side').checked ? '1' : '';
  setSide();
  writeURL();
  runCompare();
});
function setSide() {
  if (S.tab === 'compare' && S.side) document.body.dataset.side = '1'; else delete document.body.dataset.side;
  if (!document.body.dataset.side) { $('f1title').innerHTML = ''; $('f2title').innerHTML = ''; }
}
$('runcmp').addEventListener('click', () => {
  for (const k of ['bl', 'cl']) S[k] = $(k).value.trim();
  for (const k of ['bfrom', 'buntil', 'cfrom', 'cuntil']) {
    const v = $(k).value.trim();
    S[k] = v ? normTime(v) || '' : '';
  }
  writeURL();
  runCompare();
});

// ---- tabs, search, mode, exports, keys ---------------------------------------------------------

function setTab(tab) {
  S.tab = tab;
  document.body.dataset.tab = tab;
  for (const b of $('tabs').querySelectorAll('[data-tab]')) b.classList.toggle('on', b.dataset.tab === tab);
  $('compareform').hidden = tab !== 'compare';
  $('side').checked = !!S.side;
  setSide();
  writeURL();
  if (tab === 'compare') {
    for (const k of ['bl', 'cl', 'bfrom', 'buntil', 'cfrom', 'cuntil']) $(k).value = S[k];
    if (!S.bfrom) $('bfrom').placeholder = S.from;
    if (!S.cfrom) $('cfrom').placeholder = S.from;
    $('buntil').placeholder = S.until; $('cuntil').placeholder = S.until;
    runCompare();
  } else {
    drawFlame();
    drawTable();
    if (tableShown() && H.ready) loadTop(H.gen).catch((err) => status(err.message, true));
  }
}
$('tabs').addEventListener('click', (e) => {
  const t = e.target.dataset?.tab;
  if (t) setTab(t);
});
$('mode').addEventListener('change', () => { S.mode = $('mode').value; S.focus = ''; writeURL(); S.tab === 'compare' ? runCompare() : drawFlame(); });
$('byline').addEventListener('change', () => { S.by = $('byline').checked ? 'line' : ''; S.focus = ''; reload(); });
let searchTimer = 0;
$('search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { S.q = $('search').value; writeURL(); drawFlame(); }, 120);
});
$('tabs').querySelector('.export').addEventListener('click', async (e) => {
  const fmt = e.target.dataset?.fmt;
  if (!fmt) return;
  let blob, name;
  if (fmt === 'svg') {
    blob = new Blob([view.svg(`${S.svc} ${S.type} ${S.from} → ${S.until}`)], { type: 'image/svg+xml' });
    name = 'flamegraph.svg';
  } else {
    try { blob = await api('/api/v1/download', sel({ format: fmt }), true); } catch (err) { status(err.message, true); return; }
    name = { pprof: 'profile.pb.gz', speedscope: 'profile.speedscope.json', collapsed: 'profile.txt' }[fmt];
  }
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
});

document.addEventListener('keydown', (e) => {
  const inField = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName);
  if (e.key === 'Escape') {
    if (inField) { document.activeElement.blur(); return; }
    if (S.src) { openSource(''); return; }
    if (view.focus) setFocus(view, 0);
    else if (S.q) { S.q = ''; $('search').value = ''; writeURL(); drawFlame(); }
    return;
  }
  if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === '/') { e.preventDefault(); $('search').focus(); }
  else if (e.key === 't') toggleTheme();
  else if (e.key === 'f') { $('flame').focus(); }
  else if (e.key === 's' && hovered && hovered.view.tree && hovered.i > 0) openSandwich(hovered.view.tree.text[hovered.i]);
  else if (e.key === 'v' && hovered && hovered.view.tree && hovered.i > 0) openSource(hovered.view.tree.text[hovered.i]);
  else if (e.key === 'v' && tsel) openSource(tsel);
  else if (e.key === '?') status('keys: / search · Esc back · arrows move · Enter focus · s sandwich · v source · t theme · 1-5 tabs', false);
  else if (/^[1-5]$/.test(e.key)) setTab(['flame', 'table', 'both', 'sandwich', 'compare'][+e.key - 1]);
});

// ---- loading ---------------------------------------------------------------------------------

function expose() {
  const t = view.tree;
  H.state = { ...S, l: [...S.l] };
  H.flame = flameDoc && tree ? {
    total: tree.rootTotal, apiTotal: flameDoc.total, nodes: tree.n, unit,
    shownTotal: t ? t.rootTotal : 0, shownNodes: t ? t.n : 0, drawn: view.drawn, drawMs: view.ms,
    focus: t && t.n ? t.text[view.focus] : '', focusTotal: t && t.n ? t.total[view.focus] : 0,
  } : null;
  H.search = searchRes ? { count: searchRes.count, value: searchRes.value } : null;
  // redraw the flame graph, returning its time in ms (bench/bench_dashboard.sh)
  H.redraw = () => { view.draw(); return view.ms; };
  // the first level of the tree shown: name -> total (for tests)
  H.roots = () => {
    const r = {};
    if (t) for (let c = 1; c < t.n; c = t.end[c]) r[t.text[c]] = (r[t.text[c]] || 0) + t.total[c];
    return r;
  };
  // where a frame is drawn, for tests: the centre of the widest one named n
  H.where = (name, which = view) => {
    let best = null;
    which.rows.forEach((row, r) => {
      for (let k = 0; k < row.length; k += 3) {
        const i = row[k + 2];
        if (which.tree.name[i] === name && (!best || row[k + 1] - row[k] > best.w)) best = { x: (row[k] + row[k + 1]) / 2, y: r * 18 + 9, w: row[k + 1] - row[k], i };
      }
    });
    if (!best) return null;
    const b = which.c.getBoundingClientRect();
    return { x: b.left + best.x, y: b.top + best.y, w: best.w };
  };
}

function drawAll() {
  if (plot) { plot.destroy(); plot = null; }
  if (series) loadChart(H.gen).catch(() => {});
  if (S.tab === 'compare') view.draw(); else drawFlame();
  if (S.tab === 'sandwich') view2.draw();
}

async function reload() {
  topKey = '';
  if (!tableShown()) top = null;
  writeURL();
  drawRange();
  if (S.tab === 'compare') { loadChart(H.gen + 1).catch(() => {}); runCompare(); return; }
  const gen = ++H.gen;
  status('loading …');
  try {
    await Promise.all([loadChart(gen), loadFlame(gen), loadTop(gen)]);
    if (gen === H.gen) { H.loads++; H.ready = true; status(''); expose(); }
  } catch (err) {
    if (gen === H.gen) status(err.message, true);
  }
}

// live: refresh every 10 s while the range ends now
setInterval(() => {
  if (!$('live').checked || S.until !== 'now' || document.hidden || S.tab === 'compare') return;
  reload();
}, 10000);
window.addEventListener('popstate', () => { readURL(); start(); });

function drawLegend() {
  $('legend').innerHTML = KINDS.map((k, i) => `<span><i style="background:${KIND_COLOR(i)}"></i>${esc(k)}</span>`).join('') +
    ' <span class="keys">press ? for keys</span>';
}

async function start() {
  drawLegend();
  readURL();
  $('search').value = S.q;
  $('mode').value = S.mode;
  $('byline').checked = !!S.by;
  drawFilters();
  document.body.dataset.tab = S.tab;
  // a URL that names the service and type (a shared one, or a reload) loads
  // the data while the pickers are filled
  const asked = S.svc + '|' + S.type;
  const early = S.svc && S.type && S.tab !== 'compare' ? reload() : null;
  try {
    await loadServices();
  } catch (err) {
    status(err.message, true);
    return;
  }
  if (!services.length) {
    $('crumbs').innerHTML = 'No profiles stored yet: point an agent at this server (<code>homura agent -p PID --server ' + esc(location.origin) + '</code>).';
    H.ready = true;
    return;
  }
  drawRange();
  for (const b of $('tabs').querySelectorAll('[data-tab]')) b.classList.toggle('on', b.dataset.tab === S.tab);
  if (S.tab === 'compare') { setTab('compare'); loadChart(H.gen).catch(() => {}); H.ready = true; return; }
  if (early && asked === S.svc + '|' + S.type) await early;
  else await reload();
  if (S.src) openSource(S.src);
}
start();
