#!/usr/bin/env node
// Drives headless Chromium (through playwright-core) against the `h2_echo` example server and
// checks that it serves WebSocket over HTTP/2 (RFC 8441 extended CONNECT) and over HTTP/1.1.
// See README.md in this directory. Exits non-zero if any check fails.
//
//   node h2_chromium.mjs [--url https://localhost:9444/] [--ws-url wss://localhost:9444/ws]
//                        [--mode both|h2|h1] [--log /path/to/h2_echo.stderr.log]
//                        [--chromium /usr/bin/chromium] [--arg <extra chromium arg>]...
//                        [--timeout 30000]

import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Arguments.

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node h2_chromium.mjs [--url URL] [--ws-url URL] [--mode both|h2|h1] ' +
    '[--log FILE] [--chromium PATH] [--arg CHROMIUM_ARG]... [--timeout MS] [--headed]');
  process.exit(2);
}

const opts = {
  url: process.env.H2_ECHO_URL || 'https://localhost:9444/',
  wsUrl: null,
  mode: 'both',
  log: process.env.H2_ECHO_LOG || null,
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  extraArgs: [],
  timeout: 30000,
  headless: true,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
  switch (a) {
    case '--url': opts.url = val(); break;
    case '--ws-url': opts.wsUrl = val(); break;
    case '--port': { const u = new URL(opts.url); u.port = val(); opts.url = u.toString(); break; }
    case '--mode': opts.mode = val(); break;
    case '--log': opts.log = val(); break;
    case '--chromium': opts.chromium = val(); break;
    case '--arg': opts.extraArgs.push(val()); break;
    case '--timeout': opts.timeout = Number(val()); break;
    case '--headed': opts.headless = false; break;
    case '-h': case '--help': usage();
    default: usage(`unknown argument ${a}`);
  }
}
if (!['both', 'h2', 'h1'].includes(opts.mode)) usage(`bad --mode ${opts.mode}`);
if (!opts.wsUrl) {
  const u = new URL('/ws', opts.url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  opts.wsUrl = u.toString();
}
if (opts.log && !existsSync(opts.log)) usage(`--log ${opts.log} does not exist`);

// ---------------------------------------------------------------------------------------------
// playwright-core: resolved normally, then from $PLAYWRIGHT_CORE (a path to the package), then
// from the current directory (so running from a scratch dir with node_modules works).

async function loadPlaywright() {
  try { return await import('playwright-core'); } catch {}
  const candidates = [];
  if (process.env.PLAYWRIGHT_CORE) candidates.push(process.env.PLAYWRIGHT_CORE);
  try { candidates.push(createRequire(join(process.cwd(), 'noop.js')).resolve('playwright-core')); } catch {}
  for (const c of candidates) {
    try {
      let p = c;
      if (existsSync(join(c, 'package.json'))) p = createRequire(join(c, 'noop.js')).resolve(c);
      return await import(pathToFileURL(p).href);
    } catch {}
  }
  console.error('error: playwright-core not found; run from a directory where `npm install ' +
    'playwright-core` was done, or set PLAYWRIGHT_CORE=/path/to/node_modules/playwright-core');
  process.exit(2);
}
const pw = await loadPlaywright();
const chromium = pw.chromium ?? pw.default?.chromium;

// ---------------------------------------------------------------------------------------------
// Checks.

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures++;
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const logSize = () => (opts.log ? readFileSync(opts.log).length : 0);
const logSince = (offset) => (opts.log ? readFileSync(opts.log).subarray(offset).toString('utf8') : '');

// Runs in the page: opens the WebSocket, echoes a few messages, closes with 1000.
async function pageTest({ wsUrl, timeout }) {
  const out = { steps: [] };
  const deadline = (p, what) => Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error(`timeout waiting for ${what}`)), timeout))]);
  const nav = performance.getEntriesByType('navigation')[0];
  out.pageProtocol = nav ? nav.nextHopProtocol : null;

  const ws = new WebSocket(wsUrl);
  ws.binaryType = 'arraybuffer';
  const queue = [];
  let waiter = null;
  ws.onmessage = (e) => { if (waiter) { const w = waiter; waiter = null; w(e.data); } else queue.push(e.data); };
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
  });
  let errored = false;
  ws.onerror = () => { errored = true; };
  const next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiter = r; });

  try {
    await deadline(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      closed.then((c) => reject(new Error(`closed before open: ${JSON.stringify(c)}`)));
    }), 'open');
  } catch (e) {
    out.openError = String(e.message || e);
    out.close = await Promise.race([closed, new Promise((r) => setTimeout(() => r(null), 1000))]);
    return out;
  }
  out.extensions = ws.extensions;
  out.protocol = ws.protocol;

  const eqBytes = (a, b) => {
    if (!(a instanceof ArrayBuffer) || a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a), y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  const big = 'wsproto h2_echo ' .repeat(65536); // 1 MiB of text
  const unicode = 'héllo wörld — ✓ 🚀 你好';
  const bin = new Uint8Array(100 * 1024);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 2654435761) >>> 24; // deterministic, not all-zero
  const randomBin = crypto.getRandomValues(new Uint8Array(60000));
  const cases = [
    ['text "hello"', 'hello'],
    ['text (unicode)', unicode],
    ['text empty', ''],
    ['text 1 MiB', big],
    ['binary 100 KiB ArrayBuffer', bin.buffer],
    ['binary 60000 random bytes', randomBin.buffer],
    ['text after binary', 'bye'],
  ];
  for (const [name, msg] of cases) {
    const t0 = performance.now();
    ws.send(msg);
    let got, err = null;
    try { got = await deadline(next(), `echo of ${name}`); } catch (e) { err = String(e.message || e); }
    const size = typeof msg === 'string' ? msg.length : msg.byteLength;
    const ok = !err && (typeof msg === 'string' ? got === msg : eqBytes(got, msg));
    out.steps.push({ name, ok, size, ms: Math.round(performance.now() - t0), err,
      gotType: got === undefined ? 'none' : (typeof got === 'string' ? 'text' : 'binary'),
      gotSize: got === undefined ? 0 : (typeof got === 'string' ? got.length : got.byteLength) });
    if (err) break;
  }
  // Several messages in flight at once, echoed in order.
  {
    const n = 20, msgs = Array.from({ length: n }, (_, i) => `pipelined ${i} ` + 'x'.repeat(i * 1000));
    msgs.forEach((m) => ws.send(m));
    let ok = true, err = null;
    for (const m of msgs) {
      try { if ((await deadline(next(), 'pipelined echo')) !== m) ok = false; } catch (e) { ok = false; err = String(e.message || e); break; }
    }
    out.steps.push({ name: `${n} pipelined text messages`, ok, size: n, err, gotType: 'in order', gotSize: ok ? n : 'mismatch' });
  }

  ws.close(1000, 'done');
  try { out.close = await deadline(closed, 'close'); } catch (e) { out.closeError = String(e.message || e); }
  out.errored = errored;
  return out;
}

