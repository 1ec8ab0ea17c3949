// flame.js - the flame graph: a tree model in flat typed arrays (pre-order,
// as /api/v1/flamegraph sends it), the trees derived from it in the browser
// (bottom-up, a sandwich's callers and callees, the merge of two selections
// for a diff) and a canvas renderer that draws only what is wider than half a
// pixel, so that trees of 10,000+ nodes redraw in a few milliseconds.
import { splitText, kindOf, hash, fmtValue, pct, esc } from './util.js';

// ---- the model -------------------------------------------------------------

export class Tree {
  // nodes: [{name, text, total, self, btotal?, bself?, parent}] in pre-order
  constructor(nodes, diff = false) {
    const n = nodes.length;
    this.n = n;
    this.diff = diff;
    this.parent = new Int32Array(n);
    this.depth = new Int32Array(n);
    this.total = new Float64Array(n);
    this.self = new Float64Array(n);
    this.btotal = new Float64Array(diff ? n : 0);
    this.bself = new Float64Array(diff ? n : 0);
    this.w = new Float64Array(n);      // drawn width (value units)
    this.x = new Float64Array(n);      // drawn start
    this.end = new Int32Array(n);      // end of the subtree (exclusive)
    this.kind = new Uint8Array(n);
    this.name = new Array(n);
    this.text = new Array(n);
    this.file = new Array(n);
    this.line = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const d = nodes[i];
      this.parent[i] = i ? d.parent : -1;
      this.depth[i] = i ? this.depth[d.parent] + 1 : 0;
      this.total[i] = d.total;
      this.self[i] = d.self;
      this.name[i] = d.name;
      this.text[i] = d.text;
      const ft = splitText(d.text, d.name);
      this.file[i] = ft.file;
      this.line[i] = ft.line;
      this.kind[i] = kindOf(d.name, ft.file);
      if (diff) { this.btotal[i] = d.btotal || 0; this.bself[i] = d.bself || 0; }
    }
    this.rootTotal = n ? this.total[0] : 0;
    this.rootBase = diff && n ? this.btotal[0] : 0;
    // a diff is drawn by the mean of both shares, so both sides show
    const sc = diff ? 1 / (this.rootTotal || 1) : 1, sb = diff ? 1 / (this.rootBase || 1) : 0;
    for (let i = 0; i < n; i++) this.w[i] = diff ? (this.total[i] * sc + this.btotal[i] * sb) / 2 : this.total[i];
    const cur = new Float64Array(n);
    this.maxDepth = 0;
    for (let i = 1; i < n; i++) {
      const p = this.parent[i];
      this.x[i] = this.x[p] + cur[p];
      cur[p] += this.w[i];
      if (this.depth[i] > this.maxDepth) this.maxDepth = this.depth[i];
    }
    const size = new Int32Array(n).fill(1);
    for (let i = n - 1; i > 0; i--) size[this.parent[i]] += size[i];
    for (let i = 0; i < n; i++) this.end[i] = i + size[i];
  }

  static fromApi(doc) {
    return new Tree(doc.nodes.map((d) => ({ name: d.name, text: d.text, total: d.total, self: d.self, parent: d.parent })));
  }

  path(i) {           // root .. i
    const p = [];
    for (; i >= 0; i = this.parent[i]) p.push(i);
    return p.reverse();
  }

  // node by a path of texts (below the root), or the deepest one found
  find(texts) {
    let cur = 0;
    for (const t of texts) {
      let hit = -1;
      for (let c = cur + 1; c < this.end[cur]; c = this.end[c]) if (this.text[c] === t) { hit = c; break; }
      if (hit < 0) break;
      cur = hit;
    }
    return cur;
  }

  subtreeMaxDepth(i) {
    let m = this.depth[i];
    for (let k = i; k < this.end[i]; k++) if (this.depth[k] > m) m = this.depth[k];
    return m;
  }
}

