// A scripted replica of the React frontend of a Node socket.io task backend, pointed at
// taskwire with EVENT_STYLE=node and JWT_SECRET: socket.io-client 4 with `auth: {token}`
// (default transports: polling, then upgrade), `emit('join-task', id)`, listeners on
// `task-created` / `task-updated` / `task-deleted` that update a local task list keyed by
// `taskId`, a `presence` listener for "who is viewing this task", and the two presence
// endpoints it polls (`/api/tasks/socket/stats`, `/api/tasks/socket/users/{taskId}`).
// It must work unchanged: the camelCase payload it reads (taskId, status, updatedBy = token
// sub, previousStatus, timestamp, …), one argument per event, each event once although the
// socket is in both the workspace room and the task room.
//
// A second server runs EVENT_STYLE=default,node: both event sets arrive, each exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import { rest, startServer } from './server.mjs';
import {
  TASK_EVENTS, assertSeqMeta, assertTask, closeAll, connectV2, connectV4Recorded, emitAck, record, sleep, uniqueTitle, waitUntil,
} from './sockets.mjs';
import { bearer, signToken } from './tokens.mjs';

const SECRET = 'node-style-secret-abcdef012345';
const NODE_EVENTS = ['task-created', 'task-updated', 'task-deleted'];
const NODE_KEYS = [
  'taskId', 'id', 'title', 'description', 'status', 'assignee', 'assigneeEmail', 'dueDate',
  'createdAt', 'updatedAt', 'createdBy', 'updatedBy', 'version', 'previousStatus', 'timestamp',
].sort();
const sockets = [];

/** snake_case task JSON -> the camelCase keys a Node backend sends (for comparing with REST). */
function camel(task) {
  const out = {};
  for (const [k, v] of Object.entries(task)) out[k.replace(/_([a-z])/g, (_, c) => c.toUpperCase())] = v;
  return out;
}

/** Asserts a node-style payload: exact key set, taskId = id, no snake_case, field values. */
function assertNodePayload(p, expected, where) {
  assert.equal(typeof p, 'object', `${where}: payload is not an object`);
  assert.deepEqual(Object.keys(p).sort(), NODE_KEYS, `${where}: keys ${JSON.stringify(Object.keys(p))}`);
  assert.equal(p.taskId, p.id, `${where}: taskId must equal id`);
  assert.ok(!Object.keys(p).some((k) => k.includes('_')), `${where}: snake_case key in a node payload`);
  assert.ok(['pending', 'in_progress', 'completed'].includes(p.status), `${where}: status ${p.status}`);
  assert.ok(p.previousStatus === null || ['pending', 'in_progress', 'completed'].includes(p.previousStatus), `${where}: previousStatus ${p.previousStatus}`);
  assert.ok(typeof p.timestamp === 'string' && Math.abs(Date.parse(p.timestamp) - Date.now()) < 60_000, `${where}: timestamp ${p.timestamp}`);
  for (const k of ['createdAt', 'updatedAt']) assert.ok(!Number.isNaN(Date.parse(p[k])), `${where}: ${k} ${p[k]}`);
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(p[k], v, `${where}: ${k} is ${JSON.stringify(p[k])}, expected ${JSON.stringify(v)}`);
  return p;
}

/**
 * What the React app does: one socket per tab, a task list keyed by taskId maintained from
 * the three events, and presence per task. Every event received is also logged (onAny) so the
 * test can check names and argument counts.
 */
class ReactTaskApp {
  constructor(url, token, label) {
    this.label = label;
    this.tasks = new Map();
    this.presence = new Map();
    this.log = [];
    this.socket = io(url, { auth: { token }, forceNew: true, reconnection: false, timeout: 10_000 });
    sockets.push(this.socket);
    this.socket.onAny((event, ...args) => this.log.push({ event, args }));
    this.socket.on('task-created', (task) => this.tasks.set(task.taskId, task));
    this.socket.on('task-updated', (task) => this.tasks.set(task.taskId, task));
    this.socket.on('task-deleted', ({ taskId }) => this.tasks.delete(taskId));
    this.socket.on('presence', ({ taskId, users, count }) => this.presence.set(taskId, { users, count }));
  }

  connected() {
    return new Promise((resolve, reject) => {
      if (this.socket.connected) return resolve(this);
      const timer = setTimeout(() => reject(new Error(`${this.label}: no connect`)), 10_000);
      this.socket.once('connect', () => { clearTimeout(timer); resolve(this); });
      this.socket.once('connect_error', (e) => { clearTimeout(timer); reject(new Error(`${this.label}: connect_error ${e.message}`)); });
    });
  }

