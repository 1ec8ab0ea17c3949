// util.js - formatting and classification shared by the views.

export function fmtValue(v, unit) {
  if (unit === 'nanoseconds') {
    const s = v / 1e9, a = Math.abs(s);
    if (a >= 3600) return (s / 3600).toFixed(2) + ' h';
    if (a >= 60) return (s / 60).toFixed(2) + ' min';
    if (a >= 1) return s.toFixed(2) + ' s';
    if (a >= 1e-3) return (s * 1e3).toFixed(1) + ' ms';
    return (v / 1e3).toFixed(0) + ' µs';
  }
  if (unit === 'bytes') {
    const a = Math.abs(v);
    if (a >= 2 ** 30) return (v / 2 ** 30).toFixed(2) + ' GiB';
    if (a >= 2 ** 20) return (v / 2 ** 20).toFixed(2) + ' MiB';
    if (a >= 1024) return (v / 1024).toFixed(1) + ' KiB';
    return v + ' B';
  }
  return Math.round(v).toLocaleString('en-US') + (unit === 'samples' ? ' samples' : '');
}

export function pct(v, t) {
  if (!t) return '0%';
  const p = (100 * v) / t;
  return (Math.abs(p) >= 10 || p === 0 ? p.toFixed(1) : p.toFixed(2)) + '%';
}

// "name (file:line)" / "name (file)" / "name" -> {file, line}
export function splitText(text, name) {
  let inner = '';
  if (text.length > name.length + 3 && text.startsWith(name + ' (') && text.endsWith(')')) {
    inner = text.slice(name.length + 2, -1);
  }
  const m = /^(.*):(\d+)$/.exec(inner);
  return m ? { file: m[1], line: +m[2] } : { file: inner, line: 0 };
}

// Kinds, for colour: 0 app, 1 stdlib, 2 site-packages, 3 native, 4 gc/idle/other
export const KINDS = ['application', 'standard library', 'site-packages', 'native', 'gc / idle / other'];
export function kindOf(name, file) {
  // <gc>, <idle> and the like have no file (<module> has one)
  if (name === 'all' || name === 'other' || (name.startsWith('<') && !file) || /^(thread|process) /.test(name)) return 4;
  // a shared object, a C/C++/Rust source: native; no file at all (folded
  // input has none): counted as the application's
  if (!file) return /\.so(\.|$)|^\[/.test(name) ? 3 : 0;
  if (/\.so(\.|$)/.test(file) || file.startsWith('[') || /\.(c|cc|cpp|h|rs|S)$/.test(file)) return 3;
  if (/[\\/](site|dist)-packages[\\/]/.test(file)) return 2;
  if (/^<frozen /.test(file) || /[\\/]lib[\\/]python\d+(\.\d+)?t?[\\/]/.test(file) || /[\\/]lib[\\/]pypy/.test(file)) return 1;
  return 0;
}

export function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// Time arguments the API takes: now, now-1h, unix seconds; a date is turned
// into unix seconds. Returns null when it is none of these.
export function normTime(s) {
  s = (s || '').trim();
  if (!s) return null;
  if (/^now(-\d+[smhdw])?$/.test(s) || /^\d+$/.test(s)) return s;
  const d = Date.parse(s.replace(' ', 'T'));
  return Number.isNaN(d) ? null : String(Math.floor(d / 1000));
}
