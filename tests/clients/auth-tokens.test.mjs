// The JWT token matrix (JWT_SECRET set, HS256) against every way a real client presents a
// token: REST (`Authorization: Bearer` and `?token=`), SSE through a real EventSource
// (`?token=`, since EventSource cannot set headers), socket.io-client 4.x (`auth.token`, and
// for good tokens also `query.token` and `extraHeaders.Authorization`) and socket.io-client
// 2.x (`query.token`, its only way). Every bad token must be refused on every channel, every
// good token accepted on every channel — "accepted" means the client actually works (gets a
// task event, or a 200), not just that the handshake did not fail.
//
// A second server sets JWT_ISSUER / JWT_AUDIENCE: both claims then become required and must
// match.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { io as ioV4 } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';
import { rest, startServer } from './server.mjs';
import {
  assertOkAck, closeAll, connectV2, connectV4, emitAck, record, sleep, uniqueTitle, waitUntil,
} from './sockets.mjs';
import { openRawSse } from './sse.mjs';
import { bearer, decodePayload, mintWithCli, nowSeconds, signToken } from './tokens.mjs';

const SECRET = 'client-compat-secret-0123456789abcdef';
const sockets = [];
const eventSources = new Set();

// ---------------------------------------------------------------------------------------
// Refusal helpers: a refused client must see the refusal and must never see `connect`.
// ---------------------------------------------------------------------------------------

/** socket.io-client 4.x: resolves with the `connect_error` Error; fails on `connect`. */
function refusedV4(url, opts, timeoutMs = 8_000) {
  const socket = ioV4(url, { forceNew: true, reconnection: false, timeout: timeoutMs, ...opts });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.close(); reject(new Error(`v4 ${JSON.stringify(opts)}: neither connect nor connect_error within ${timeoutMs} ms`)); }, timeoutMs);
    socket.on('connect', () => { clearTimeout(timer); socket.close(); reject(new Error(`v4 client CONNECTED with a bad token (${JSON.stringify(opts).slice(0, 200)})`)); });
    socket.on('connect_error', (err) => { clearTimeout(timer); socket.close(); resolve(err); });
  });
}

/**
 * socket.io-client 2.x: a CONNECT refused by a middleware arrives as an `error` event whose
 * argument is the error data (a plain string in the 2.x protocol). Fails on `connect`.
 */
function refusedV2(url, opts, timeoutMs = 8_000) {
  const socket = ioV2(url, { forceNew: true, reconnection: false, timeout: timeoutMs, ...opts });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.close(); reject(new Error(`v2 ${JSON.stringify(opts)}: neither connect nor error within ${timeoutMs} ms`)); }, timeoutMs);
    socket.on('connect', () => { clearTimeout(timer); socket.close(); reject(new Error(`v2 client CONNECTED with a bad token (${JSON.stringify(opts).slice(0, 200)})`)); });
    socket.on('error', (err) => { clearTimeout(timer); socket.close(); resolve(err); });
    socket.on('connect_error', (err) => { clearTimeout(timer); socket.close(); reject(new Error(`v2: transport-level connect_error instead of the 'error' event: ${err?.message ?? err}`)); });
  });
}

/** A real EventSource; resolves with the first `error` event (it must close, code = status). */
function refusedEventSource(url, timeoutMs = 5_000) {
  const es = new EventSource(url);
  eventSources.add(es);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { es.close(); reject(new Error(`EventSource ${url}: no error within ${timeoutMs} ms (readyState ${es.readyState})`)); }, timeoutMs);
    es.onopen = () => { clearTimeout(timer); es.close(); reject(new Error(`EventSource OPENED with a bad token: ${url}`)); };
    es.onerror = (e) => { clearTimeout(timer); const state = es.readyState; es.close(); resolve({ code: e.code, message: e.message, readyState: state }); };
  });
}

