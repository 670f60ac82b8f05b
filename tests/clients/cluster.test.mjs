// Three taskwire processes on one Postgres database and one Redis, reached directly and
// through nginx configured from examples/cluster/nginx.conf, with default settings apart from
// the cluster ones. Two workspaces; socket.io-client 4 over WebSocket (directly on each
// process), the default polling-then-upgrade and polling-only (through nginx), python-socketio
// (WebSocket on process 2, its default polling-then-upgrade on process 3), EventSource
// (directly and through nginx). Every write goes over REST to one of the processes in turn.
//
// After each step, every client has every event of its workspace exactly once, in seq order
// (seq 1..n, SSE ids 1..n), and nothing of the other workspace:
//   1. 3 000 concurrent updates spread over the three processes;
//   2. a client leaves process 1 and comes back on process 3 with its last seq;
//   3. Redis is killed and restarted while updates go on (/readyz 503 meanwhile);
//   4. process 1 is killed with kill -9 while updates go on; its clients move to another
//      process (directly, or through nginx by reconnecting) with their last seq.
// Jobs and notifications taken over after kill -9, presence and job_progress across
// processes are in tests/cluster.rs.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { io } from 'socket.io-client';
import { rest, startServer } from './server.mjs';
import { TASK_EVENTS, sleep, waitUntil } from './sockets.mjs';
import { signToken } from './tokens.mjs';
import { createDatabase, startNginx, startRedis } from './cluster.mjs';

const SECRET = 'cluster-secret-5e4d3c2b1a';
const STORM = 1500; // changes per workspace in step 1
const TASKS = 12;
const CONCURRENCY = 12; // in-flight REST writes per workspace
const RUN = Math.random().toString(36).slice(2, 8);
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

let db;
let redis;
let lb;
const procs = [];
const W = { acme: { user: 'alice' }, globex: { user: 'gina' } };
const NAMES = Object.keys(W);

/** A socket.io-client 4 socket that remembers its last seq and resumes from it. */
class Follower {
  constructor(ws, label, urls, opts = {}) {
    this.ws = ws;
    this.label = `${ws} ${label}`;
    this.urls = urls; // the first is used; a direct client moves to the next when its process dies
    this.opts = opts;
    this.events = []; // { event, task, seq }
    this.resyncs = [];
    this.lastSeq = 0;
    this.moves = 0;
    this.closed = false;
  }

  async connect(url = this.urls[0]) {
    this.url = url;
    const socket = io(url, {
      forceNew: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 1000,
      timeout: 10_000,
      ...this.opts,
      // A function, so every reconnection resumes from what this client has.
      auth: (cb) => cb({ token: W[this.ws].token, since: this.lastSeq }),
    });
    this.socket = socket;
    socket.onAny((event, ...args) => {
      if (TASK_EVENTS.includes(event)) {
        this.events.push({ event, task: args[0], seq: args[1]?.seq });
        this.lastSeq = args[1]?.seq ?? this.lastSeq;
      } else if (event === 'resync_required') {
        this.resyncs.push(args[0]);
      }
    });
    socket.on('disconnect', (reason) => {
      // Without reconnection (direct clients), go where an app behind a load balancer would
      // be sent: the next process.
      if (this.closed || this.opts.reconnection !== false || reason === 'io client disconnect') return;
      const next = this.urls[(this.urls.indexOf(this.url) + 1) % this.urls.length];
      this.moves += 1;
      this.connect(next).catch((e) => { this.error = e; });
    });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no connect within 10 s`)), 10_000);
      socket.once('connect', () => { clearTimeout(timer); resolve(); });
      if (this.opts.reconnection === false) {
        socket.once('connect_error', (e) => { clearTimeout(timer); reject(new Error(`${this.label}: ${e.message}`)); });
      }
    });
    return this;
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }
}

/** The python-socketio venv scripts/test-clients.sh makes. */
const PYTHON = fileURLToPath(new URL('./python/.venv/bin/python', import.meta.url));
const FOLLOW_PY = fileURLToPath(new URL('./python/follow.py', import.meta.url));
/** Every python-socketio child started, so that `after` ends them even when a test failed early. */
const pyChildren = new Set();

/**
 * A python-socketio client (tests/clients/python/follow.py) in a child process, seen through
 * the same fields as `Follower`: it resumes from its last seq on every reconnection itself.
 */
class PyFollower {
  constructor(ws, label, url, transports) {
    this.ws = ws;
    this.label = `${ws} python-socketio ${label}`;
    this.url = url;
    this.transports = transports; // 'websocket' or 'default'
    this.events = [];
    this.resyncs = [];
    this.lastSeq = 0;
    this.moves = 0;
    this.transport = null;
  }

  async connect() {
    assert.ok(existsSync(PYTHON), `${PYTHON} is missing: scripts/test-clients.sh creates it`);
    const child = spawn(PYTHON, [FOLLOW_PY, this.url, W[this.ws].token, this.transports], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    pyChildren.add(child);
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    child.on('exit', (code) => {
      if (!this.closed) this.error = new Error(`${this.label}: exited with ${code}: ${stderr}`);
    });
    const connected = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no connect within 15 s: ${stderr}`)), 15_000);
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = JSON.parse(line);
        if (m.type === 'event') {
          this.events.push({ event: m.event, task: m.task, seq: m.seq });
          this.lastSeq = m.seq ?? this.lastSeq;
        } else if (m.type === 'resync') {
          this.resyncs.push(m.data);
        } else if (m.type === 'connected') {
          this.transport = m.transport;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`${this.label}: exited before connecting: ${stderr}`)); });
    });
    await connected;
    return this;
  }

  close() {
    this.closed = true;
    this.child?.kill('SIGTERM');
  }
}

