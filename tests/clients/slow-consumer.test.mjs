// Slow consumers must not hurt anyone else. Three normal clients (socket.io websocket,
// socket.io polling, EventSource) measure delivery latency of REST updates whose description
// starts with the send time. Phase A: 200 updates, normal clients only. Phase B: clients that
// stop reading are added (an SSE stream on a raw TCP socket that never reads, a socket.io
// websocket whose TCP socket is paused, and the same with auth.since), then 3000 updates with
// ~2 KB of padding each so every buffer on the way fills. The normal clients must still get
// every update with a p50 latency within 3x of phase A (+5 ms), the server's RSS must grow by
// less than 100 MB, and /metrics must count slow consumers.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { metric, rest, scrapeMetrics, startServer } from './server.mjs';
import { closeAll, connectV4Recorded, sleep, uniqueTitle, waitUntil } from './sockets.mjs';
import { SseParser, esReady } from './sse.mjs';

const PHASE_A = 200;
const PHASE_B = 3000;
const IN_FLIGHT = 4;
const PAD = 'x'.repeat(2048);

let srv;
let api;
const cleanup = [];

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  for (const f of cleanup.reverse()) {
    try { f(); } catch { /* ignore */ }
  }
  const st = await srv?.stop();
  console.log(`server stop: ${JSON.stringify(st)}`);
});

function rssKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.at(-1) };
}
const fmt = (st) => `n=${st.n} p50=${st.p50}ms p90=${st.p90}ms p99=${st.p99}ms max=${st.max}ms`;

/** A normal client: collects (version, latency) for updates of `taskId`. */
function latencyLog(label) {
  return { label, byVersion: new Map(), dup: 0 };
}
function note(log, task) {
  const sent = Number(String(task.description).split(':', 1)[0]);
  if (!Number.isFinite(sent)) return;
  if (log.byVersion.has(task.version)) log.dup += 1;
  log.byVersion.set(task.version, Date.now() - sent);
}