// A tree under construction: children by key, values added along paths.
class Builder {
  constructor(rootName = 'all', rootText = 'all') {
    this.nodes = [{ name: rootName, text: rootText, total: 0, self: 0, btotal: 0, bself: 0, kids: new Map() }];
  }
  child(i, name, text) {
    const k = this.nodes[i].kids;
    let c = k.get(text);
    if (c === undefined) {
      c = this.nodes.length;
      this.nodes.push({ name, text, total: 0, self: 0, btotal: 0, bself: 0, kids: new Map() });
      k.set(text, c);
    }
    return c;
  }
  // pre-order, children by size (larger first)
  build(diff = false) {
    const out = [];
    // iterative for deep trees
    const stack = [[0, -1]];
    while (stack.length) {
      const [i, parent] = stack.pop();
      const d = this.nodes[i];
      const me = out.length;
      out.push({ name: d.name, text: d.text, total: d.total, self: d.self, btotal: d.btotal, bself: d.bself, parent });
      const kids = [...d.kids.values()].sort((a, b) =>
        (this.nodes[a].total + this.nodes[a].btotal) - (this.nodes[b].total + this.nodes[b].btotal));
      for (const c of kids) stack.push([c, me]);
    }
    return new Tree(out, diff);
  }
}

// Bottom-up: each function that has self time becomes a root; its callers
// hang below it. Totals are self time along the inverted paths.
export function bottomUp(t) {
  const b = new Builder();
  for (let i = 1; i < t.n; i++) {
    const v = t.self[i];
    if (!v) continue;
    b.nodes[0].total += v;
    let cur = 0;
    for (let k = i; k > 0; k = t.parent[k]) {
      cur = b.child(cur, t.name[k], t.text[k]);
      b.nodes[cur].total += v;
    }
    b.nodes[cur].self += v;
  }
  return b.build();
}

// Outermost occurrences of nodes whose text is fn (a recursive call inside
// one is counted once, with its outer call).
function outermost(t, fn) {
  const out = [];
  for (let i = 1; i < t.n;) {
    if (t.text[i] === fn) { out.push(i); i = t.end[i]; } else i++;
  }
  return out;
}

// Sandwich of function fn: its callers (inverted: fn at the root, its
// callers below) and its callees (its subtrees merged).
export function sandwich(t, fn) {
  const occ = outermost(t, fn);
  const callers = new Builder(), callees = new Builder();
  let name = fn;
  for (const i of occ) {
    name = t.name[i];
    const v = t.total[i];
    callers.nodes[0].total += v;
    let cur = 0;
    for (let k = t.parent[i]; k > 0; k = t.parent[k]) {
      cur = callers.child(cur, t.name[k], t.text[k]);
      callers.nodes[cur].total += v;
    }
    callers.nodes[cur].self += v;
    // callees: copy the subtree of i under the root
    callees.nodes[0].total += v;
    callees.nodes[0].self += t.self[i];
    const map = new Map([[i, 0]]);
    for (let k = i + 1; k < t.end[i]; k++) {
      const c = callees.child(map.get(t.parent[k]), t.name[k], t.text[k]);
      map.set(k, c);
      callees.nodes[c].total += t.total[k];
      callees.nodes[c].self += t.self[k];
    }
  }
  for (const b of [callers, callees]) { b.nodes[0].name = name; b.nodes[0].text = fn; }
  return { callers: callers.build(), callees: callees.build(), total: occ.reduce((s, i) => s + t.total[i], 0) };
}

// Two trees merged by call path: btotal/bself from the baseline a.
export function mergeDiff(a, b) {
  const m = new Builder();
  const add = (t, base) => {
    const map = new Int32Array(t.n);
    for (let i = 0; i < t.n; i++) {
      const c = i ? m.child(map[t.parent[i]], t.name[i], t.text[i]) : 0;
      map[i] = c;
      if (base) { m.nodes[c].btotal += t.total[i]; m.nodes[c].bself += t.self[i]; } else { m.nodes[c].total += t.total[i]; m.nodes[c].self += t.self[i]; }
    }
  };
  add(a, true);
  add(b, false);
  return m.build(true);
}