/** An EventSource on the workspace's task stream; reconnects by itself with Last-Event-ID. */
function sse(ws, label, baseUrl) {
  const es = new EventSource(`${baseUrl}/api/tasks/stream?token=${encodeURIComponent(W[ws].token)}`);
  const s = { ws, label: `${ws} ${label}`, es, got: [] };
  es.onmessage = (e) => s.got.push({ id: Number(e.lastEventId), data: JSON.parse(e.data) });
  return s;
}

/** `n` REST changes in `ws` (creates first, then PATCHes), spread over `targets` in turn. */
async function writes(ws, n, targets, { concurrency = CONCURRENCY, pauseMs = 0 } = {}) {
  const w = W[ws];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const k = next++;
      const target = targets[k % targets.length];
      const api = rest(target.url);
      const headers = { authorization: `Bearer ${w.token}` };
      let r;
      if (w.tasks.length < TASKS) {
        r = await api.request('POST', '/api/tasks', { body: { title: `${ws}-${RUN}-${w.tasks.length}` }, headers });
        assert.equal(r.status, 201, `${ws}: create on ${target.url} -> ${r.status} ${r.text.slice(0, 200)}`);
        w.tasks.push(r.json);
      } else {
        const t = w.tasks[k % TASKS];
        r = await api.request('PATCH', `/api/tasks/${t.id}`, { body: { description: `${ws} change ${w.total + 1}` }, headers });
        assert.equal(r.status, 200, `${ws}: PATCH on ${target.url} -> ${r.status} ${r.text.slice(0, 200)}`);
      }
      w.ids.add(r.json.id);
      w.total += 1;
      if (pauseMs) await sleep(pauseMs);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function followers() {
  return NAMES.flatMap((ws) => W[ws].followers);
}

function streams() {
  return NAMES.flatMap((ws) => W[ws].streams);
}

/** Every client has seq 1..total of its own workspace, once, in order. */
async function assertEveryClientComplete(step) {
  for (const ws of NAMES) {
    const total = W[ws].total;
    for (const f of W[ws].followers) {
      await waitUntil(() => f.lastSeq >= total || f.error, 30_000, () => `${step}: ${f.label} at seq ${f.lastSeq} of ${total} (on ${f.url}, moved ${f.moves}×)`);
      assert.ifError(f.error);
    }
    for (const s of W[ws].streams) {
      await waitUntil(() => s.got.length >= total, 30_000, () => `${step}: ${s.label} has ${s.got.length} of ${total}`);
    }
  }
  await sleep(300); // a duplicate or a leak would arrive now
  for (const ws of NAMES) {
    const w = W[ws];
    for (const f of w.followers) {
      assert.deepEqual(f.resyncs, [], `${step}: ${f.label} was told to resync`);
      assert.deepEqual(f.events.map((e) => e.seq), range(1, w.total), `${step}: ${f.label} must have seq 1..${w.total}, each once, in order`);
      const foreign = f.events.filter((e) => !w.ids.has(e.task?.id) || !e.task.title.startsWith(`${ws}-${RUN}-`));
      assert.deepEqual(foreign.slice(0, 3), [], `${step}: ${f.label} got another workspace's events`);
    }
    for (const s of w.streams) {
      assert.deepEqual(s.got.map((e) => e.id), range(1, w.total), `${step}: ${s.label} SSE ids must be 1..${w.total}`);
      assert.ok(s.got.every((e) => w.ids.has(e.data.task?.id)), `${step}: ${s.label} got another workspace's events`);
    }
    // The same seq is the same change for every client.
    const reference = w.followers[0].events.map((e) => `${e.event}:${e.task.id}:${e.task.version}`);
    for (const f of w.followers.slice(1)) {
      assert.deepEqual(f.events.map((e) => `${e.event}:${e.task.id}:${e.task.version}`), reference, `${step}: ${f.label} and ${w.followers[0].label} disagree on what a seq is`);
    }
  }
}

/** What /metrics says about news from other processes over Redis. */
async function newsReceived(p) {
  const r = await rest(p.url).request('GET', '/metrics');
  const m = /^taskwire_cluster_news_received_total(?:\{[^}]*\})? (\d+)/m.exec(r.text);
  return m ? Number(m[1]) : 0;
}