// Runs in the page: three WebSockets at once (on HTTP/2 they share the page's connection as
// separate streams), interleaved messages, each closed with its own code, echoed by the server.
async function pageConcurrent({ wsUrl, timeout }) {
  const codes = [[1000, 'one'], [3000, 'two'], [4999, 'three \u2713']];
  const deadline = (p, what) => Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error(`timeout waiting for ${what}`)), timeout))]);
  const socks = codes.map(() => {
    const ws = new WebSocket(wsUrl);
    const s = { ws, got: [], closed: null };
    ws.onmessage = (e) => s.got.push(e.data);
    s.closed = new Promise((r) => { ws.onclose = (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
    s.opened = new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('error event')); });
    return s;
  });
  const out = [];
  try { await deadline(Promise.all(socks.map((s) => s.opened)), 'open of 3 sockets'); }
  catch (e) { return { error: String(e.message || e) }; }
  const n = 10;
  for (let i = 0; i < n; i++) socks.forEach((s, k) => s.ws.send(`socket ${k} message ${i}`));
  const t0 = Date.now();
  while (socks.some((s) => s.got.length < n) && Date.now() - t0 < timeout) await new Promise((r) => setTimeout(r, 20));
  socks.forEach((s, k) => s.ws.close(codes[k][0], codes[k][1]));
  for (const [k, s] of socks.entries()) {
    let close;
    try { close = await deadline(s.closed, `close of socket ${k}`); } catch (e) { close = { error: String(e.message || e) }; }
    const echoOk = s.got.length === n && s.got.every((m, i) => m === `socket ${k} message ${i}`);
    out.push({ k, echoOk, got: s.got.length, sentCode: codes[k][0], sentReason: codes[k][1], close });
  }
  return { sockets: out };
}

