// Rate limits as a misbehaving browser tab or script meets them: SOCKET_RATE_LIMIT=5 with
// SOCKET_RATE_BURST=5 (commands per second per connection) and REST_RATE_LIMIT=5 with
// REST_RATE_BURST=5 (writes per second per user with auth; per client address only with
// REST_RATE_LIMIT_BY=ip). Over the limit a socket command gets the ack `{ok: false, error:
// {code: "rate_limited"}}` and changes nothing, the connection stays usable; a REST write gets
// 429 JSON `rate_limited` with `Retry-After` (whole seconds, >= 1) and changes nothing. Other
// connections / users / client addresses are not affected, reads are not limited. With the
// defaults an ordinary tab is never refused (first suite; the REST defaults are checked through
// the binary in tests/rate_limits.rs).

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { rest, startServer } from './server.mjs';
import { assertErrorAck, closeAll, connectV2, connectV4Recorded, emitAck, sleep, uniqueTitle, waitUntil } from './sockets.mjs';
import { bearer, signToken } from './tokens.mjs';

const SECRET = 'rate-limit-secret-77aa88bb';
const LIMIT = 5;
const BURST = 20;
const sockets = [];

/** Every ack must be ok:true or a well-formed rate_limited error; returns [ok, limited]. */
function splitAcks(acks, where) {
  const ok = [];
  const limited = [];
  for (const [i, a] of acks.entries()) {
    if (a[0]?.ok === true) ok.push(a[0]);
    else { assertErrorAck(a, ['rate_limited'], `${where} #${i}`); limited.push(a[0]); }
  }
  return [ok, limited];
}

/**
 * How many of a burst may pass: the bucket (LIMIT) plus what refills while the burst is
 * being processed (LIMIT per second; on a loaded machine 20 commands can take a while),
 * plus one for rounding. Asserting this instead of a fixed number keeps the test honest
 * without making it flaky.
 */
function maxPassing(t0) {
  return LIMIT + Math.ceil(((Date.now() - t0) / 1000) * LIMIT) + 1;
}

function assert429(r, where) {
  assert.equal(r.status, 429, `${where}: ${r.status} ${r.text.slice(0, 200)}`);
  assert.equal(r.json?.error?.code, 'rate_limited', `${where}: ${r.text.slice(0, 200)}`);
  assert.equal(typeof r.json.error.message, 'string');
  const ra = r.headers.get('retry-after');
  assert.match(ra ?? '', /^\d+$/, `${where}: Retry-After must be whole seconds, got ${JSON.stringify(ra)}`);
  assert.ok(Number(ra) >= 1, `${where}: Retry-After ${ra} < 1`);
  return Number(ra);
}