/** Polls /readyz until it answers `status` or `timeoutMs` passes; the last answer. */
async function readyzTurns(p, status, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    let r;
    try {
      r = await rest(p.url).request('GET', '/readyz', { timeoutMs: 5_000 });
    } catch (e) {
      r = { status: 0, text: String(e) };
    }
    if (r.status === status || Date.now() - t0 > timeoutMs) return r;
    await sleep(50);
  }
}

before(async () => {
  db = await createDatabase();
  redis = await startRedis();
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: `taskwire-cluster-${RUN}`,
    JWT_SECRET: SECRET,
  };
  // The first process runs the migrations; the others start on a migrated database.
  procs.push(await startServer({ env }));
  procs.push(...await Promise.all([startServer({ env }), startServer({ env })]));
  lb = await startNginx(procs.map((p) => p.url));
  for (const ws of NAMES) {
    Object.assign(W[ws], { token: signToken({ sub: W[ws].user, workspace: ws }, { secret: SECRET }), tasks: [], ids: new Set(), total: 0 });
  }
});

after(async () => {
  for (const child of pyChildren) child.kill('SIGTERM');
  for (const ws of NAMES) {
    for (const f of W[ws].followers ?? []) f.close();
    for (const s of W[ws].streams ?? []) s.es.close();
  }
  await lb?.stop();
  await Promise.all(procs.map((p) => p.stop()));
  await redis?.kill();
  await db?.drop();
});

