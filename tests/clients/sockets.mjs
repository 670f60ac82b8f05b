// Socket.IO client helpers shared by the client-compatibility tests.
//
// Every wait has a timeout; every client is created with forceNew + reconnection:false so a
// failing server cannot make a test hang in a reconnect loop.

import assert from 'node:assert/strict';
import { io as ioV4 } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

export const TASK_EVENTS = ['task_created', 'task_updated', 'task_deleted'];
export const TASK_KEYS = [
  'id', 'title', 'description', 'status', 'assignee', 'assignee_email', 'due_date',
  'created_at', 'updated_at', 'created_by', 'updated_by', 'version',
];
export const STATUSES = ['pending', 'in_progress', 'completed'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function whenConnected(socket, label, timeoutMs) {
  return new Promise((resolve, reject) => {
    const events = ['connect_error', 'connect_timeout', 'error'];
    const timer = setTimeout(() => fail(new Error('timeout')), timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      socket.off('connect', ok);
      for (const e of events) socket.off(e, fail);
    }
    function ok() { cleanup(); resolve(socket); }
    function fail(err) {
      cleanup();
      socket.close();
      const detail = err && typeof err === 'object'
        ? `${err.message ?? ''}${err.description ? ` (${err.description?.message ?? err.description})` : ''}`
        : String(err);
      reject(new Error(`${label} could not connect within ${timeoutMs} ms: ${detail}`));
    }
    socket.on('connect', ok);
    for (const e of events) socket.on(e, fail);
  });
}

/** socket.io-client 4.x (Engine.IO v4). Resolves once `connect` fired. */
export function connectV4(url, opts = {}, timeoutMs = 10_000) {
  const socket = ioV4(url, { forceNew: true, reconnection: false, timeout: timeoutMs, ...opts });
  const initial = { transport: null };
  // The Manager's `open` fires before any upgrade probe starts: the first transport used.
  socket.io.once('open', () => { initial.transport = socket.io.engine?.transport?.name ?? null; });
  socket.initialTransport = initial;
  return whenConnected(socket, `socket.io-client 4 ${JSON.stringify(opts.transports ?? 'default')}`, timeoutMs);
}

/** socket.io-client 2.5.0 (Engine.IO v3) through the npm alias. */
export function connectV2(url, opts = {}, timeoutMs = 10_000) {
  const socket = ioV2(url, { forceNew: true, reconnection: false, timeout: timeoutMs, ...opts });
  return whenConnected(socket, `socket.io-client 2.5.0 ${JSON.stringify(opts.transports ?? 'default')}`, timeoutMs);
}

export function transportName(socket) {
  return socket.io?.engine?.transport?.name;
}

export async function waitUntil(pred, timeoutMs, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (pred()) return;
    await sleep(25);
  }
  if (!pred()) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
}

/**
 * Records every event a socket receives, with all its arguments. Uses `socket.onAny`
 * where the client has it (4.x), otherwise a listener per task event (2.x has no onAny).
 */
export function record(socket, label = 'client') {
  const log = [];
  const waiters = new Set();
  const push = (event, args) => {
    log.push({ event, args });
    for (const w of [...waiters]) w();
  };
  if (typeof socket.onAny === 'function') {
    socket.onAny((event, ...args) => push(event, args));
  } else {
    for (const ev of TASK_EVENTS) socket.on(ev, (...args) => push(ev, args));
  }
  return {
    label,
    log,
    /** Resolves with the first entry matching pred (already received or later). */
    waitFor(pred, timeoutMs = 5_000, what = 'an event') {
      const found = log.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = log.map((e) => `${e.event}(${e.args.length} args, id=${e.args[0]?.id}, v=${e.args[0]?.version})`);
          reject(new Error(`${label}: no ${what} within ${timeoutMs} ms; received: [${seen.join(', ')}]`));
        }, timeoutMs);
        function check() {
          const e = log.find(pred);
          if (e) { clearTimeout(timer); waiters.delete(check); resolve(e); }
        }
        waiters.add(check);
      });
    },
    /** Waits for `event` whose first argument is the task `id` (optionally at `version`). */
    waitForTask(event, id, version, timeoutMs = 5_000) {
      return this.waitFor(
        (e) => e.event === event && e.args[0] && e.args[0].id === id && (version === undefined || e.args[0].version === version),
        timeoutMs,
        `${event} for task ${id}${version === undefined ? '' : ` v${version}`}`,
      );
    },
    count(event, id, version) {
      return log.filter((e) => e.event === event && e.args[0]?.id === id && (version === undefined || e.args[0]?.version === version)).length;
    },
  };
}

/**
 * Emits `event` with `args` plus an ack callback; resolves with the array of ack arguments.
 * Works for 2.x and 4.x clients (no reliance on emitWithAck / timeout()).
 */
export function emitAck(socket, event, args = [], timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(
      `no ack for ${event}(${args.map((a) => JSON.stringify(a)?.slice(0, 80)).join(', ')}) within ${timeoutMs} ms ` +
      `(socket.connected=${socket.connected})`)), timeoutMs);
    socket.emit(event, ...args, (...resp) => { clearTimeout(timer); resolve(resp); });
  });
}