describe('default settings (no rate-limit settings at all)', () => {
  let srv;

  before(async () => {
    // `undefined` leaves the variable out of the server's environment, so it runs with the
    // defaults users get (server.mjs otherwise turns the limits off for the other suites).
    srv = await startServer({ env: { SOCKET_RATE_LIMIT: undefined, REST_RATE_LIMIT: undefined } });
  });
  after(async () => {
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  test('a tab that joins the rooms of 100 tasks and moves all 100 at once is never refused', { timeout: 30_000 }, async () => {
    const api = rest(srv.url);
    const tasks = [];
    for (let i = 0; i < 100; i += 1) tasks.push(await api.createTask({ title: uniqueTitle(`board ${i}`) }));
    const tab = await connectV4Recorded(srv.url, { transports: ['websocket'] }, 'board tab');
    sockets.push(tab.socket);

    // What a board does on (re)connect and on "select all, move to done": one command per
    // task, sent at once, as Node and Flask backends let clients do.
    const joins = await Promise.all(tasks.map((t) => emitAck(tab.socket, 'join-task', [t.id], 15_000)));
    const moves = await Promise.all(tasks.map((t) => emitAck(tab.socket, 'update_task', [{ id: t.id, status: 'completed' }], 15_000)));
    const refused = [...joins, ...moves].filter((a) => a[0]?.ok !== true);
    assert.equal(refused.length, 0, `${refused.length} of 200 commands refused with default settings: ${JSON.stringify(refused[0])}`);
    const done = await api.listTasks({ status: 'completed', limit: 1 });
    assert.equal(done.headers.get('x-total-count'), '100', 'every move applied');

    // The default limit still stops a flood: 300 more at once outrun the burst and 20/s.
    const flood = await Promise.all(Array.from({ length: 300 }, (_, i) => emitAck(tab.socket, 'update_task', [{ id: tasks[i % 100].id, description: `flood ${i}` }], 15_000)));
    const [, limited] = splitAcks(flood, 'flood past the default burst');
    assert.ok(limited.length >= 1, 'a flood past the default burst was never limited');
    assert.equal(tab.socket.connected, true, 'still connected after being limited');
    closeAll([tab.socket]);
  });
});

describe('with JWT (limits per connection and per user)', () => {
  let srv;
  let api;
  const tok = {};
  const as = (user) => (method, path, body) => api.request(method, path, { headers: bearer(tok[user]), ...(body === undefined ? {} : { body }) });

  before(async () => {
    srv = await startServer({ env: { JWT_SECRET: SECRET, SOCKET_RATE_LIMIT: String(LIMIT), SOCKET_RATE_BURST: String(LIMIT), REST_RATE_LIMIT: String(LIMIT), REST_RATE_BURST: String(LIMIT) } });
    api = rest(srv.url);
    for (const u of ['setup', 'sam', 'alice', 'bob']) tok[u] = signToken({ sub: u, workspace: 'acme' }, { secret: SECRET });
  });
  after(async () => {
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  test(`SOCKET_RATE_LIMIT=${LIMIT}: a burst of ${BURST} commands gets rate_limited acks, changes only what was acked ok, and the socket keeps working`, { timeout: 20_000 }, async () => {
    const t = (await as('setup')('POST', '/api/tasks', { title: uniqueTitle('sock-limit') })).json;
    const tab = await connectV4Recorded(srv.url, { transports: ['websocket'], auth: { token: tok.sam } }, 'sam tab 1');
    const tab2 = await connectV4Recorded(srv.url, { transports: ['polling'], auth: { token: tok.sam } }, 'sam tab 2');
    sockets.push(tab.socket, tab2.socket);
    await sleep(1_100); // a full bucket

    const t0 = Date.now();
    const acks = await Promise.all(Array.from({ length: BURST }, (_, i) => emitAck(tab.socket, 'update_task', [{ id: t.id, description: `burst ${i}` }])));
    const max = maxPassing(t0);
    const [ok, limited] = splitAcks(acks, 'burst update_task');
    assert.ok(ok.length >= LIMIT, `the burst of ${LIMIT} must be honoured, only ${ok.length} ok`);
    assert.ok(ok.length <= max, `${ok.length} of ${BURST} passed a limit of ${LIMIT}/s (at most ${max} expected)`);
    assert.ok(limited.length >= 1, 'no command of the burst was rate limited');

    // The other tab of the same user has its own budget.
    const other = await emitAck(tab2.socket, 'update_task', [{ id: t.id, assignee: 'tab2' }]);
    assert.equal(other[0]?.ok, true, `a second connection is not limited by the first: ${JSON.stringify(other)}`);

    // Room commands count too and still answer. (A few at once: on a slow machine the bucket
    // may have refilled by a token or two since the burst.)
    const joins = await Promise.all(Array.from({ length: 8 }, () => emitAck(tab.socket, 'join-task', [t.id])));
    const [, joinLimited] = splitAcks(joins, 'join-task burst');
    assert.ok(joinLimited.length >= 1, 'join-task is rate limited too');

    // Refused commands changed nothing: version = 1 + ok + tab2's one.
    const cur = (await as('setup')('GET', `/api/tasks/${t.id}`)).json;
    assert.equal(cur.version, 1 + ok.length + 1, `version ${cur.version} after ${ok.length} ok updates + 1`);
    await waitUntil(() => tab.rec.count('task_updated', t.id) >= ok.length + 1, 5_000, 'events of the accepted updates');
    await sleep(200);
    assert.equal(tab.rec.count('task_updated', t.id), ok.length + 1, 'one event per accepted update, none for refused ones');

    // After a pause the same socket works again, for every kind of command.
    await sleep(1_100);
    assert.equal(tab.socket.connected, true, 'still connected after being limited');
    const again = await emitAck(tab.socket, 'update_task', [{ id: t.id, status: 'completed' }]);
    assert.equal(again[0]?.ok, true, `after a pause: ${JSON.stringify(again)}`);
    const jj = await emitAck(tab.socket, 'join-task', [t.id]);
    assert.equal(jj[0]?.ok, true, `join-task after a pause: ${JSON.stringify(jj)}`);
    const c = await emitAck(tab.socket, 'create_task', [{ title: uniqueTitle('after-limit') }]);
    assert.equal(c[0]?.ok, true, JSON.stringify(c));
    assert.equal(c[0].task.created_by, 'sam');
    closeAll([tab.socket, tab2.socket]);
  });

  test('socket.io-client 2.x gets the same rate_limited acks', { timeout: 15_000 }, async () => {
    const v2 = await connectV2(srv.url, { transports: ['websocket'], query: { token: tok.sam } });
    sockets.push(v2);
    await sleep(1_100);
    const t0 = Date.now();
    const acks = await Promise.all(Array.from({ length: BURST }, (_, i) => emitAck(v2, 'create_task', [{ title: `v2 burst ${i}` }])));
    const max = maxPassing(t0);
    const [ok, limited] = splitAcks(acks, 'v2 burst create_task');
    assert.ok(ok.length >= LIMIT && ok.length <= max, `${ok.length} ok (expected ${LIMIT}..${max})`);
    assert.ok(limited.length > 0, 'no command of the burst was rate limited');
    await sleep(1_100);
    const again = await emitAck(v2, 'create_task', [{ title: 'v2 after pause' }]);
    assert.equal(again[0]?.ok, true, JSON.stringify(again));
    closeAll([v2]);
  });

  test(`REST_RATE_LIMIT=${LIMIT}: a burst of writes gets 429 + Retry-After for that user only; reads and other users are unaffected`, { timeout: 20_000 }, async () => {
    const t = (await as('setup')('POST', '/api/tasks', { title: uniqueTitle('rest-limit') })).json;
    const aliceSock = await connectV4Recorded(srv.url, { transports: ['websocket'], auth: { token: tok.alice } }, 'alice socket');
    sockets.push(aliceSock.socket);
    await sleep(1_100);

    const t0 = Date.now();
    const rs = await Promise.all(Array.from({ length: BURST }, (_, i) => as('alice')('PATCH', `/api/tasks/${t.id}`, { description: `rest burst ${i}` })));
    const max = maxPassing(t0);
    const ok = rs.filter((r) => r.status === 200);
    const limited = rs.filter((r) => r.status !== 200);
    assert.ok(ok.length >= LIMIT && ok.length <= max, `${ok.length} of ${BURST} PATCHes passed (expected ${LIMIT}..${max}): ${rs.map((r) => r.status).join(',')}`);
    assert.ok(limited.length > 0, 'no PATCH of the burst was rate limited');
    let retryAfter = 1;
    for (const r of limited) retryAfter = Math.max(retryAfter, assert429(r, 'PATCH over the limit'));
    assert.ok(retryAfter <= 2, `Retry-After ${retryAfter} is far above what a ${LIMIT}/s bucket needs`);

    // Other write routes share the same budget (POST, DELETE, the legacy route). A few at once
    // (the bucket may have refilled a token since the burst); the targets of DELETE and
    // /update_task do not exist, so one that gets through is a harmless 404.
    const missing = '01890a5d-ac96-774b-bcce-b302099a8057';
    for (const [method, path, body] of [
      ['POST', '/api/tasks', { title: 'while limited' }],
      ['POST', '/update_task', { task_id: missing, status: 'completed' }],
      ['DELETE', `/api/tasks/${missing}`],
    ]) {
      const more = await Promise.all(Array.from({ length: 8 }, () => as('alice')(method, path, body)));
      const refused = more.filter((r) => r.status === 429);
      assert.ok(refused.length >= 1, `${method} ${path} is limited too: ${more.map((r) => r.status).join(',')}`);
      for (const r of refused) assert429(r, `${method} ${path} while limited`);
      for (const r of more.filter((x) => x.status !== 429)) assert.ok([201, 404].includes(r.status), `${method} ${path}: ${r.status}`);
    }
    // Reads are not writes.
    const read = await as('alice')('GET', `/api/tasks/${t.id}`);
    assert.equal(read.status, 200, `GET while write-limited: ${read.status}`);
    assert.equal(read.json.version, 1 + ok.length, 'refused writes changed nothing');
    // Another user (same IP) is not affected, and alice's socket has its own limit.
    const bob = await as('bob')('PATCH', `/api/tasks/${t.id}`, { assignee: 'bob' });
    assert.equal(bob.status, 200, `bob while alice is limited: ${bob.status} ${bob.text.slice(0, 200)}`);
    const viaSocket = await emitAck(aliceSock.socket, 'update_task', [{ id: t.id, assignee: 'alice' }]);
    assert.equal(viaSocket[0]?.ok, true, `alice's socket while her REST writes are limited: ${JSON.stringify(viaSocket)}`);

    // After Retry-After the same user can write again.
    await sleep(retryAfter * 1000 + 100);
    const later = await as('alice')('PATCH', `/api/tasks/${t.id}`, { status: 'completed' });
    assert.equal(later.status, 200, `after Retry-After: ${later.status} ${later.text.slice(0, 200)}`);
    assert.equal(later.json.version, 1 + ok.length + 2 + 1);
    closeAll([aliceSock.socket]);
  });
});

describe('REST_RATE_LIMIT_BY=ip without JWT (REST limit per client address)', () => {
  let srv;

  before(async () => {
    srv = await startServer({ env: { REST_RATE_LIMIT: String(LIMIT), REST_RATE_BURST: String(LIMIT), REST_RATE_LIMIT_BY: 'ip' } });
  });
  after(async () => {
    await srv?.stop();
  });

  /** POST /api/tasks from a chosen loopback source address (127.0.0.x) with node:http. */
  function postFrom(localAddress, body, extraHeaders = {}) {
    const data = JSON.stringify(body);
    const u = new URL(`${srv.url}/api/tasks`);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: u.hostname, port: u.port, path: u.pathname, method: 'POST', localAddress, agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...extraHeaders },
        timeout: 10_000,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, headers: new Headers(res.headers), text, json });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(data);
    });
  }

  test('a burst from one IP gets 429s, whatever X-Forwarded-For it makes up; a different client IP is not affected', { timeout: 15_000 }, async () => {
    const t0 = Date.now();
    // No TRUSTED_PROXIES: a forwarding header from the peer itself must not buy a fresh budget.
    const rs = await Promise.all(Array.from({ length: BURST }, (_, i) => postFrom('127.0.0.1', { title: `ip burst ${i}` }, { 'x-forwarded-for': `198.51.100.${i + 1}` })));
    const max = maxPassing(t0);
    const created = rs.filter((r) => r.status === 201);
    assert.ok(created.length >= LIMIT && created.length <= max, `${created.length} created (expected ${LIMIT}..${max}): ${rs.map((r) => r.status).join(',')}`);
    assert.ok(created.length < BURST, 'no POST of the burst was rate limited');
    for (const r of rs.filter((x) => x.status !== 201)) assert429(r, 'POST from 127.0.0.1 over the limit');

    // 127.0.0.2 is another loopback address on Linux: another caller.
    const other = await postFrom('127.0.0.2', { title: 'from another IP' });
    assert.equal(other.status, 201, `another IP while 127.0.0.1 is limited: ${other.status} ${other.text.slice(0, 200)}`);
    const total = await rest(srv.url).totalCount();
    assert.equal(total, created.length + 1, 'refused POSTs created nothing');
  });
});