test('3 000 updates spread over three processes reach every client of the workspace once, in order', { timeout: 120_000 }, async (t) => {
  for (const ws of NAMES) {
    const direct = procs.map((p) => p.url);
    const w = W[ws];
    w.followers = await Promise.all([
      // Direct to each process, WebSocket only; moves to the next process if its own dies.
      ...procs.map((p, i) => new Follower(ws, `websocket on process ${i + 1}`, [...direct.slice(i), ...direct.slice(0, i)], { transports: ['websocket'], reconnection: false }).connect()),
      // Through nginx with socket.io-client's defaults: polling first, then the upgrade.
      new Follower(ws, 'default transports via nginx', [lb.url]).connect(),
      new Follower(ws, 'polling only via nginx', [lb.url], { transports: ['polling'] }).connect(),
      // python-socketio, as a Flask-SocketIO frontend's script connects: WebSocket only, and
      // its default polling-then-upgrade. On processes 2 and 3, which stay up to the end.
      new PyFollower(ws, 'websocket on process 2', procs[1].url, 'websocket').connect(),
      new PyFollower(ws, 'default transports on process 3', procs[2].url, 'default').connect(),
    ]);
    w.streams = [sse(ws, 'EventSource on process 2', procs[1].url), sse(ws, 'EventSource via nginx', lb.url)];
  }
  for (const s of streams()) await waitUntil(() => s.es.readyState === 1, 5_000, `${s.label} open`);

  const received = await Promise.all(procs.map((p) => newsReceived(p)));
  const t0 = Date.now();
  await Promise.all(NAMES.map((ws) => writes(ws, STORM, procs)));
  t.diagnostic(`${2 * STORM} writes over 3 processes in ${Date.now() - t0} ms`);
  await assertEveryClientComplete('storm');
  // The events came as news over Redis, not only from the log check that backs it up: each
  // process heard of every change the other two committed (2 000 of the 3 000).
  for (const [i, p] of procs.entries()) {
    const heard = (await newsReceived(p)) - received[i];
    assert.ok(heard >= (2 * 2 * STORM) / 3, `process ${i + 1} heard of ${heard} changes from the others over Redis`);
  }
  for (const ws of NAMES) {
    const upgraded = W[ws].followers[3];
    assert.equal(upgraded.socket.io.engine.transport.name, 'websocket', `${upgraded.label}: upgraded to WebSocket through nginx`);
    const py = W[ws].followers.filter((f) => f instanceof PyFollower);
    assert.equal(py.length, 2, 'two python-socketio clients per workspace');
  }
});

test('a client that leaves process 1 and comes back on process 3 gets what it missed, then live', { timeout: 60_000 }, async () => {
  const f = W.acme.followers[0];
  f.close();
  await writes('acme', 30, [procs[1]], { concurrency: 3 });
  f.closed = false;
  await f.connect(procs[2].url);
  await writes('acme', 5, [procs[0]], { concurrency: 1 });
  await assertEveryClientComplete('moved');
});

test('Redis killed and restarted while updates go on: /readyz 503 meanwhile, then every client has every event', { timeout: 90_000 }, async (t) => {
  const writing = Promise.all(NAMES.map((ws) => writes(ws, 200, procs, { concurrency: 2, pauseMs: 20 })));
  await sleep(300);
  await redis.kill();
  for (const p of procs) {
    const r = await readyzTurns(p, 503, 5_000);
    assert.equal(r.status, 503, `/readyz on ${p.url} while Redis is down -> ${r.status} ${r.text}`);
    assert.match(r.text, /redis/i, `/readyz names Redis: ${r.text}`);
  }
  await sleep(1_000);
  await redis.start();
  const back = Date.now();
  for (const p of procs) {
    const r = await readyzTurns(p, 200, 10_000);
    assert.equal(r.status, 200, `/readyz on ${p.url} after Redis is back -> ${r.status} ${r.text}`);
  }
  t.diagnostic(`every /readyz 200 again ${Date.now() - back} ms after Redis listened`);
  await writing;
  await assertEveryClientComplete('redis restart');
});

test('kill -9 of one process while updates go on: its clients resume elsewhere and miss nothing', { timeout: 90_000 }, async (t) => {
  const survivors = procs.slice(1);
  const writing = Promise.all(NAMES.map((ws) => writes(ws, 200, survivors, { concurrency: 2, pauseMs: 20 })));
  const onKilled = followers().filter((f) => f.url === procs[0].url);
  assert.ok(onKilled.length > 0, 'some clients are on the process about to be killed');
  const movesBefore = onKilled.map((f) => f.moves);
  await sleep(300);
  await procs[0].kill();
  await writing;
  await assertEveryClientComplete('kill -9');
  onKilled.forEach((f, i) => assert.equal(f.moves, movesBefore[i] + 1, `${f.label} moved once, to ${f.url}`));
  t.diagnostic(`moved to another process: ${onKilled.map((f) => `${f.label} -> ${f.url}`).join(', ')}`);
});