export function assertTask(task, expected = {}, where = 'task') {
  assert.equal(typeof task, 'object', `${where}: not an object: ${JSON.stringify(task)}`);
  assert.ok(task !== null && !Array.isArray(task), `${where}: expected a task object, got ${JSON.stringify(task)}`);
  for (const k of TASK_KEYS) assert.ok(Object.hasOwn(task, k), `${where}: missing key ${k} in ${JSON.stringify(task)}`);
  assert.match(task.id, UUID_RE, `${where}: id is not a UUID`);
  assert.ok(STATUSES.includes(task.status), `${where}: non-canonical status ${task.status}`);
  assert.ok(Number.isInteger(task.version) && task.version >= 1, `${where}: bad version ${task.version}`);
  assert.equal(typeof task.title, 'string', `${where}: title`);
  for (const k of ['created_at', 'updated_at']) {
    assert.ok(!Number.isNaN(Date.parse(task[k])), `${where}: ${k} is not a timestamp: ${task[k]}`);
  }
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(task[k], v, `${where}: ${k} is ${JSON.stringify(task[k])}, expected ${JSON.stringify(v)}`);
  }
  return task;
}

/** An ack `[{"ok": true, "task": {...}}]`; returns the task. */
export function assertOkAck(resp, expected = {}, where = 'ack') {
  assert.ok(Array.isArray(resp), `${where}: ack args not an array`);
  assert.equal(resp.length, 1, `${where}: ack should have exactly 1 argument, got ${JSON.stringify(resp)}`);
  const a = resp[0];
  assert.equal(a?.ok, true, `${where}: expected ok:true, got ${JSON.stringify(a)}`);
  return assertTask(a.task, expected, `${where}.task`);
}

/** An ack `[{"ok": false, "error": {code, message}}]` whose code is in `codes`; returns the error. */
export function assertErrorAck(resp, codes, where = 'ack') {
  assert.ok(Array.isArray(resp), `${where}: ack args not an array`);
  assert.equal(resp.length, 1, `${where}: ack should have exactly 1 argument, got ${JSON.stringify(resp)}`);
  const a = resp[0];
  assert.equal(a?.ok, false, `${where}: expected ok:false, got ${JSON.stringify(a)}`);
  assert.equal(typeof a.error, 'object', `${where}: no error object in ${JSON.stringify(a)}`);
  assert.ok(codes.includes(a.error.code), `${where}: error.code ${JSON.stringify(a.error.code)} not in ${JSON.stringify(codes)} (${JSON.stringify(a)})`);
  assert.equal(typeof a.error.message, 'string', `${where}: error.message`);
  assert.ok(a.error.message.length > 0, `${where}: empty error.message`);
  return a.error;
}

/** Every task event a recorder saw carried exactly one argument. */
export function assertSingleArgEvents(rec) {
  const taskEvents = rec.log.filter((e) => TASK_EVENTS.includes(e.event));
  for (const e of taskEvents) {
    assert.equal(e.args.length, 1, `${rec.label}: ${e.event} arrived with ${e.args.length} arguments; extra: ${JSON.stringify(e.args.slice(1)).slice(0, 300)}`);
  }
  return taskEvents.length;
}

export function closeAll(sockets) {
  for (const s of sockets) {
    try { s?.close(); } catch { /* ignore */ }
  }
}

export function uniqueTitle(prefix = 'task') {
  return `${prefix} ${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * socket.io-client 4.x with a recorder attached BEFORE the connection opens, so events the
 * server sends right after accepting (a replay for `auth.since`, `resync_required`) are
 * recorded even when they are delivered in the same tick as `connect`.
 * Resolves { socket, rec }.
 */
export async function connectV4Recorded(url, opts = {}, label = 'client', timeoutMs = 10_000) {
  const socket = ioV4(url, { forceNew: true, reconnection: false, timeout: timeoutMs, ...opts });
  const rec = record(socket, label);
  await whenConnected(socket, `${label} (socket.io-client 4 ${JSON.stringify(opts.transports ?? 'default')})`, timeoutMs);
  return { socket, rec };
}

/** The `{seq, type, at}` second argument of an opted-in task event; checks its shape. */
export function assertSeqMeta(entry, where = 'event') {
  assert.ok(TASK_EVENTS.includes(entry.event), `${where}: ${entry.event} is not a task event`);
  assert.equal(entry.args.length, 2, `${where}: ${entry.event} should have 2 arguments, got ${entry.args.length}: ${JSON.stringify(entry.args).slice(0, 300)}`);
  const meta = entry.args[1];
  assert.equal(typeof meta, 'object', `${where}: second argument is not an object: ${JSON.stringify(meta)}`);
  assert.ok(Number.isInteger(meta?.seq) && meta.seq >= 1, `${where}: bad seq ${JSON.stringify(meta)}`);
  assert.equal(meta.type, entry.event, `${where}: meta.type ${JSON.stringify(meta.type)} != event name ${entry.event}`);
  assert.ok(typeof meta.at === 'string' && !Number.isNaN(Date.parse(meta.at)), `${where}: meta.at is not a timestamp: ${JSON.stringify(meta.at)}`);
  return meta;
}
