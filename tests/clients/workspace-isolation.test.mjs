// Workspace isolation under load (JWT_SECRET set): two workspaces, `acme` and `globex`, each
// with real clients — socket.io-client 4.x plain (websocket and polling), 4.x with
// `auth.since = 0` (seq numbers), 2.x (query token), a raw SSE reader (Bearer header) and an
// EventSource (`?token=`) — plus a `default`-workspace bystander. Both workspaces then make
// 1500 changes each, concurrently, over REST.
//
// Every client must get exactly its workspace's 1500 events (the same (event, task, version)
// set the REST responses describe), nothing of the other workspace (task ids and the
// workspace-prefixed titles), seq / SSE ids 1..1500 gapless per workspace, and the same holds
// for everything replayed afterwards (auth.since=0, `sync`, SSE Last-Event-ID). REST reads and
// writes across workspaces are 404, socket commands and join-task across are `not_found`, and
// the presence endpoints only ever show the caller's workspace.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { rest, startServer } from './server.mjs';
import {
  TASK_EVENTS, assertErrorAck, closeAll, connectV2, connectV4Recorded, emitAck, record, sleep, waitUntil,
} from './sockets.mjs';
import { openRawSse, waitForList } from './sse.mjs';
import { bearer, signToken } from './tokens.mjs';

const SECRET = 'isolation-secret-9f8e7d6c5b4a';
const CHANGES = 1500; // per workspace: TASKS creates + updates + DELETES deletes
const TASKS = 12;
const DELETES = 3;
const CONCURRENCY = 12; // in-flight REST writes per workspace
const RUN = Math.random().toString(36).slice(2, 8);

let srv;
const sockets = [];
const streams = []; // raw SSE readers
const eventSources = [];

// Per workspace: token, REST helper, its clients, and the expected events.
const W = {
  acme: { user: 'alice', name: 'Alice' },
  globex: { user: 'gina', name: 'Gina' },
};
const NAMES = Object.keys(W);
const other = (ws) => NAMES.find((n) => n !== ws);
const bystander = {};

const taskEvents = (rec) => rec.log.filter((e) => TASK_EVENTS.includes(e.event));
const key = (event, task) => `${event}:${task.id}:${task.version}`;
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function authed(ws) {
  const api = rest(srv.url);
  const h = bearer(W[ws].token);
  return (method, path, o = {}) => api.request(method, path, { ...o, headers: { ...h, ...(o.headers ?? {}) } });
}

/** A recorded socket.io-client 4 socket with `auth: {token, ...opts.auth}`. */
async function v4(ws, label, opts) {
  const { auth = {}, ...others } = opts;
  const { socket, rec } = await connectV4Recorded(srv.url, { ...others, auth: { token: W[ws].token, ...auth } }, `${ws} ${label}`);
  sockets.push(socket);
  return { label: `${ws} ${label}`, socket, rec };
}

async function sseClients(ws, token, extra = '') {
  const raw = await openRawSse(`${srv.url}/api/tasks/stream${extra}`, { headers: bearer(token) });
  assert.equal(raw.status, 200, `${ws}: raw SSE status`);
  streams.push(raw);
  const es = new EventSource(`${srv.url}/task_updates?token=${encodeURIComponent(token)}`);
  eventSources.push(es);
  const esGot = [];
  es.onmessage = (e) => esGot.push({ id: e.lastEventId, data: JSON.parse(e.data) });
  await waitUntil(() => es.readyState === 1, 5_000, `${ws}: EventSource open`);
  return { raw, es, esGot };
}

before(async () => {
  srv = await startServer({ env: { JWT_SECRET: SECRET } });
  for (const ws of NAMES) {
    W[ws].token = signToken({ sub: W[ws].user, name: W[ws].name, workspace: ws }, { secret: SECRET });
    W[ws].req = authed(ws);
    W[ws].expected = new Set();
    W[ws].ids = new Set();
    W[ws].tasks = [];
  }
  bystander.token = signToken({ sub: 'dora' }, { secret: SECRET }); // no workspace claim: `default`
});

after(async () => {
  closeAll(sockets);
  for (const s of streams) await s.close();
  for (const es of eventSources) es.close();
  await srv?.stop();
});