  /** `socket.emit('join-task', taskId, ack)`; resolves with the ack. */
  join(taskId) { return emitAck(this.socket, 'join-task', [taskId]).then((a) => a[0]); }
  leave(taskId) { return emitAck(this.socket, 'leave-task', [taskId]).then((a) => a[0]); }

  events(name, taskId) { return this.log.filter((e) => e.event === name && (taskId === undefined || e.args[0]?.taskId === taskId)); }

  waitFor(name, pred, what, timeoutMs = 5_000) {
    return waitUntil(() => this.log.some((e) => e.event === name && pred(e.args[0])), timeoutMs,
      () => `${this.label}: ${what}; got ${JSON.stringify(this.log.map((e) => e.event))}`)
      .then(() => this.log.find((e) => e.event === name && pred(e.args[0])));
  }
}

const byId = (users) => [...users].sort((a, b) => a.id.localeCompare(b.id));

describe('EVENT_STYLE=node with JWT: the React client of a Node socket.io backend', () => {
  let srv;
  let api;
  let tokens;

  before(async () => {
    srv = await startServer({ env: { JWT_SECRET: SECRET, EVENT_STYLE: 'node' } });
    api = rest(srv.url);
    tokens = {
      alice: signToken({ sub: 'alice', name: 'Alice', workspace: 'acme' }, { secret: SECRET }),
      bob: signToken({ sub: 'bob', name: 'Bob', email: 'bob@example.com', workspace: 'acme' }, { secret: SECRET }),
      carl: signToken({ sub: 'carl', workspace: 'acme' }, { secret: SECRET }), // no name claim
      eve: signToken({ sub: 'eve', name: 'Eve', workspace: 'evilcorp' }, { secret: SECRET }),
    };
  });
  after(async () => {
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  const as = (user) => (method, path, body) => api.request(method, path, { headers: bearer(tokens[user]), ...(body === undefined ? {} : { body }) });

  test('task lifecycle: camelCase payloads with taskId, createdBy/updatedBy = sub, previousStatus, timestamp; each event once', { timeout: 30_000 }, async () => {
    const alice = await new ReactTaskApp(srv.url, tokens.alice, 'alice tab').connected();
    const bob = await new ReactTaskApp(srv.url, tokens.bob, 'bob tab').connected();
    const v2 = await connectV2(srv.url, { query: { token: tokens.bob } });
    sockets.push(v2);
    const v2Log = [];
    for (const ev of NODE_EVENTS) v2.on(ev, (...args) => v2Log.push({ event: ev, args }));
    const eve = await new ReactTaskApp(srv.url, tokens.eve, 'eve (other workspace)').connected();

    const title = uniqueTitle('react');
    const created = await as('alice')('POST', '/api/tasks', {
      title, description: 'from the React form', assignee: 'bob', assignee_email: 'bob@example.com', due_date: '2026-12-24',
    });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id;
    for (const app of [alice, bob]) {
      const e = await app.waitFor('task-created', (t) => t?.taskId === id, 'task-created');
      assert.equal(e.args.length, 1, `${app.label}: task-created has exactly one argument`);
      assertNodePayload(e.args[0], {
        ...camel(created.json), previousStatus: null, createdBy: 'alice', updatedBy: 'alice', status: 'pending', version: 1,
        assigneeEmail: 'bob@example.com', dueDate: created.json.due_date,
      }, `${app.label} task-created`);
    }

    // Both tabs open the task's detail view.
    const ja = await alice.join(id);
    assert.deepEqual(ja, { ok: true, taskId: id, users: [{ id: 'alice', name: 'Alice' }], count: 1 }, 'alice join-task ack');
    await alice.waitFor('presence', (p) => p?.taskId === id && p.count === 1, 'presence after alice joined');
    const jb = await bob.join(id);
    assert.equal(jb.ok, true, JSON.stringify(jb));
    assert.deepEqual(byId(jb.users), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }]);
    assert.equal(jb.count, 2);
    for (const app of [alice, bob]) {
      const p = await app.waitFor('presence', (x) => x?.taskId === id && x.count === 2, 'presence with 2 users');
      assert.equal(p.args.length, 1);
      assert.deepEqual(Object.keys(p.args[0]).sort(), ['count', 'taskId', 'users']);
      assert.deepEqual(byId(p.args[0].users), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }]);
    }

    // Bob moves it to "In Progress" via REST (lenient status input), then completes it from
    // his socket, then renames it.
    const u1 = await as('bob')('PATCH', `/api/tasks/${id}`, { status: 'In Progress', updated_by: 'mallory' });
    assert.equal(u1.status, 200, u1.text);
    const ack = await emitAck(bob.socket, 'update_task', [{ id, status: 'completed' }]);
    assert.equal(ack[0]?.ok, true, JSON.stringify(ack));
    const u3 = await as('alice')('PATCH', `/api/tasks/${id}`, { title: `${title} (renamed)` });
    assert.equal(u3.status, 200, u3.text);

    const expectUpdates = [
      { version: 2, status: 'in_progress', previousStatus: 'pending', updatedBy: 'bob' },
      { version: 3, status: 'completed', previousStatus: 'in_progress', updatedBy: 'bob' },
      { version: 4, status: 'completed', previousStatus: 'completed', updatedBy: 'alice', title: `${title} (renamed)` },
    ];
    for (const app of [alice, bob]) {
      await waitUntil(() => app.events('task-updated', id).length >= 3, 5_000, `${app.label}: 3 task-updated`);
      const ups = app.events('task-updated', id);
      ups.forEach((e, i) => {
        assert.equal(e.args.length, 1, `${app.label}: task-updated #${i} args`);
        assertNodePayload(e.args[0], { ...expectUpdates[i], createdBy: 'alice', taskId: id }, `${app.label} task-updated #${i}`);
      });
      assert.ok(Date.parse(ups[2].args[0].timestamp) >= Date.parse(ups[0].args[0].timestamp), 'timestamps do not go back');
      // The app's state equals the REST view of the task, in camelCase.
      const rest4 = camel((await as('alice')('GET', `/api/tasks/${id}`)).json);
      const { previousStatus, timestamp, taskId, ...state } = app.tasks.get(id);
      assert.deepEqual(state, rest4, `${app.label}: local state = REST task`);
    }
    await waitUntil(() => v2Log.filter((e) => e.event === 'task-updated').length >= 3, 5_000, 'v2 client: 3 task-updated');
    assertNodePayload(v2Log.find((e) => e.event === 'task-updated' && e.args[0].version === 4).args[0], expectUpdates[2], 'socket.io-client 2.x task-updated');

    // Presence endpoints while both are in the room.
    const stats = await as('bob')('GET', '/api/tasks/socket/stats');
    assert.equal(stats.status, 200, stats.text);
    assert.deepEqual(stats.json, { success: true, data: { connectedUsers: 2, totalRooms: 1, userRooms: { alice: [id], bob: [id] } } },
      'stats: alice + bob (v2 socket is bob too), eve is another workspace');
    const users = await as('alice')('GET', `/api/tasks/socket/users/${id}`);
    assert.equal(users.status, 200, users.text);
    assert.equal(users.json.success, true);
    assert.deepEqual(Object.keys(users.json.data).sort(), ['count', 'taskId', 'users']);
    assert.equal(users.json.data.taskId, id);
    assert.equal(users.json.data.count, 2);
    assert.deepEqual(byId(users.json.data.users), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }]);

    // Bob closes the detail view: alice sees him go; stats keep him connected with no rooms.
    const seen = alice.events('presence').length;
    const lb = await bob.leave(id);
    assert.deepEqual(lb, { ok: true, taskId: id, users: [{ id: 'alice', name: 'Alice' }], count: 1 }, 'bob leave-task ack');
    await waitUntil(() => alice.events('presence').slice(seen).some((e) => e.args[0].count === 1), 5_000, 'alice: presence after bob left');
    assert.deepEqual(alice.presence.get(id), { users: [{ id: 'alice', name: 'Alice' }], count: 1 });
    const stats2 = await as('alice')('GET', '/api/tasks/socket/stats');
    assert.deepEqual(stats2.json.data, { connectedUsers: 2, totalRooms: 1, userRooms: { alice: [id], bob: [] } });

    // Alice deletes it: task-deleted with taskId; the app's list drops it.
    const del = await as('alice')('DELETE', `/api/tasks/${id}`);
    assert.equal(del.status, 204);
    for (const app of [alice, bob]) {
      const e = await app.waitFor('task-deleted', (t) => t?.taskId === id, 'task-deleted');
      assert.equal(e.args.length, 1);
      assertNodePayload(e.args[0], { taskId: id, title: `${title} (renamed)`, version: 4, status: 'completed', createdBy: 'alice' }, `${app.label} task-deleted`);
      assert.equal(app.tasks.has(id), false, `${app.label}: task removed from local state`);
    }

    await sleep(200);
    for (const app of [alice, bob]) {
      // Exactly once each (the socket is in the workspace room and the task room).
      assert.equal(app.events('task-created', id).length, 1, `${app.label}: task-created once`);
      assert.equal(app.events('task-updated', id).length, 3, `${app.label}: task-updated 3 times`);
      assert.equal(app.events('task-deleted', id).length, 1, `${app.label}: task-deleted once`);
      const others = app.log.filter((e) => [...TASK_EVENTS, 'task_update'].includes(e.event));
      assert.deepEqual(others, [], `${app.label}: no default/flask-style events under EVENT_STYLE=node`);
    }
    assert.equal(eve.log.filter((e) => NODE_EVENTS.includes(e.event) || e.event === 'presence').length, 0, 'another workspace saw nothing');
    closeAll([alice.socket, bob.socket, v2, eve.socket]);
  });

  test('presence: a user without a name claim shows as their sub; a disconnect is announced; two tabs count once', { timeout: 20_000 }, async () => {
    const t = (await as('alice')('POST', '/api/tasks', { title: uniqueTitle('presence') })).json;
    const alice = await new ReactTaskApp(srv.url, tokens.alice, 'alice').connected();
    const aliceTab2 = await new ReactTaskApp(srv.url, tokens.alice, 'alice tab 2').connected();
    const carl = await new ReactTaskApp(srv.url, tokens.carl, 'carl').connected();
    await alice.join(t.id);
    await aliceTab2.join(t.id);
    const jc = await carl.join(t.id);
    assert.deepEqual(byId(jc.users), [{ id: 'alice', name: 'Alice' }, { id: 'carl', name: 'carl' }], 'name falls back to sub; alice once');
    assert.equal(jc.count, 2);
    await alice.waitFor('presence', (p) => p?.taskId === t.id && p.count === 2, 'presence with carl');
    const u = await as('carl')('GET', `/api/tasks/socket/users/${t.id}`);
    assert.deepEqual(u.json, { success: true, data: { taskId: t.id, users: byId(jc.users), count: 2 } });

    // Carl closes his browser tab.
    const before = alice.events('presence').length;
    carl.socket.close();
    await waitUntil(() => alice.events('presence').slice(before).some((e) => e.args[0].count === 1), 5_000, 'presence after carl disconnected');
    assert.deepEqual(alice.presence.get(t.id), { users: [{ id: 'alice', name: 'Alice' }], count: 1 });
    // One alice tab leaves: alice is still in the room through the other tab.
    await aliceTab2.leave(t.id);
    const u2 = await as('alice')('GET', `/api/tasks/socket/users/${t.id}`);
    assert.deepEqual(u2.json.data, { taskId: t.id, users: [{ id: 'alice', name: 'Alice' }], count: 1 });
    const s = await as('alice')('GET', '/api/tasks/socket/stats');
    assert.deepEqual(s.json.data, { connectedUsers: 1, totalRooms: 1, userRooms: { alice: [t.id] } });
    closeAll([alice.socket, aliceTab2.socket]);
  });

  test('join-task errors and presence endpoint 404s have the documented shapes', { timeout: 15_000 }, async () => {
    const app = await new ReactTaskApp(srv.url, tokens.alice, 'alice').connected();
    const missing = '01890a5d-ac96-774b-bcce-b302099a8057';
    const nf = await app.join(missing);
    assert.equal(nf.ok, false);
    assert.equal(nf.error?.code, 'not_found', JSON.stringify(nf));
    for (const bad of ['not-a-uuid', '', 42, { nothing: 1 }]) {
      const r = (await emitAck(app.socket, 'join-task', [bad]))[0];
      assert.equal(r.ok, false, `join-task ${JSON.stringify(bad)}: ${JSON.stringify(r)}`);
      assert.ok(['validation_failed', 'not_found'].includes(r.error?.code), `join-task ${JSON.stringify(bad)}: ${JSON.stringify(r)}`);
      assert.equal(typeof r.error.message, 'string');
    }
    const u = await as('alice')('GET', `/api/tasks/socket/users/${missing}`);
    assert.equal(u.status, 404, u.text);
    assert.equal(u.json?.error?.code, 'not_found');
    const evil = (await as('eve')('POST', '/api/tasks', { title: 'evil plan' })).json;
    const cross = await as('alice')('GET', `/api/tasks/socket/users/${evil.id}`);
    assert.equal(cross.status, 404, `other workspace's task -> ${cross.status}`);
    const jx = await app.join(evil.id);
    assert.equal(jx.error?.code, 'not_found', `join-task of another workspace's task: ${JSON.stringify(jx)}`);
    assert.equal(app.events('presence').length, 0, 'no presence for refused joins');
    closeAll([app.socket]);
  });
});

