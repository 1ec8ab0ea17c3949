// app.js - a small Node.js program profiled by the real Pyroscope SDK
// (@pyroscope/nodejs, pinned in package-lock.json), pushing to the server
// named by PYROSCOPE_URL; used by tests/integration/test_querier.py.
// Static tag env=dev; dynamic tag endpoint=/fast or /slow via wrapWithLabels.
'use strict';
const Pyroscope = require('@pyroscope/nodejs');

Pyroscope.init({
  serverAddress: process.env.PYROSCOPE_URL,
  appName: 'nodeapp',
  tags: { env: 'dev' },
  flushIntervalMs: 1000,
  wall: { collectCpuTime: true },
  heap: { samplingIntervalBytes: 4096 },
});
Pyroscope.start();

const keep = [];
function slowHandler() {
  let x = 0;
  for (let i = 0; i < 3e6; i++) x += Math.sqrt(i);
  keep.push(new Array(2000).fill(x));
  if (keep.length > 200) keep.splice(0, 100);
}
function fastHandler() {
  let x = 0;
  for (let i = 0; i < 1e6; i++) x += i % 7;
  keep.push({ v: x, s: 'x'.repeat(1000) });
}

const until = Date.now() + Number(process.env.RUN_MS || 3000);
function tick() {
  if (Date.now() >= until) {
    Pyroscope.stop().then(() => process.exit(0));
    return;
  }
  Pyroscope.wrapWithLabels({ endpoint: '/slow' }, slowHandler);
  Pyroscope.wrapWithLabels({ endpoint: '/fast' }, fastHandler);
  setImmediate(tick);
}
tick();
