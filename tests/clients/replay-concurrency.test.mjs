// Resume correctness under load: a REST writer commits ~2000 changes (8 in flight) while 4
// socket.io-client 4.x clients (websocket, polling, default with upgrade) and 4 SSE readers
// (2 `eventsource` EventSources with ?lastEventId=, 2 raw fetch streams with a Last-Event-ID
// header) keep disconnecting and reconnecting every 100-400 ms, each resuming from the last
// seq it saw. In the end every client must have seen exactly 1..N: in order, no duplicate,
// no gap, where N is the number of committed changes; socket events carry two arguments with
// args[1].type equal to the event name; and per task the versions seen grow by exactly 1
// (seq order is commit order).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { io } from 'socket.io-client';
import { rest, scrapeMetrics, metric, startServer } from './server.mjs';
import { TASK_EVENTS, sleep, uniqueTitle, waitUntil } from './sockets.mjs';
import { openRawSse } from './sse.mjs';

const TASKS = 5;
const UPDATES = 2000;
const IN_FLIGHT = 8;

let srv;
let api;

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  await srv?.stop();
});

const rand = (a, b) => a + Math.floor(Math.random() * (b - a + 1));

/** What one client saw, checked as it arrives. */
class Tally {
  constructor(label) {
    this.label = label;
    this.seqs = [];
    this.last = 0;
    this.problems = [];
    this.versions = new Map(); // task id -> last version seen
    this.connections = 0;
    this.serverDisconnects = 0;
    this.connectErrors = 0;
    this.dropReasons = [];
    this.conn = null; // { n, since, count } of the connection events currently come from
  }

  /** A new connection resuming from `since` starts delivering. */
  begin(since) {
    this.opened = (this.opened ?? 0) + 1;
    this.conn = { n: this.opened, since, count: 0 };
  }

  problem(msg) {
    if (this.problems.length < 20) this.problems.push(msg);
  }

  /** One task event: its seq, its type and the task. */
  see(seq, type, task) {
    this.seqs.push(seq);
    const c = this.conn;
    if (c) c.count += 1;
    const where = c ? ` (event #${c.count} on connection #${c.n}, opened with since=${c.since})` : '';
    if (seq !== this.last + 1) this.problem(`seq ${seq} after ${this.last}${where}`);
    this.last = Math.max(this.last, seq);
    if (!TASK_EVENTS.includes(type)) this.problem(`seq ${seq}: unexpected type ${type}`);
    if (!task || typeof task.id !== 'string') {
      this.problem(`seq ${seq}: no task in event`);
      return;
    }
    const prev = this.versions.get(task.id) ?? 0;
    if (task.version !== prev + 1) this.problem(`seq ${seq}: task ${task.id} version ${task.version} after ${prev}`);
    this.versions.set(task.id, Math.max(prev, task.version));
  }
}