/** `CHANGES` REST writes in `ws`, CONCURRENCY at a time; records every expected event. */
async function storm(ws) {
  const w = W[ws];
  const note = (event, task) => {
    assert.ok(!w.expected.has(key(event, task)), `${ws}: duplicate version ${key(event, task)}`);
    w.expected.add(key(event, task));
  };
  for (let i = 0; i < TASKS; i++) {
    const r = await w.req('POST', '/api/tasks', { body: { title: `${ws}-${RUN}-task-${i}`, workspace: other(ws), created_by: 'mallory' } });
    assert.equal(r.status, 201, `${ws}: create -> ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(r.json.created_by, w.user, `${ws}: created_by from the token`);
    w.tasks.push(r.json);
    w.ids.add(r.json.id);
    note('task_created', r.json);
  }
  const updates = CHANGES - TASKS - DELETES;
  let next = 0;
  const statuses = ['pending', 'in_progress', 'completed'];
  const worker = async () => {
    while (next < updates) {
      const k = next++;
      const t = w.tasks[k % TASKS];
      const body = { description: `${ws} update ${k}`, status: statuses[k % 3], updated_by: 'mallory' };
      // Every 50th change goes through the legacy route, the rest through PATCH.
      const r = k % 50 === 7
        ? await w.req('POST', '/update_task', { body: { task_id: t.id, ...body } })
        : await w.req('PATCH', `/api/tasks/${t.id}`, { body });
      assert.equal(r.status, 200, `${ws}: update ${k} -> ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(r.json.updated_by, w.user, `${ws}: updated_by from the token`);
      note('task_updated', r.json);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  for (const t of w.tasks.slice(TASKS - DELETES)) {
    const cur = await w.req('GET', `/api/tasks/${t.id}`);
    assert.equal(cur.status, 200);
    const d = await w.req('DELETE', `/api/tasks/${t.id}`);
    assert.equal(d.status, 204, `${ws}: delete -> ${d.status}`);
    note('task_deleted', cur.json);
  }
  w.alive = w.tasks.slice(0, TASKS - DELETES);
  assert.equal(w.expected.size, CHANGES, `${ws}: ${CHANGES} distinct changes`);
}

/** Asserts a socket recorder holds exactly `ws`'s events. Returns its task events. */
function assertOwnSocketEvents(ws, rec, { withSeq }) {
  const w = W[ws];
  const ev = taskEvents(rec);
  for (const e of ev) {
    const t = e.args[0];
    assert.ok(w.ids.has(t?.id), `${rec.label}: received a task that is not ${ws}'s: ${JSON.stringify(t).slice(0, 200)}`);
    assert.ok(t.title.startsWith(`${ws}-${RUN}-`), `${rec.label}: foreign title ${t.title}`);
    assert.equal(e.args.length, withSeq ? 2 : 1, `${rec.label}: ${e.event} has ${e.args.length} args`);
  }
  const keys = ev.map((e) => key(e.event, e.args[0]));
  assert.equal(new Set(keys).size, keys.length, `${rec.label}: an event arrived twice`);
  assert.equal(ev.length, CHANGES, `${rec.label}: expected ${CHANGES} events, got ${ev.length}`);
  const missing = [...w.expected].filter((k) => !keys.includes(k));
  assert.deepEqual(missing.slice(0, 5), [], `${rec.label}: ${missing.length} expected events missing`);
  if (withSeq) {
    assert.deepEqual(ev.map((e) => e.args[1].seq), range(1, CHANGES), `${rec.label}: seq must be 1..${CHANGES} in order`);
  }
  // Per task, versions arrive in commit order.
  const last = new Map();
  for (const e of ev) {
    const t = e.args[0];
    const prev = last.get(t.id) ?? 0;
    assert.ok(e.event === 'task_deleted' ? t.version >= prev : t.version > prev, `${rec.label}: ${t.id} v${t.version} after v${prev}`);
    last.set(t.id, t.version);
  }
  return ev;
}

/** Asserts SSE events ({id, data}) are exactly `ws`'s, ids from..to in order. */
function assertOwnSse(ws, events, from, to, label) {
  const w = W[ws];
  for (const e of events) {
    assert.ok(w.ids.has(e.data?.task?.id), `${label}: foreign SSE event ${JSON.stringify(e.data).slice(0, 200)}`);
    assert.ok(e.data.task.title.startsWith(`${ws}-${RUN}-`), `${label}: foreign title`);
    assert.ok(w.expected.has(key(e.data.type, e.data.task)), `${label}: unexpected event ${key(e.data.type, e.data.task)}`);
  }
  assert.deepEqual(events.map((e) => Number(e.id)), range(from, to), `${label}: SSE ids must be ${from}..${to} gapless, in order`);
}

test('1500 concurrent changes per workspace: every client gets exactly its own workspace\'s events, live and replayed', { timeout: 110_000 }, async (t) => {
  // Clients connected before the storm.
  for (const ws of NAMES) {
    const w = W[ws];
    w.clients = [
      await v4(ws, 'v4 websocket', { transports: ['websocket'] }),
      await v4(ws, 'v4 polling', { transports: ['polling'] }),
      await v4(ws, 'v4 websocket since=0', { transports: ['websocket'], auth: { since: 0 } }),
    ];
    const v2 = await connectV2(srv.url, { transports: ['websocket'], query: { token: w.token } });
    sockets.push(v2);
    w.clients.push({ label: `${ws} v2 websocket`, socket: v2, rec: record(v2, `${ws} v2 websocket`) });
    w.sse = await sseClients(ws, w.token);
  }
  const dflt = await v4('acme', 'x', { transports: ['websocket'], auth: { token: bystander.token, since: 0 } });
  dflt.label = 'default-workspace bystander';
  const dfltSse = await sseClients('default', bystander.token);

  const t0 = Date.now();
  await Promise.all(NAMES.map((ws) => storm(ws)));
  const stormMs = Date.now() - t0;

  // Live delivery.
  for (const ws of NAMES) {
    const w = W[ws];
    for (const c of w.clients) {
      await waitUntil(() => taskEvents(c.rec).length >= CHANGES, 30_000, () => `${c.label}: ${CHANGES} events, got ${taskEvents(c.rec).length}`);
    }
    await waitForList(w.sse.raw.events, (l) => l.length >= CHANGES, 30_000, () => `${ws} raw SSE: ${w.sse.raw.events.length}`);
    await waitForList(w.sse.esGot, (l) => l.length >= CHANGES, 30_000, () => `${ws} EventSource: ${w.sse.esGot.length}`);
  }
  await sleep(300); // anything extra (a leak, a duplicate) would arrive now
  for (const ws of NAMES) {
    const w = W[ws];
    for (const c of w.clients) assertOwnSocketEvents(ws, c.rec, { withSeq: c.label.includes('since=0') });
    assertOwnSse(ws, w.sse.raw.events.map((b) => ({ id: b.id, data: b.json })), 1, CHANGES, `${ws} raw SSE (Bearer)`);
    assertOwnSse(ws, w.sse.esGot, 1, CHANGES, `${ws} EventSource (?token=)`);
    // The since=0 socket and SSE agree on what seq k is.
    const bySeq = taskEvents(w.clients[2].rec).map((e) => key(e.event, e.args[0]));
    assert.deepEqual(w.sse.esGot.map((e) => key(e.data.type, e.data.task)), bySeq, `${ws}: SSE id k and socket seq k are the same event`);
    w.bySeq = bySeq;
  }
  assert.equal(taskEvents(dflt.rec).length, 0, `the default workspace saw ${taskEvents(dflt.rec).length} acme/globex events`);
  assert.equal(dfltSse.raw.events.length + dfltSse.esGot.length, 0, 'the default workspace SSE saw acme/globex events');

  // Replays after the fact: auth.since=0 (full), sync, SSE Last-Event-ID (header and query).
  for (const ws of NAMES) {
    const w = W[ws];
    const late = await v4(ws, 'late since=0', { transports: ['websocket'], auth: { since: 0 } });
    await waitUntil(() => taskEvents(late.rec).length >= CHANGES, 20_000, () => `${late.label}: replay, got ${taskEvents(late.rec).length}`);
    await sleep(100);
    assertOwnSocketEvents(ws, late.rec, { withSeq: true });
    assert.deepEqual(taskEvents(late.rec).map((e) => key(e.event, e.args[0])), w.bySeq, `${ws}: replayed seq k = live seq k`);

    const plain = w.clients[0];
    const before = taskEvents(plain.rec).length;
    const ack = await emitAck(plain.socket, 'sync', [{ since: CHANGES - 100 }], 10_000);
    assert.deepEqual(ack, [{ ok: true, replayed: 100 }], `${ws}: sync ack`);
    await waitUntil(() => taskEvents(plain.rec).length >= before + 100, 10_000, `${ws}: 100 synced events`);
    const synced = taskEvents(plain.rec).slice(before);
    assert.deepEqual(synced.map((e) => e.args[1]?.seq), range(CHANGES - 99, CHANGES), `${ws}: sync replays its own seqs`);
    assert.deepEqual(synced.map((e) => key(e.event, e.args[0])), w.bySeq.slice(CHANGES - 100), `${ws}: sync replays its own events`);

    const raw = await openRawSse(`${srv.url}/api/tasks/stream`, { headers: { ...bearer(w.token), 'last-event-id': String(CHANGES - 250) } });
    streams.push(raw);
    await waitForList(raw.events, (l) => l.length >= 250, 10_000, () => `${ws}: SSE Last-Event-ID replay ${raw.events.length}`);
    const es = new EventSource(`${srv.url}/api/tasks/stream?lastEventId=0&token=${encodeURIComponent(w.token)}`);
    eventSources.push(es);
    const esGot = [];
    es.onmessage = (e) => esGot.push({ id: e.lastEventId, data: JSON.parse(e.data) });
    await waitForList(esGot, (l) => l.length >= CHANGES, 20_000, () => `${ws}: EventSource ?lastEventId=0 replay ${esGot.length}`);
    await sleep(200);
    assertOwnSse(ws, raw.events.map((b) => ({ id: b.id, data: b.json })), CHANGES - 249, CHANGES, `${ws} SSE Last-Event-ID header replay`);
    assertOwnSse(ws, esGot, 1, CHANGES, `${ws} EventSource ?lastEventId=0 replay`);
    es.close();
    await raw.close();
  }
  // The bystander's own replay is empty: seq numbering is per workspace.
  const ack = await emitAck(dflt.socket, 'sync', [{ since: 0 }]);
  assert.deepEqual(ack, [{ ok: true, replayed: 0 }], 'default workspace replays nothing of the others');
  await sleep(200);
  assert.equal(taskEvents(dflt.rec).length, 0);
  closeAll(sockets.splice(0));
  for (const ws of NAMES) { W[ws].sse.es.close(); await W[ws].sse.raw.close(); }
  dfltSse.es.close(); await dfltSse.raw.close();
  t.diagnostic(`storm: ${2 * CHANGES} REST writes in ${stormMs} ms`);
});

test('REST across workspaces: reads and writes of the other workspace\'s tasks are 404, lists never include them', { timeout: 30_000 }, async () => {
  for (const ws of NAMES) {
    const w = W[ws];
    const o = W[other(ws)];
    const victim = o.alive[0];
    const gone = o.tasks[TASKS - 1]; // deleted: must also be just 404
    const before = (await o.req('GET', `/api/tasks/${victim.id}`)).json;
    for (const t of [victim, gone]) {
      for (const [method, path, body] of [
        ['GET', `/api/tasks/${t.id}`], ['PATCH', `/api/tasks/${t.id}`, { title: 'hijacked' }],
        ['PUT', `/api/tasks/${t.id}`, { status: 'completed' }], ['DELETE', `/api/tasks/${t.id}`],
        ['POST', '/update_task', { task_id: t.id, status: 'completed', user_email: 'x@example.com' }],
      ]) {
        const r = await w.req(method, path, body === undefined ? {} : { body });
        assert.equal(r.status, 404, `${ws} ${method} ${path} on ${other(ws)}'s task -> ${r.status} ${r.text.slice(0, 200)}`);
        assert.equal(r.json?.error?.code, 'not_found', `${ws} ${method} ${path}: ${r.text.slice(0, 200)}`);
      }
    }
    // PATCH with If-Match must not reveal existence through 412 either.
    const im = await w.req('PATCH', `/api/tasks/${victim.id}`, { body: { title: 'x' }, headers: { 'if-match': '"1"' } });
    assert.equal(im.status, 404, `${ws}: If-Match on a foreign task -> ${im.status}`);
    const afterT = (await o.req('GET', `/api/tasks/${victim.id}`)).json;
    assert.deepEqual(afterT, before, `${ws}'s attempts changed ${other(ws)}'s task`);

    const list = await w.req('GET', '/api/tasks?limit=1000');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.map((t) => t.id).sort(), w.alive.map((t) => t.id).sort(), `${ws}: list = own live tasks only`);
    assert.equal(list.headers.get('x-total-count'), String(TASKS - DELETES), `${ws}: X-Total-Count counts own tasks only`);
    const search = await w.req('GET', `/api/tasks?q=${encodeURIComponent(`${other(ws)}-${RUN}`)}`);
    assert.deepEqual(search.json, [], `${ws}: text search finds nothing of ${other(ws)}`);
    const byUser = await w.req('GET', `/api/tasks?assignee=${o.user}`);
    assert.deepEqual(byUser.json, [], `${ws}: filter finds nothing of ${other(ws)}`);
  }
  // The bystander (default workspace) sees none of them.
  const d = rest(srv.url);
  const l = await d.request('GET', '/api/tasks', { headers: bearer(bystander.token) });
  assert.deepEqual(l.json, [], 'default workspace sees no acme/globex tasks');
});

test('socket commands, join-task and presence across workspaces are refused / never leak', { timeout: 30_000 }, async () => {
  const acme = W.acme;
  const globex = W.globex;
  const a = await v4('acme', 'presence alice', { transports: ['websocket'] });
  const g = await v4('globex', 'presence gina', { transports: ['websocket'] });
  const aTask = acme.alive[1];
  const gTask = globex.alive[1];

  // Own task rooms work.
  const ja = await emitAck(a.socket, 'join-task', [aTask.id]);
  assert.deepEqual(ja, [{ ok: true, taskId: aTask.id, users: [{ id: 'alice', name: 'Alice' }], count: 1 }], 'alice joins her task');
  const jg = await emitAck(g.socket, 'join_task', [{ taskId: gTask.id }]);
  assert.deepEqual(jg, [{ ok: true, taskId: gTask.id, users: [{ id: 'gina', name: 'Gina' }], count: 1 }], 'gina joins hers');

  // Across: every form of join, and the task commands, are not_found; no presence goes out.
  for (const [ev, arg] of [['join-task', aTask.id], ['join_task', aTask.id], ['join-task', { taskId: aTask.id }], ['join_task', { task_id: aTask.id }], ['join-task', { id: aTask.id }]]) {
    assertErrorAck(await emitAck(g.socket, ev, [arg]), ['not_found'], `gina ${ev} ${JSON.stringify(arg)}`);
  }
  assertErrorAck(await emitAck(g.socket, 'update_task', [{ id: aTask.id, title: 'hijacked' }]), ['not_found'], 'gina update_task on acme');
  assertErrorAck(await emitAck(g.socket, 'delete_task', [{ id: aTask.id }]), ['not_found'], 'gina delete_task on acme');
  // Leaving a foreign room is harmless and shows nobody.
  const lv = await emitAck(g.socket, 'leave-task', [aTask.id]);
  if (lv[0]?.ok) assert.deepEqual(lv[0].users, [], `leave of a foreign task must not list its users: ${JSON.stringify(lv)}`);
  else assertErrorAck(lv, ['not_found'], 'gina leave-task acme');

  await sleep(200);
  const still = await acme.req('GET', `/api/tasks/${aTask.id}`);
  assert.equal(still.status, 200, 'gina\'s delete_task did not delete it');
  assert.equal(still.json.title, aTask.title, 'gina\'s update_task did not change it');
  assert.equal(a.rec.log.filter((e) => e.event === 'presence').length, 1, `alice sees only her own join's presence: ${JSON.stringify(a.rec.log.filter((e) => e.event === 'presence'))}`);
  assert.equal(g.rec.log.filter((e) => e.event === 'presence' && e.args[0]?.taskId === aTask.id).length, 0, 'gina got presence of an acme room');

  // Presence endpoints.
  const ua = await globex.req('GET', `/api/tasks/socket/users/${aTask.id}`);
  assert.equal(ua.status, 404, `globex GET users of an acme task -> ${ua.status} ${ua.text.slice(0, 200)}`);
  const own = await acme.req('GET', `/api/tasks/socket/users/${aTask.id}`);
  assert.deepEqual(own.json, { success: true, data: { taskId: aTask.id, users: [{ id: 'alice', name: 'Alice' }], count: 1 } });
  const sg = await globex.req('GET', '/api/tasks/socket/stats');
  assert.deepEqual(sg.json, { success: true, data: { connectedUsers: 1, totalRooms: 1, userRooms: { gina: [gTask.id] } } }, 'globex stats show only globex');
  const sa = await acme.req('GET', '/api/tasks/socket/stats');
  assert.deepEqual(sa.json, { success: true, data: { connectedUsers: 1, totalRooms: 1, userRooms: { alice: [aTask.id] } } }, 'acme stats show only acme');
  const sd = await rest(srv.url).request('GET', '/api/tasks/socket/stats', { headers: bearer(bystander.token) });
  assert.deepEqual(sd.json, { success: true, data: { connectedUsers: 0, totalRooms: 0, userRooms: {} } }, 'default workspace stats are empty');
  closeAll([a.socket, g.socket]);
});