async function writeUpdates(taskId, count, firstVersion) {
  let next = 0;
  const failures = [];
  async function worker() {
    while (next < count) {
      next += 1;
      try {
        await api.updateTask(taskId, { description: `${Date.now()}:${PAD}` }, 'PATCH');
      } catch (e) {
        failures.push(e.message);
      }
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  assert.deepEqual(failures.slice(0, 3), [], `${failures.length} REST updates failed`);
  return { from: firstVersion, to: firstVersion + count - 1 };
}

/**
 * An SSE client that stops reading right after the response headers: the response is paused,
 * so Node stops reading the TCP socket once its small buffer is full. `resume()` starts
 * parsing what arrives from then on.
 */
function stalledSse(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/api/tasks/stream`, { headers: { accept: 'text/event-stream' } }, (res) => {
      // The timeout below is for the headers only: a stalled socket is idle by design, and on
      // a busy machine phase B outlasts any idle timeout, which would destroy the stream.
      req.setTimeout(0);
      res.pause();
      const events = [];
      resolve({
        res,
        events,
        resume() {
          const parser = new SseParser((b) => { if (b.data !== undefined) events.push(b); });
          res.setEncoding('utf8');
          res.on('data', (d) => parser.push(d));
          res.resume();
        },
        destroy() { req.destroy(); },
      });
    });
    req.setTimeout(10_000, () => { req.destroy(); reject(new Error('stalled SSE client: no response headers')); });
    req.once('error', reject);
  });
}

/** socket.io-client over websocket whose TCP socket stops being read once connected. */
async function stalledSocket(url, opts, label) {
  const { socket, rec } = await connectV4Recorded(url, { transports: ['websocket'], ...opts }, label);
  const tcp = socket.io.engine?.transport?.ws?._socket;
  assert.ok(tcp && typeof tcp.pause === 'function', `${label}: cannot reach the websocket's TCP socket`);
  tcp.pause();
  socket.rec = rec;
  socket.tcp = tcp;
  socket.disconnectReason = null;
  socket.on('disconnect', (reason) => { socket.disconnectReason = reason; });
  // closing it later must not wait for ws's 30 s close handshake on a socket nobody reads
  cleanup.push(() => tcp.destroy());
  return socket;
}

test('stalled SSE and socket.io clients do not slow down or starve the others; memory stays bounded', { timeout: 90_000 }, async () => {
  const task = await api.createTask({ title: uniqueTitle('slow-consumer') });

  // --- normal clients -------------------------------------------------------------------
  const wsLog = latencyLog('socket.io websocket');
  const pollLog = latencyLog('socket.io polling');
  const sseLog = latencyLog('EventSource');
  const ws = await connectV4Recorded(srv.url, { transports: ['websocket'] }, wsLog.label);
  const poll = await connectV4Recorded(srv.url, { transports: ['polling'] }, pollLog.label);
  cleanup.push(() => closeAll([ws.socket, poll.socket]));
  for (const [c, log] of [[ws, wsLog], [poll, pollLog]]) {
    c.socket.on('task_updated', (t) => { if (t?.id === task.id) note(log, t); });
  }
  const es = new EventSource(`${srv.url}/api/tasks/stream`);
  cleanup.push(() => es.close());
  es.onmessage = (e) => {
    const d = JSON.parse(e.data);
    if (d.type === 'task_updated' && d.task.id === task.id) note(sseLog, d.task);
  };
  await esReady(es);
  const normal = [wsLog, pollLog, sseLog];

  const waitAll = (range, ms) => waitUntil(
    () => normal.every((l) => l.byVersion.has(range.to)),
    ms,
    () => `v${range.to} at every normal client: ${normal.map((l) => `${l.label}=${Math.max(0, ...l.byVersion.keys())}`).join(', ')}`,
  );
  const phaseStats = (range) => {
    const all = [];
    const per = {};
    for (const l of normal) {
      const xs = [];
      for (let v = range.from; v <= range.to; v++) if (l.byVersion.has(v)) xs.push(l.byVersion.get(v));
      per[l.label] = stats(xs);
      all.push(...xs);
    }
    return { all: stats(all), per };
  };

  // --- phase A --------------------------------------------------------------------------
  const tA = Date.now();
  const a = await writeUpdates(task.id, PHASE_A, 2);
  await waitAll(a, 10_000);
  const A = phaseStats(a);
  console.log(`phase A: ${PHASE_A} updates in ${Date.now() - tA} ms; all normal clients ${fmt(A.all)}`);
  for (const [k, v] of Object.entries(A.per)) console.log(`  ${k}: ${fmt(v)}`);

  // --- stalled clients ------------------------------------------------------------------
  const before = await scrapeMetrics(srv.url);
  const sseStalled = await stalledSse(srv.url);
  cleanup.push(() => sseStalled.destroy());
  const sockStalled = await stalledSocket(srv.url, {}, 'stalled socket.io websocket');
  const seqStalled = await stalledSocket(srv.url, { auth: { since: a.to } }, 'stalled socket.io websocket (since)');
  cleanup.push(() => closeAll([sockStalled, seqStalled])); // runs before the tcp.destroy() calls
  await sleep(300);
  const streamsGauge = metric(await scrapeMetrics(srv.url), 'taskwire_sse_streams');
  assert.ok(streamsGauge >= 2, `taskwire_sse_streams should count the EventSource and the stalled stream, is ${streamsGauge}`);

  // --- phase B --------------------------------------------------------------------------
  const rss0 = rssKb(srv.pid);
  let rssMax = rss0;
  const sampler = setInterval(() => { try { rssMax = Math.max(rssMax, rssKb(srv.pid)); } catch { /* exited */ } }, 100);
  let B;
  let rss1;
  const tB = Date.now();
  try {
    const b = await writeUpdates(task.id, PHASE_B, a.to + 1);
    const writeMs = Date.now() - tB;
    await waitAll(b, 20_000);
    rss1 = rssKb(srv.pid);
    B = phaseStats(b);
    console.log(`phase B: ${PHASE_B} updates (~${PAD.length + 14} B descriptions) in ${writeMs} ms; all normal clients ${fmt(B.all)}`);
    for (const [k, v] of Object.entries(B.per)) console.log(`  ${k}: ${fmt(v)}`);
    for (const l of normal) {
      const missing = [];
      for (let v = b.from; v <= b.to; v++) if (!l.byVersion.has(v)) missing.push(v);
      assert.deepEqual(missing.slice(0, 20), [], `${l.label}: ${missing.length} of ${PHASE_B} updates missing`);
      assert.equal(l.dup, 0, `${l.label}: ${l.dup} duplicate deliveries`);
    }
  } finally {
    clearInterval(sampler);
    rssMax = Math.max(rssMax, rss1 ?? 0);
    console.log(`server RSS: before phase B ${(rss0 / 1024).toFixed(1)} MB, after ${((rss1 ?? NaN) / 1024).toFixed(1)} MB, ` +
      `peak ${(rssMax / 1024).toFixed(1)} MB (growth ${((rssMax - rss0) / 1024).toFixed(1)} MB)`);
    const m = await scrapeMetrics(srv.url).catch(() => ({}));
    const show = (name) => ['socket', 'sse'].map((t) => `${t}=${metric(m, name, { transport: t }) - metric(before, name, { transport: t })}`).join(' ');
    console.log(`metrics during phase B: slow_consumers ${show('taskwire_slow_consumers_total')}; ` +
      `events_replayed ${show('taskwire_events_replayed_total')}; resync_required ${show('taskwire_resync_required_total')}; ` +
      `sse_streams=${metric(m, 'taskwire_sse_streams')}`);
    const dropped = (srv.stderr().match(/disconnecting a socket that fell behind/g) ?? []).length;
    console.log(`server log: ${dropped} "disconnecting a socket that fell behind" (the stalled auth.since socket)`);
  }

  const limit = 3 * A.all.p50 + 5;
  assert.ok(B.all.p50 <= limit, `phase B p50 ${B.all.p50} ms > 3 x phase A p50 ${A.all.p50} ms + 5 ms = ${limit} ms`);
  for (const [k, v] of Object.entries(B.per)) {
    const lim = 3 * A.per[k].p50 + 5;
    assert.ok(v.p50 <= lim, `${k}: phase B p50 ${v.p50} ms > 3 x phase A p50 ${A.per[k].p50} ms + 5 ms = ${lim} ms`);
  }
  assert.ok(rssMax - rss0 < 100 * 1024, `server RSS grew by ${((rssMax - rss0) / 1024).toFixed(1)} MB during phase B`);
  const m = await scrapeMetrics(srv.url);
  const slow = ['socket', 'sse'].map((t) => metric(m, 'taskwire_slow_consumers_total', { transport: t }));
  assert.ok(slow.some((x) => x > 0), `taskwire_slow_consumers_total is 0 for every transport (socket=${slow[0]}, sse=${slow[1]})`);

  // the server is still healthy for everyone else
  const t2 = await api.updateTask(task.id, { description: `${Date.now()}:after` });
  await waitUntil(() => normal.every((l) => l.byVersion.has(t2.version)), 5_000, 'an update after phase B at every normal client');

  // the stalled SSE stream reads again: it catches up (from the log) without a gap or repeat
  const seqLatest = t2.version; // one task: seq = its version
  sseStalled.resume();
  await waitUntil(() => sseStalled.events.at(-1)?.id === String(seqLatest), 15_000,
    () => `stalled SSE stream to catch up to ${seqLatest}, at ${sseStalled.events.at(-1)?.id} after ${sseStalled.events.length} events`);
  const ids = sseStalled.events.map((e) => Number(e.id));
  const first = ids[0];
  assert.equal(first, a.to + 1, `stalled SSE stream's first event should be the first update after it connected`);
  assert.deepEqual(ids, Array.from({ length: seqLatest - first + 1 }, (_, i) => first + i), 'stalled SSE stream: consecutive ids after catching up');
  const m2 = await scrapeMetrics(srv.url);
  console.log(`stalled SSE stream caught up: ${ids.length} events (${first}..${seqLatest}); ` +
    `slow_consumers sse=${metric(m2, 'taskwire_slow_consumers_total', { transport: 'sse' })}, ` +
    `events_replayed sse=${metric(m2, 'taskwire_events_replayed_total', { transport: 'sse' })}`);

  // the stalled auth.since socket reads again. A socket that asked for sequence numbers must
  // never see a gap on a live connection: either it got everything, or the server dropped it
  // (so it reconnects with `since` and catches up from the log).
  seqStalled.tcp.resume();
  await waitUntil(() => seqStalled.disconnectReason !== null
    || seqStalled.rec.log.at(-1)?.args?.[1]?.seq === seqLatest, 3_000,
  () => `the stalled since socket to reach seq ${seqLatest} or be disconnected`).catch(() => {});
  // one more live change: a socket still in the sequence room receives it
  const t3 = await api.updateTask(task.id, { description: `${Date.now()}:after resume` });
  await waitUntil(() => normal.every((l) => l.byVersion.has(t3.version)), 5_000, 'the update after resuming at every normal client');
  await sleep(300);
  const got = seqStalled.rec.log.filter((e) => e.event === 'task_updated').map((e) => e.args[1]?.seq);
  const gaps = [];
  for (let i = 1; i < got.length; i++) if (got[i] !== got[i - 1] + 1) gaps.push(`${got[i - 1]}->${got[i]}`);
  console.log(`stalled since socket after resuming: ${got.length} events (${got[0]}..${got.at(-1)}), gaps [${gaps.slice(0, 5).join(', ')}${gaps.length > 5 ? ', …' : ''}], ` +
    `connected=${seqStalled.connected}, disconnect reason=${seqStalled.disconnectReason}`);
  assert.equal(got[0], a.to + 1, 'the since socket starts right after its since');
  assert.deepEqual(gaps, [], `the stalled auth.since socket saw a gap on a live connection ` +
    `(${got.length} events, connected=${seqStalled.connected}, disconnect=${seqStalled.disconnectReason})`);
  assert.ok(got.at(-1) === t3.version || seqStalled.disconnectReason !== null,
    `the stalled auth.since socket neither got everything (last ${got.at(-1)} of ${t3.version}) nor was disconnected`);
});