/** A socket.io client that reconnects with auth.since every 100-400 ms until told to settle. */
function socketClient(url, label, transports) {
  const tally = new Tally(label);
  let socket = null;
  let settled = false;
  let stopped = false;
  let timer = null;

  function open() {
    if (stopped) return;
    const opts = { forceNew: true, reconnection: false, timeout: 10_000, auth: { since: tally.last } };
    if (transports) opts.transports = transports;
    const s = io(url, opts);
    socket = s;
    tally.begin(opts.auth.since);
    s.onAny((event, ...args) => {
      if (s !== socket) return; // a socket we already closed
      if (event === 'resync_required') {
        tally.problem(`resync_required ${JSON.stringify(args)}`);
        return;
      }
      if (!TASK_EVENTS.includes(event)) return;
      if (args.length !== 2) tally.problem(`${event} with ${args.length} args`);
      const meta = args[1] ?? {};
      if (meta.type !== event) tally.problem(`${event}: meta.type ${JSON.stringify(meta.type)}`);
      if (!Number.isInteger(meta.seq)) {
        tally.problem(`${event}: meta.seq ${JSON.stringify(meta.seq)}`);
        return;
      }
      tally.see(meta.seq, event, args[0]);
    });
    s.on('connect', () => {
      tally.connections += 1;
      schedule();
    });
    s.on('connect_error', () => {
      tally.connectErrors += 1;
      if (s === socket) { s.close(); setTimeout(open, 50); }
    });
    s.on('disconnect', (reason) => {
      if (s !== socket) return;
      // the server dropped us (e.g. as a slow consumer): resume right away
      tally.serverDisconnects += 1;
      tally.dropReasons.push(reason);
      setTimeout(open, 10);
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (settled || stopped) return;
    timer = setTimeout(() => {
      const old = socket;
      socket = null; // ignore anything the old one still delivers
      old?.close();
      open();
    }, rand(100, 400));
  }

  open();
  return {
    tally,
    transport: () => socket?.io?.engine?.transport?.name,
    settle() { settled = true; clearTimeout(timer); },
    stop() { stopped = true; clearTimeout(timer); const s = socket; socket = null; s?.close(); },
  };
}

/** An EventSource that is replaced every 100-400 ms by one opened with ?lastEventId=<last>. */
function eventSourceClient(url, label) {
  const tally = new Tally(label);
  let es = null;
  let settled = false;
  let stopped = false;
  let timer = null;

  function open() {
    if (stopped) return;
    const e = new EventSource(`${url}/api/tasks/stream?lastEventId=${tally.last}`);
    es = e;
    tally.connections += 1;
    tally.begin(tally.last);
    e.onmessage = (m) => {
      if (e !== es) return;
      let data;
      try { data = JSON.parse(m.data); } catch { tally.problem(`unparsable data ${m.data.slice(0, 100)}`); return; }
      if (data.type === 'resync_required') { tally.problem(`resync_required ${m.data}`); return; }
      const seq = Number(m.lastEventId);
      if (!Number.isInteger(seq) || String(seq) !== m.lastEventId) { tally.problem(`bad id ${JSON.stringify(m.lastEventId)}`); return; }
      tally.see(seq, data.type, data.task);
    };
    e.onerror = () => { tally.connectErrors += 1; };
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (settled || stopped) return;
    timer = setTimeout(() => {
      const old = es;
      es = null;
      old?.close();
      open();
    }, rand(100, 400));
  }

  open();
  return {
    tally,
    settle() { settled = true; clearTimeout(timer); },
    stop() { stopped = true; clearTimeout(timer); const e = es; es = null; e?.close(); },
  };
}

/** A raw fetch stream reopened every 100-400 ms with a Last-Event-ID header. */
function rawSseClient(url, label) {
  const tally = new Tally(label);
  let current = null;
  let settled = false;
  let stopped = false;
  let timer = null;
  let seen = 0; // events consumed from `current`

  async function open() {
    if (stopped) return;
    let s;
    const since = tally.last;
    try {
      s = await openRawSse(`${url}/api/tasks/stream`, { headers: { 'Last-Event-ID': String(since) } });
    } catch {
      tally.connectErrors += 1;
      setTimeout(open, 50);
      return;
    }
    if (stopped) { s.close(); return; }
    tally.connections += 1;
    tally.begin(since);
    current = s;
    seen = 0;
    pump(s);
    schedule();
  }

  async function pump(s) {
    while (current === s) {
      while (seen < s.events.length && current === s) {
        const b = s.events[seen++];
        if (b.json?.type === 'resync_required') { tally.problem(`resync_required ${b.data}`); continue; }
        const seq = Number(b.id);
        if (!Number.isInteger(seq) || String(seq) !== b.id) { tally.problem(`bad id ${JSON.stringify(b.id)}`); continue; }
        tally.see(seq, b.json?.type, b.json?.task);
      }
      if (s.closed && current === s) {
        // the server ended the stream: resume
        tally.serverDisconnects += 1;
        current = null;
        setTimeout(open, 10);
        return;
      }
      await sleep(5);
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (settled || stopped) return;
    timer = setTimeout(() => {
      const old = current;
      current = null;
      old?.close();
      open();
    }, rand(100, 400));
  }

  open();
  return {
    tally,
    settle() { settled = true; clearTimeout(timer); },
    stop() { stopped = true; clearTimeout(timer); const s = current; current = null; s?.close(); },
  };
}

test(`${UPDATES} REST changes while 8 clients keep reconnecting: every client sees exactly 1..N`, { timeout: 60_000 }, async () => {
  const clients = [
    socketClient(srv.url, 'socket websocket #1', ['websocket']),
    socketClient(srv.url, 'socket polling', ['polling']),
    socketClient(srv.url, 'socket websocket #2', ['websocket']),
    socketClient(srv.url, 'socket default (upgrade)', undefined),
    eventSourceClient(srv.url, 'EventSource ?lastEventId #1'),
    eventSourceClient(srv.url, 'EventSource ?lastEventId #2'),
    rawSseClient(srv.url, 'fetch Last-Event-ID #1'),
    rawSseClient(srv.url, 'fetch Last-Event-ID #2'),
  ];
  try {
    await sleep(300); // let them start; they resume from 0 either way

    const t0 = Date.now();
    let committed = 0;
    const failures = [];
    const tasks = [];
    for (let i = 0; i < TASKS; i++) {
      tasks.push(await api.createTask({ title: uniqueTitle(`replay-${i}`) }));
      committed += 1;
    }
    let next = 0;
    async function writer() {
      while (next < UPDATES) {
        const i = next++;
        try {
          await api.updateTask(tasks[i % TASKS].id, { description: `u${i}`, status: ['pending', 'in_progress', 'completed'][i % 3] });
          committed += 1;
        } catch (e) {
          failures.push(e.message);
        }
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, writer));
    const writeMs = Date.now() - t0;
    assert.deepEqual(failures.slice(0, 5), [], `REST updates failed (${failures.length})`);
    const N = committed;
    assert.equal(N, TASKS + UPDATES);

    // a little more churn after the writer stopped, then let everyone settle and catch up
    await sleep(500);
    for (const c of clients) c.settle();
    const t1 = Date.now();
    try {
      await waitUntil(() => clients.every((c) => c.tally.last >= N), 20_000,
        () => `all clients at seq ${N}: ${clients.map((c) => `${c.tally.label}=${c.tally.last}`).join(', ')}`);
    } finally {
      const m = await scrapeMetrics(srv.url).catch(() => ({}));
      console.log(`writer: ${N} changes in ${writeMs} ms; catch-up after settle: ${Date.now() - t1} ms; ` +
        `replayed socket=${metric(m, 'taskwire_events_replayed_total', { transport: 'socket' })} ` +
        `sse=${metric(m, 'taskwire_events_replayed_total', { transport: 'sse' })}; ` +
        `slow consumers socket=${metric(m, 'taskwire_slow_consumers_total', { transport: 'socket' })} ` +
        `sse=${metric(m, 'taskwire_slow_consumers_total', { transport: 'sse' })}`);
      for (const c of clients) {
        const t = c.tally;
        console.log(`  ${t.label}: ${t.seqs.length} events, last ${t.last}, ${t.connections} connections, ` +
          `${t.serverDisconnects} server-side drops${t.dropReasons.length ? ` (${[...new Set(t.dropReasons)].join(', ')})` : ''}, ` +
          `${t.connectErrors} errors, ${t.problems.length} problems`);
      }
    }
    await sleep(300); // nothing may follow N

    const expected = Array.from({ length: N }, (_, i) => i + 1);
    for (const c of clients) {
      const t = c.tally;
      assert.deepEqual(t.problems, [], `${t.label}: problems`);
      assert.ok(t.connections >= 5, `${t.label}: only ${t.connections} connections - the churn did not happen`);
      assert.equal(t.seqs.length, N, `${t.label}: ${t.seqs.length} events for ${N} changes`);
      assert.deepEqual(t.seqs, expected, `${t.label}: seq list is not exactly 1..${N}`);
      for (const task of tasks) {
        assert.equal(t.versions.get(task.id), 1 + UPDATES / TASKS, `${t.label}: last version of ${task.id}`);
      }
    }
  } finally {
    for (const c of clients) c.stop();
  }
});