// Search: a case-insensitive substring, or /regex/flags. Returns a test fn.
export function matcher(q) {
  if (!q) return null;
  const m = /^\/(.+)\/([a-z]*)$/.exec(q);
  if (m) {
    try { const re = new RegExp(m[1], m[2].includes('i') ? m[2] : m[2] + 'i'); return (s) => re.test(s); } catch { /* as text */ }
  }
  const lq = q.toLowerCase();
  return (s) => s.toLowerCase().includes(lq);
}

// Matches of a search: marks per node, share = outermost matches' totals.
export function searchTree(t, test) {
  const marks = new Uint8Array(t.n);
  let count = 0, value = 0;
  if (!test) return { marks, count, value };
  for (let i = 1; i < t.n; i++) if (test(t.text[i])) { marks[i] = 1; count++; }
  for (let i = 1; i < t.n;) {
    if (marks[i]) { value += t.total[i]; i = t.end[i]; } else i++;
  }
  return { marks, count, value };
}

// ---- colours ---------------------------------------------------------------

// [hue, saturation] by kind: app warm, stdlib blue, site-packages green,
// native purple-grey, gc/idle grey
const KIND_HS = [[22, 80], [205, 60], [140, 45], [265, 25], [0, 0]];

export const KIND_COLOR = (k) => `hsl(${KIND_HS[k][0]},${KIND_HS[k][1]}%,60%)`;

export function nodeColor(t, i, dark) {
  const [h, s] = KIND_HS[t.kind[i]];
  const v = hash(t.name[i]);
  const l = (dark ? 38 : 62) + (v % 14) - 7;
  return `hsl(${h + ((v >> 8) % 16) - 8},${s}%,${l}%)`;
}

function diffColor(t, i, maxd, dark) {
  const cs = t.total[i] / (t.rootTotal || 1), bs = t.btotal[i] / (t.rootBase || 1);
  const d = cs - bs;
  const k = Math.min(1, Math.abs(d) / maxd);
  const l0 = dark ? 32 : 86;
  if (k < 0.02) return `hsl(220,8%,${dark ? 34 : 80}%)`;
  return d > 0 ? `hsl(0,${35 + 50 * k}%,${l0 - (dark ? -12 : 30) * k}%)` : `hsl(130,${30 + 40 * k}%,${l0 - (dark ? -10 : 32) * k}%)`;
}

// ---- the canvas view ---------------------------------------------------------

const ROW = 18;