async function run(mode) {
  const h2 = mode === 'h2';
  console.log(`\n=== ${h2 ? 'HTTP/2 (RFC 8441)' : 'HTTP/1.1 (--disable-http2)'}: ${opts.url} then ${opts.wsUrl}`);
  const args = ['--ignore-certificate-errors', '--no-sandbox', ...opts.extraArgs];
  if (!h2) args.push('--disable-http2');
  const browser = await chromium.launch({ executablePath: opts.chromium, headless: opts.headless, args });
  console.log(`chromium ${browser.version()} args: ${args.join(' ')}`);
  const offset = logSize();
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.on('console', (m) => console.log(`  [page console] ${m.text()}`));

    // DevTools view of the WebSocket handshake: 101 over HTTP/1.1, 200 over HTTP/2.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const handshake = { request: null, response: null, frameErrors: [] };
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => { handshake.request = e.request; });
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => { handshake.response = e.response; });
    cdp.on('Network.webSocketFrameError', (e) => { handshake.frameErrors.push(e.errorMessage); });

    const resp = await page.goto(opts.url, { waitUntil: 'load', timeout: opts.timeout });
    check(resp && resp.ok(), 'page loaded', resp ? `HTTP ${resp.status()}` : 'no response');
    const result = await page.evaluate(pageTest, { wsUrl: opts.wsUrl, timeout: opts.timeout });

    const wantPage = h2 ? 'h2' : 'http/1.1';
    check(result.pageProtocol === wantPage, `page nextHopProtocol is ${wantPage}`, String(result.pageProtocol));
    if (!check(!result.openError, 'WebSocket opened', result.openError || '')) {
      if (result.close) console.log(`  close event: ${JSON.stringify(result.close)}`);
    } else {
      check(/permessage-deflate/.test(result.extensions), 'permessage-deflate negotiated',
        JSON.stringify(result.extensions));
      for (const s of result.steps) {
        check(s.ok, `echo ${s.name}`, s.err ? s.err
          : `sent ${s.size}, got ${s.gotType ?? ''} ${s.gotSize ?? ''}${s.ms !== undefined ? ` in ${s.ms} ms` : ''}`);
      }
      check(!result.closeError && result.close && result.close.code === 1000,
        'close event code 1000', result.closeError || JSON.stringify(result.close));
      check(result.close && result.close.wasClean, 'close was clean (wasClean)', String(result.close?.wasClean));
      check(!result.errored, 'no error event on the WebSocket');
    }

    const conc = await page.evaluate(pageConcurrent, { wsUrl: opts.wsUrl, timeout: opts.timeout });
    if (check(!conc.error, '3 concurrent WebSockets opened', conc.error || '')) {
      for (const c of conc.sockets) {
        check(c.echoOk, `concurrent socket ${c.k}: 10 interleaved echoes`, `got ${c.got}`);
        check(c.close.code === c.sentCode && c.close.reason === c.sentReason && c.close.wasClean,
          `concurrent socket ${c.k}: close ${c.sentCode} echoed by server`, JSON.stringify(c.close));
      }
    }

    // A WebSocket left open when the page navigates away: the browser drops it (1001 going
    // away), and the server must notice (its "closed" log line).
    const abrupt = await page.evaluate(({ wsUrl, timeout }) => new Promise((resolve) => {
      const ws = new WebSocket(wsUrl);
      const t = setTimeout(() => resolve('timeout'), timeout);
      ws.onopen = () => ws.send('still open');
      ws.onmessage = (e) => { clearTimeout(t); resolve(e.data); };
      ws.onerror = () => { clearTimeout(t); resolve('error'); };
    }), { wsUrl: opts.wsUrl, timeout: opts.timeout });
    check(abrupt === 'still open', 'WebSocket left open before navigating away: echo', abrupt);
    await page.goto('about:blank');

    await sleep(300);
    const status = handshake.response?.status;
    check(status === (h2 ? 200 : 101), `DevTools handshake status ${h2 ? 200 : 101}`,
      `${status} ${handshake.response?.statusText ?? ''}`.trim());
    if (handshake.response?.headers) {
      const ext = Object.entries(handshake.response.headers)
        .filter(([k]) => k.toLowerCase() === 'sec-websocket-extensions').map(([, v]) => v);
      console.log(`  handshake response sec-websocket-extensions: ${JSON.stringify(ext)}`);
    }
    if (handshake.frameErrors.length) check(false, 'no DevTools WebSocket frame errors', handshake.frameErrors.join('; '));
    await context.close();
  } finally {
    await browser.close();
  }

  if (opts.log) {
    // The server logs "PEER: WebSocket over HTTP/x" on open and "... closed" at the end.
    let text = logSince(offset);
    const count = (re) => (text.match(re) || []).length;
    // Over HTTP/2 the server lingers (SessionConfig::linger, 2 s) after the closing handshake
    // for an END_STREAM that Chromium never sends, so "closed" comes about 2 s late: wait up to 6 s.
    for (let i = 0; i < 60 && count(/ closed$/mg) < 5; i++) { await sleep(100); text = logSince(offset); }
    const want = h2 ? 'HTTP/2' : 'HTTP/1.1', other = h2 ? 'HTTP/1.1' : 'HTTP/2';
    const lines = text.split('\n').filter(Boolean);
    console.log('  server log during this run:');
    for (const l of lines) console.log(`    | ${l}`);
    const opened = lines.filter((l) => l.endsWith(`WebSocket over ${want}`));
    const closed = lines.filter((l) => l.endsWith(`WebSocket over ${want} closed`));
    // 1 (messages) + 3 (concurrent) + 1 (navigated away) WebSockets.
    check(opened.length === 5, `server log: 5 x "WebSocket over ${want}"`, `${opened.length}`);
    check(!lines.some((l) => l.includes(`WebSocket over ${other}`)), `server log: no "WebSocket over ${other}"`);
    check(closed.length === 5, `server log: 5 x "WebSocket over ${want} closed"`, `${closed.length}`);
    const peers = new Set(opened.map((l) => l.split(': ')[0]));
    console.log(`  distinct client addresses (TCP connections) for the WebSockets: ${peers.size} (${[...peers].join(', ')})`);
    if (h2) check(peers.size === 1, 'all WebSockets multiplexed on one HTTP/2 connection', `${peers.size} connections`);
    const other_lines = lines.filter((l) => !/WebSocket over HTTP\/(2|1\.1)( closed)?$/.test(l));
    check(other_lines.length === 0, 'server log: no other lines (errors)', other_lines.join(' / '));
  }
}

const modes = opts.mode === 'both' ? ['h2', 'h1'] : [opts.mode];
for (const m of modes) {
  try { await run(m); } catch (e) { check(false, `${m} run`, String(e.stack || e)); }
}
console.log(`\n${failures ? `${failures} check(s) FAILED` : 'all checks passed'}`);
process.exit(failures ? 1 : 0);