describe('EVENT_STYLE=default,node', () => {
  let srv;
  let api;
  let token;

  before(async () => {
    srv = await startServer({ env: { JWT_SECRET: SECRET, EVENT_STYLE: 'default,node' } });
    api = rest(srv.url);
    token = signToken({ sub: 'dana', name: 'Dana', workspace: 'both' }, { secret: SECRET });
  });
  after(async () => {
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  test('both event sets arrive, each exactly once, consistent with each other; since clients get the same seq on both', { timeout: 20_000 }, async () => {
    const plain = await connectV4Recorded(srv.url, { auth: { token } }, 'plain');
    const since = await connectV4Recorded(srv.url, { transports: ['websocket'], auth: { token, since: 0 } }, 'since=0');
    const v2 = await connectV2(srv.url, { transports: ['polling'], query: { token } });
    sockets.push(plain.socket, since.socket, v2);
    const v2Log = [];
    for (const ev of [...TASK_EVENTS, ...NODE_EVENTS]) v2.on(ev, (...args) => v2Log.push({ event: ev, args }));
    // The React app joins the task room as well: still once per event.
    const h = bearer(token);
    const t = (await api.request('POST', '/api/tasks', { headers: h, body: { title: uniqueTitle('both') } })).json;
    assert.equal((await emitAck(plain.socket, 'join-task', [t.id]))[0].ok, true);
    await api.request('PATCH', `/api/tasks/${t.id}`, { headers: h, body: { status: 'completed' } });
    await api.request('DELETE', `/api/tasks/${t.id}`, { headers: h });

    const pairs = [['task_created', 'task-created'], ['task_updated', 'task-updated'], ['task_deleted', 'task-deleted']];
    for (const rec of [plain.rec, since.rec]) {
      await waitUntil(() => rec.log.filter((e) => [...TASK_EVENTS, ...NODE_EVENTS].includes(e.event)).length >= 6, 5_000, `${rec.label}: 6 events`);
    }
    await waitUntil(() => v2Log.length >= 6, 5_000, `v2: 6 events, got ${v2Log.length}`);
    await sleep(200);
    for (const [label, log] of [['plain', plain.rec.log], ['since=0', since.rec.log], ['v2', v2Log]]) {
      const taskLog = log.filter((e) => [...TASK_EVENTS, ...NODE_EVENTS].includes(e.event));
      assert.equal(taskLog.length, 6, `${label}: exactly 6 events: ${JSON.stringify(taskLog.map((e) => e.event))}`);
      for (const [snake, kebab] of pairs) {
        const d = taskLog.filter((e) => e.event === snake);
        const n = taskLog.filter((e) => e.event === kebab);
        assert.equal(d.length, 1, `${label}: ${snake} once`);
        assert.equal(n.length, 1, `${label}: ${kebab} once`);
        const withSeq = label === 'since=0';
        assert.equal(d[0].args.length, withSeq ? 2 : 1, `${label}: ${snake} args`);
        assert.equal(n[0].args.length, withSeq ? 2 : 1, `${label}: ${kebab} args`);
        assertTask(d[0].args[0], { id: t.id, created_by: 'dana' }, `${label} ${snake}`);
        const expectedPrev = { 'task-created': null, 'task-updated': 'pending', 'task-deleted': 'completed' }[kebab];
        assertNodePayload(n[0].args[0], { ...camel(d[0].args[0]), previousStatus: expectedPrev }, `${label} ${kebab}`);
        if (withSeq) {
          const meta = assertSeqMeta(d[0], `${label} ${snake}`);
          assert.deepEqual(n[0].args[1], meta, `${label}: ${kebab} carries the same {seq, type, at} as ${snake}`);
        }
      }
    }
    closeAll([plain.socket, since.socket, v2]);
  });
});