export class FlameView {
  // opts: {onHover(i|-1, ev), onClick(i), onSelect(i), inverted: bool}
  constructor(canvas, opts = {}) {
    this.c = canvas;
    this.o = opts;
    this.tree = null;
    this.focus = 0;
    this.sel = -1;
    this.hover = -1;
    this.mode = 'icicle';
    this.marks = null;
    this.rows = [];
    this.drawn = 0;
    canvas.addEventListener('mousemove', (e) => this._move(e));
    canvas.addEventListener('mouseleave', () => { this.hover = -1; this.o.onHover?.(-1, null, this); });
    canvas.addEventListener('click', (e) => {
      const i = this.hit(e);
      if (i >= 0) this.o.onClick?.(i, this);
    });
    canvas.addEventListener('keydown', (e) => this._key(e));
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement);
  }

  set(tree, { focus = 0, mode = 'icicle', marks = null } = {}) {
    this.tree = tree;
    this.focus = tree && focus < tree.n ? focus : 0;
    this.mode = mode;
    this.marks = marks;
    if (!tree || this.sel >= tree.n) this.sel = -1;
    this.draw();
  }

  hit(e) {
    const r = this.c.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    const row = this.rows[Math.floor(y / ROW)];
    if (!row) return -1;
    let lo = 0, hi = row.length / 3 - 1;
    while (lo <= hi) {            // rows hold (x0, x1, id) increasing in x
      const m = (lo + hi) >> 1;
      if (x < row[m * 3]) hi = m - 1;
      else if (x >= row[m * 3 + 1]) lo = m + 1;
      else return row[m * 3 + 2];
    }
    return -1;
  }

  _move(e) {
    const i = this.hit(e);
    this.c.style.cursor = i >= 0 ? 'pointer' : 'default';
    if (i !== this.hover) this.hover = i;
    this.o.onHover?.(i, e, this);
  }

  _key(e) {
    const t = this.tree;
    if (!t) return;
    let s = this.sel >= 0 ? this.sel : this.focus;
    const up = this.mode === 'flame' ? 'ArrowDown' : 'ArrowUp';
    const down = this.mode === 'flame' ? 'ArrowUp' : 'ArrowDown';
    const sib = (dir) => {           // the neighbour drawn on the same row
      for (const row of this.rows) {
        for (let k = 0; k < row.length; k += 3) if (row[k + 2] === s) {
          const j = k + 3 * dir;
          return j >= 0 && j < row.length ? row[j + 2] : s;
        }
      }
      return s;
    };
    if (e.key === up) s = t.parent[s] >= 0 ? t.parent[s] : s;
    else if (e.key === down) s = s + 1 < t.end[s] ? s + 1 : s;
    else if (e.key === 'ArrowLeft') s = sib(-1);
    else if (e.key === 'ArrowRight') s = sib(1);
    else if (e.key === 'Enter') { this.o.onClick?.(s, this); e.preventDefault(); return; }
    else return;
    e.preventDefault();
    this.sel = s;
    this.draw();
    this.o.onSelect?.(s, this);
  }

  draw() {
    const t0 = performance.now();
    this._draw();
    this.ms = performance.now() - t0;
  }

  _draw() {
    const t = this.tree, c = this.c;
    const W = Math.max(100, c.parentElement.clientWidth);
    const dpr = window.devicePixelRatio || 1;
    if (!t || !t.n) {
      c.width = W * dpr; c.height = 40 * dpr; c.style.height = '40px';
      const g = c.getContext('2d');
      g.scale(dpr, dpr);
      g.fillStyle = getComputedStyle(document.body).color;
      g.font = '13px system-ui, sans-serif';
      g.fillText(t ? 'no data in this selection' : '', 8, 24);
      this.rows = []; this.drawn = 0;
      return;
    }
    const f = this.focus;
    const maxD = t.subtreeMaxDepth(f);
    const nrows = maxD + 1;
    const H = nrows * ROW;
    c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
    c.style.height = H + 'px';
    const g = c.getContext('2d');
    g.scale(dpr, dpr);
    const dark = document.documentElement.dataset.theme === 'dark';
    g.font = '12px system-ui, -apple-system, "DejaVu Sans", sans-serif';
    g.textBaseline = 'middle';
    const cw = g.measureText('m').width * 0.75;
    const scale = W / (t.w[f] || 1), x0 = t.x[f];
    const rowOf = (d) => (this.mode === 'flame' ? maxD - d : d);
    const rows = Array.from({ length: nrows }, () => []);
    let maxd = 0.001;
    if (t.diff) {
      for (let i = 1; i < t.n; i++) {
        const d = Math.abs(t.total[i] / (t.rootTotal || 1) - t.btotal[i] / (t.rootBase || 1));
        if (d > maxd) maxd = d;
      }
    }
    const fg = dark ? '#f2f2f2' : '#111';
    // colours are worked out once per tree and theme
    const ck = dark ? '_coldark' : '_collight';
    const cols = t[ck] || (t[ck] = new Array(t.n));
    let drawn = 0;
    const rect = (i, px, pw, faded) => {
      const y = rowOf(t.depth[i]) * ROW;
      let col = t.diff ? diffColor(t, i, maxd, dark) : cols[i] || (cols[i] = nodeColor(t, i, dark));
      if (this.marks && !this.marks[i]) col = dark ? '#2e333b' : '#e4e6ea';
      if (faded) col = dark ? '#3a3f48' : '#d0d4da';
      g.fillStyle = col;
      g.fillRect(px, y, Math.max(pw - (pw > 3 ? 1 : 0), 0.5), ROW - 1);
      if (i === this.sel || (this.marks && this.marks[i] && !t.diff)) {
        g.strokeStyle = i === this.sel ? (dark ? '#fff' : '#000') : (dark ? '#ffd54f' : '#b8860b');
        g.lineWidth = i === this.sel ? 2 : 1;
        g.strokeRect(px + 0.5, y + 0.5, Math.max(pw - 2, 1), ROW - 2);
      }
      if (pw > 24) {
        const max = Math.floor((pw - 6) / cw);
        let s = t.name[i];
        if (s.length > max) s = max > 2 ? s.slice(0, max - 1) + '…' : '';
        if (s) { g.fillStyle = this.marks && !this.marks[i] ? (dark ? '#8a919c' : '#777') : fg; g.fillText(s, px + 3, y + ROW / 2); }
      }
      rows[rowOf(t.depth[i])].push(px, px + pw, i);
      drawn++;
    };
    // ancestors of the focus: full width
    for (let a = t.parent[f]; a >= 0; a = t.parent[a]) rect(a, 0, W, true);
    // the focus' subtree, pruned where narrower than half a pixel
    for (let i = f; i < t.end[f];) {
      const pw = t.w[i] * scale;
      if (pw < 0.5) { i = t.end[i]; continue; }
      rect(i, (t.x[i] - x0) * scale, pw, false);
      i++;
    }
    // (each row is in x order: an ancestor of the focus is alone on its row,
    // and pre-order visits each depth left to right)
    this.rows = rows;
    this.drawn = drawn;
  }

  // the current view as an SVG document (the export button)
  svg(title) {
    const t = this.tree;
    const W = 1200;
    if (!t || !t.n) return '<svg xmlns="http://www.w3.org/2000/svg"/>';
    const f = this.focus, maxD = t.subtreeMaxDepth(f);
    const H = (maxD + 1) * ROW + 30;
    const scale = W / (t.w[f] || 1), x0 = t.x[f];
    const dark = false;
    let out = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">` +
      `<text x="4" y="16" font-size="14">${esc(title)}</text>`;
    const put = (i, px, pw) => {
      const d = t.depth[i];
      const y = 24 + (this.mode === 'flame' ? maxD - d : d) * ROW;
      const col = t.diff ? diffColor(t, i, 0.05, dark) : nodeColor(t, i, dark);
      const tip = `${t.text[i]}: ${fmtValue(t.total[i], this.unit)} (${pct(t.total[i], t.rootTotal)})`;
      out += `<g><title>${esc(tip)}</title><rect x="${px.toFixed(2)}" y="${y}" width="${Math.max(pw - 0.5, 0.5).toFixed(2)}" height="${ROW - 1}" fill="${col}"/>`;
      if (pw > 24) {
        const max = Math.floor((pw - 6) / 7);
        let s = t.name[i];
        if (s.length > max) s = max > 2 ? s.slice(0, max - 1) + '…' : '';
        out += `<text x="${(px + 3).toFixed(2)}" y="${y + 13}">${esc(s)}</text>`;
      }
      out += '</g>';
    };
    for (let a = t.parent[f]; a >= 0; a = t.parent[a]) put(a, 0, W);
    for (let i = f; i < t.end[f];) {
      const pw = t.w[i] * scale;
      if (pw < 0.5) { i = t.end[i]; continue; }
      put(i, (t.x[i] - x0) * scale, pw);
      i++;
    }
    return out + '</svg>\n';
  }
}