function assert401(r, where) {
  assert.equal(r.status, 401, `${where}: expected 401, got ${r.status} ${r.text.slice(0, 200)}`);
  assert.equal(r.json?.error?.code, 'unauthorized', `${where}: error code: ${r.text.slice(0, 200)}`);
  assert.equal(typeof r.json.error.message, 'string', `${where}: error.message`);
  assert.ok(r.json.error.message.length > 0, `${where}: empty error.message`);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/, `${where}: content-type`);
  const www = r.headers.get('www-authenticate');
  assert.ok(www && /^Bearer realm="taskwire"/.test(www), `${where}: WWW-Authenticate is ${JSON.stringify(www)}`);
}

/**
 * Asserts `token` is refused on every channel of the server at `url`; `api` is a REST helper
 * and `goodToken` a valid token of the same workspace (to check nothing was written).
 */
async function assertRefusedEverywhere(url, token, goodToken, label) {
  const api = rest(url);
  const q = token === undefined ? '' : `?token=${encodeURIComponent(token)}`;
  const before = Number((await api.request('GET', '/api/tasks?limit=1', { headers: bearer(goodToken) })).headers.get('x-total-count'));

  // REST: header and query, a read and a write.
  assert401(await api.request('GET', '/api/tasks', { headers: bearer(token) }), `${label}: GET /api/tasks (Bearer)`);
  if (token !== undefined) assert401(await api.request('GET', `/api/tasks${q}`), `${label}: GET /api/tasks?token=`);
  assert401(await api.request('POST', '/api/tasks', { headers: bearer(token), body: { title: `refused ${label}` } }), `${label}: POST /api/tasks (Bearer)`);
  assert401(await api.request('POST', `/api/tasks${q}`, { body: { title: `refused ${label}` } }), `${label}: POST /api/tasks?token=`);
  const afterCount = Number((await api.request('GET', '/api/tasks?limit=1', { headers: bearer(goodToken) })).headers.get('x-total-count'));
  assert.equal(afterCount, before, `${label}: a refused POST must not create a task`);

  // SSE: raw fetch with the header (status + JSON), and a real EventSource with ?token=.
  for (const path of ['/api/tasks/stream', '/task_updates']) {
    const raw = await openRawSse(`${url}${path}`, { headers: bearer(token) });
    const status = raw.status;
    await raw.close();
    assert.equal(status, 401, `${label}: SSE ${path} with Bearer header -> ${status}`);
    const err = await refusedEventSource(`${url}${path}${q}`);
    assert.equal(err.code, 401, `${label}: EventSource ${path}${q ? '?token=' : ''} error code ${err.code} (${err.message})`);
    assert.equal(err.readyState, 2, `${label}: EventSource must be CLOSED after a 401, not reconnecting`);
  }

  // socket.io-client 4.x: auth.token (both transports); query and header as well.
  const v4 = [];
  for (const transports of [['websocket'], ['polling']]) {
    v4.push([`auth.token ${transports}`, refusedV4(url, { transports, auth: token === undefined ? {} : { token } })]);
  }
  if (token !== undefined) {
    v4.push(['query.token', refusedV4(url, { transports: ['websocket'], query: { token } })]);
    v4.push(['extraHeaders', refusedV4(url, { transports: ['polling'], extraHeaders: { Authorization: `Bearer ${token}` } })]);
  }
  // socket.io-client 2.x: query.token over both transports.
  const v2 = [];
  for (const transports of [['websocket'], ['polling']]) {
    v2.push([`v2 query.token ${transports}`, refusedV2(url, { transports, ...(token === undefined ? {} : { query: { token } }) })]);
  }
  for (const [how, p] of v4) {
    const err = await p;
    assert.equal(err.message, 'unauthorized', `${label}: v4 ${how}: connect_error message ${JSON.stringify(err.message)}`);
  }
  for (const [how, p] of v2) {
    const err = await p;
    // A socket.io 2.x server sends the bare string (`4"unauthorized"`); taskwire (socketioxide)
    // sends `{"message": "unauthorized"}`. Both carry the message 2.x clients look for.
    const message = typeof err === 'string' ? err : err?.message;
    assert.equal(message, 'unauthorized', `${label}: ${how}: error event payload ${JSON.stringify(err)}`);
  }
}

/**
 * Asserts `token` (user `sub`) works on every channel: REST by header and query, a real
 * EventSource with ?token= receives an event, v4 (auth/query/header) and v2 (query) sockets
 * receive the event of a change made with the token, and a socket command records the sub.
 */
async function assertAcceptedEverywhere(url, token, sub, label) {
  const api = rest(url);
  const h = bearer(token);
  const q = `?token=${encodeURIComponent(token)}`;
  const list = await api.request('GET', '/api/tasks', { headers: h });
  assert.equal(list.status, 200, `${label}: GET /api/tasks (Bearer) -> ${list.status} ${list.text.slice(0, 200)}`);
  assert.ok(Array.isArray(list.json));
  const listQ = await api.request('GET', `/api/tasks${q}`);
  assert.equal(listQ.status, 200, `${label}: GET /api/tasks?token= -> ${listQ.status} ${listQ.text.slice(0, 200)}`);

  // Listeners first, then one change; every listener must see it.
  const es = new EventSource(`${url}/api/tasks/stream${q}`);
  const esAlias = new EventSource(`${url}/task_updates${q}`);
  eventSources.add(es); eventSources.add(esAlias);
  const esGot = []; const aliasGot = [];
  es.onmessage = (e) => esGot.push(JSON.parse(e.data));
  esAlias.onmessage = (e) => aliasGot.push(JSON.parse(e.data));
  await waitUntil(() => es.readyState === 1 && esAlias.readyState === 1, 5_000,
    () => `${label}: EventSources open (readyState ${es.readyState}/${esAlias.readyState})`);

  const clients = [];
  const v4 = async (how, opts) => {
    const s = await connectV4(url, { ...opts }).catch((e) => { throw new Error(`${label}: v4 ${how} refused: ${e.message}`); });
    sockets.push(s);
    clients.push({ how: `v4 ${how}`, socket: s, rec: record(s, `${label} v4 ${how}`) });
  };
  await v4('auth.token websocket', { transports: ['websocket'], auth: { token } });
  await v4('auth.token polling', { transports: ['polling'], auth: { token } });
  await v4('query.token', { transports: ['websocket'], query: { token } });
  await v4('extraHeaders websocket', { transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${token}` } });
  await v4('extraHeaders polling', { transports: ['polling'], extraHeaders: { Authorization: `Bearer ${token}` } });
  for (const transports of [['websocket'], ['polling']]) {
    const s = await connectV2(url, { transports, query: { token } }).catch((e) => { throw new Error(`${label}: v2 query.token ${transports} refused: ${e.message}`); });
    sockets.push(s);
    clients.push({ how: `v2 ${transports}`, socket: s, rec: record(s, `${label} v2 ${transports}`) });
  }

  const title = uniqueTitle(`accepted ${label}`);
  const created = await api.request('POST', '/api/tasks', { headers: h, body: { title, created_by: 'mallory' } });
  assert.equal(created.status, 201, `${label}: POST /api/tasks -> ${created.status} ${created.text.slice(0, 200)}`);
  assert.equal(created.json.created_by, sub, `${label}: created_by comes from the token sub, not the body`);
  assert.equal(created.json.updated_by, sub, `${label}: updated_by = sub`);
  const id = created.json.id;
  for (const c of clients) {
    const e = await c.rec.waitForTask('task_created', id, 1, 5_000);
    assert.equal(e.args[0].title, title, `${label}: ${c.how} got the task`);
  }
  await waitUntil(() => esGot.some((d) => d.task?.id === id) && aliasGot.some((d) => d.task?.id === id), 5_000,
    () => `${label}: both EventSources (?token=) receive the created task (got ${esGot.length}/${aliasGot.length})`);

  // A write through the socket records who did it, from the token.
  const ack = await emitAck(clients[0].socket, 'update_task', [{ id, status: 'in_progress', updated_by: 'mallory' }]);
  assertOkAck(ack, { id, status: 'in_progress', updated_by: sub, created_by: sub, version: 2 }, `${label}: socket update_task`);
  const viaQuery = await api.request('PATCH', `/api/tasks/${id}${q}`, { body: { description: 'via ?token=' } });
  assert.equal(viaQuery.status, 200, `${label}: PATCH ?token= -> ${viaQuery.status} ${viaQuery.text.slice(0, 200)}`);
  assert.equal(viaQuery.json.updated_by, sub);

  es.close(); esAlias.close();
  closeAll(clients.map((c) => c.socket));
}

// ---------------------------------------------------------------------------------------
// Server 1: JWT_SECRET only.
// ---------------------------------------------------------------------------------------

describe('JWT_SECRET set (HS256), no issuer/audience', () => {
  let srv;
  let good;

  before(async () => {
    srv = await startServer({ env: { JWT_SECRET: SECRET } });
    good = signToken({ sub: 'alice', name: 'Alice', workspace: 'acme' }, { secret: SECRET });
  });
  after(async () => {
    for (const es of eventSources) es.close();
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  test('valid HS256 tokens are accepted on REST, SSE, socket.io-client 4.x (auth/query/header) and 2.x (query)', { timeout: 40_000 }, async () => {
    await assertAcceptedEverywhere(srv.url, good, 'alice', 'valid');
    // nbf in the past is fine; no workspace claim means the `default` workspace.
    const nbfPast = signToken({ sub: 'nora', nbf: nowSeconds() - 30 }, { secret: SECRET });
    await assertAcceptedEverywhere(srv.url, nbfPast, 'nora', 'nbf in the past, no workspace claim');
  });

  test('a token minted by `taskwire token` is accepted and carries sub/workspace/name', { timeout: 30_000 }, async () => {
    const token = await mintWithCli({ sub: 'carol', workspace: 'acme', name: 'Carol', email: 'carol@example.com' }, { JWT_SECRET: SECRET });
    const claims = decodePayload(token);
    assert.equal(claims.sub, 'carol');
    assert.equal(claims.workspace, 'acme');
    assert.equal(claims.name, 'Carol');
    assert.ok(claims.exp > nowSeconds() + 3000 && claims.exp <= nowSeconds() + 3601, `default ttl 3600: exp ${claims.exp}`);
    await assertAcceptedEverywhere(srv.url, token, 'carol', 'taskwire token');
  });

  test('extra claims are ignored, and an array `aud` (RFC 7519 4.1.3, what Auth0 & co. issue) is accepted when no audience is configured', { timeout: 10_000 }, async () => {
    const api = rest(srv.url);
    const extra = signToken({ sub: 'alice', workspace: 'acme', iat: nowSeconds(), roles: ['admin'], jti: 'x1' }, { secret: SECRET });
    const r1 = await api.request('GET', '/api/tasks', { headers: bearer(extra) });
    assert.equal(r1.status, 200, `extra claims: ${r1.status} ${r1.text.slice(0, 200)}`);
    const arrayAud = signToken({ sub: 'alice', workspace: 'acme', aud: ['https://api.example.com', 'https://example.auth0.com/userinfo'] }, { secret: SECRET });
    const r2 = await api.request('GET', '/api/tasks', { headers: bearer(arrayAud) });
    assert.equal(r2.status, 200, `aud array, no JWT_AUDIENCE: ${r2.status} ${r2.text.slice(0, 200)}`);
  });

  test('the Bearer scheme is case-insensitive (RFC 7235)', { timeout: 10_000 }, async () => {
    const api = rest(srv.url);
    for (const scheme of ['bearer', 'BEARER']) {
      const r = await api.request('GET', '/api/tasks', { headers: { authorization: `${scheme} ${good}` } });
      assert.equal(r.status, 200, `${scheme}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  });

  const now = nowSeconds();
  const bad = () => ({
    'no token': undefined,
    expired: signToken({ sub: 'alice', workspace: 'acme', exp: now - 30 }, { secret: SECRET }),
    'nbf in the future': signToken({ sub: 'alice', workspace: 'acme', nbf: now + 3600 }, { secret: SECRET }),
    'wrong secret': signToken({ sub: 'alice', workspace: 'acme' }, { secret: `${SECRET}-not` }),
    'HS512 with the right secret': signToken({ sub: 'alice', workspace: 'acme' }, { secret: SECRET, alg: 'HS512' }),
    'HS384 with the right secret': signToken({ sub: 'alice', workspace: 'acme' }, { secret: SECRET, alg: 'HS384' }),
    'alg none (unsigned)': signToken({ sub: 'alice', workspace: 'acme' }, { alg: 'none' }),
    'alg None (case variant)': signToken({ sub: 'alice', workspace: 'acme' }, { alg: 'None' }),
    'HS256 header, signature stripped': signToken({ sub: 'alice', workspace: 'acme' }, { secret: SECRET }).replace(/\.[^.]+$/, '.'),
    'payload tampered after signing': (() => {
      const [h, , s] = signToken({ sub: 'alice', workspace: 'acme' }, { secret: SECRET }).split('.');
      const p = Buffer.from(JSON.stringify({ sub: 'alice', workspace: 'globex', exp: now + 3600 })).toString('base64url');
      return `${h}.${p}.${s}`;
    })(),
    'missing sub': signToken({ workspace: 'acme', name: 'Nobody' }, { secret: SECRET }),
    'empty sub': signToken({ sub: '', workspace: 'acme' }, { secret: SECRET }),
    'missing exp': signToken({ sub: 'alice', workspace: 'acme' }, { secret: SECRET, exp: false }),
    'garbage string': 'not-a-jwt',
    'three garbage segments': 'abc.def.ghi',
    'valid base64 but not JSON': `${Buffer.from('hello').toString('base64url')}.${Buffer.from('world').toString('base64url')}.sig`,
  });

  for (const name of Object.keys(bad())) {
    test(`refused everywhere: ${name}`, { timeout: 40_000 }, async () => {
      await assertRefusedEverywhere(srv.url, bad()[name], good, name);
    });
  }

  test('every protected route refuses a missing token; /healthz, /readyz and /metrics stay open', { timeout: 20_000 }, async () => {
    const api = rest(srv.url);
    const created = await api.request('POST', '/api/tasks', { headers: bearer(good), body: { title: uniqueTitle('protected') } });
    assert.equal(created.status, 201);
    const id = created.json.id;
    const routes = [
      ['GET', '/api/tasks'], ['POST', '/api/tasks', { title: 'x' }], ['GET', `/api/tasks/${id}`],
      ['PATCH', `/api/tasks/${id}`, { status: 'completed' }], ['PUT', `/api/tasks/${id}`, { status: 'completed' }],
      ['DELETE', `/api/tasks/${id}`], ['POST', '/update_task', { task_id: id, status: 'completed' }],
      ['GET', '/api/tasks/socket/stats'], ['GET', `/api/tasks/socket/users/${id}`],
    ];
    for (const [method, path, body] of routes) {
      assert401(await api.request(method, path, body === undefined ? {} : { body }), `no token: ${method} ${path}`);
      // A token in a non-Bearer scheme is no token.
      assert401(await api.request(method, path, { headers: { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` }, ...(body === undefined ? {} : { body }) }),
        `Basic auth: ${method} ${path}`);
    }
    const still = await api.request('GET', `/api/tasks/${id}`, { headers: bearer(good) });
    assert.equal(still.status, 200, 'the refused DELETE did not delete');
    assert.equal(still.json.version, 1, 'the refused PATCH/PUT/update_task changed nothing');
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const r = await api.request('GET', path);
      assert.equal(r.status, 200, `${path} without a token -> ${r.status}`);
    }
  });

  test('leeway is 0: a token valid for 3 more seconds is accepted now and refused once exp passed', { timeout: 15_000 }, async () => {
    const api = rest(srv.url);
    // exp is whole seconds: the token expires 2-3 s from now (3 - the current fraction).
    const exp = nowSeconds() + 3;
    const token = signToken({ sub: 'alice', workspace: 'acme', exp }, { secret: SECRET });
    const ok = await api.request('GET', '/api/tasks?limit=1', { headers: bearer(token) });
    assert.equal(ok.status, 200, `before exp: ${ok.status} ${ok.text.slice(0, 200)}`);
    while (Date.now() / 1000 < exp + 1.05) await sleep(100);
    assert401(await api.request('GET', '/api/tasks?limit=1', { headers: bearer(token) }), 'after exp');
    const err = await refusedV4(srv.url, { transports: ['websocket'], auth: { token } });
    assert.equal(err.message, 'unauthorized');
  });
});

// ---------------------------------------------------------------------------------------
// Server 2: JWT_ISSUER and JWT_AUDIENCE.
// ---------------------------------------------------------------------------------------

describe('JWT_ISSUER and JWT_AUDIENCE set', () => {
  const ISS = 'https://auth.example.com/';
  const AUD = 'taskwire-api';
  let srv;
  let good;

  before(async () => {
    srv = await startServer({ env: { JWT_SECRET: SECRET, JWT_ISSUER: ISS, JWT_AUDIENCE: AUD } });
    good = signToken({ sub: 'ivan', workspace: 'acme', iss: ISS, aud: AUD }, { secret: SECRET });
  });
  after(async () => {
    for (const es of eventSources) es.close();
    closeAll(sockets.splice(0));
    await srv?.stop();
  });

  test('a token with the configured iss and aud is accepted everywhere', { timeout: 40_000 }, async () => {
    await assertAcceptedEverywhere(srv.url, good, 'ivan', 'iss+aud');
  });

  test('`taskwire token` with JWT_ISSUER/JWT_AUDIENCE in its environment mints an accepted token', { timeout: 30_000 }, async () => {
    const token = await mintWithCli({ sub: 'ivy', workspace: 'acme' }, { JWT_SECRET: SECRET, JWT_ISSUER: ISS, JWT_AUDIENCE: AUD });
    const claims = decodePayload(token);
    assert.equal(claims.iss, ISS);
    assert.deepEqual([claims.aud].flat(), [AUD]);
    const r = await rest(srv.url).request('GET', '/api/tasks', { headers: bearer(token) });
    assert.equal(r.status, 200, `${r.status} ${r.text.slice(0, 200)}`);
  });

  test('an array `aud` containing the configured audience is accepted (RFC 7519 4.1.3)', { timeout: 10_000 }, async () => {
    const token = signToken({ sub: 'ivan', workspace: 'acme', iss: ISS, aud: [AUD, 'another-api'] }, { secret: SECRET });
    const r = await rest(srv.url).request('GET', '/api/tasks', { headers: bearer(token) });
    assert.equal(r.status, 200, `aud [${AUD}, another-api]: ${r.status} ${r.text.slice(0, 200)}`);
  });

  const bad = () => ({
    'array audience without the configured one': signToken({ sub: 'ivan', workspace: 'acme', iss: ISS, aud: ['another-api', 'third-api'] }, { secret: SECRET }),
    'wrong issuer': signToken({ sub: 'ivan', workspace: 'acme', iss: 'https://evil.example.com/', aud: AUD }, { secret: SECRET }),
    'missing issuer': signToken({ sub: 'ivan', workspace: 'acme', aud: AUD }, { secret: SECRET }),
    'wrong audience': signToken({ sub: 'ivan', workspace: 'acme', iss: ISS, aud: 'another-api' }, { secret: SECRET }),
    'missing audience': signToken({ sub: 'ivan', workspace: 'acme', iss: ISS }, { secret: SECRET }),
    'right claims, wrong secret': signToken({ sub: 'ivan', workspace: 'acme', iss: ISS, aud: AUD }, { secret: 'nope' }),
  });
  for (const name of Object.keys(bad())) {
    test(`refused everywhere: ${name}`, { timeout: 40_000 }, async () => {
      await assertRefusedEverywhere(srv.url, bad()[name], good, name);
    });
  }
});
