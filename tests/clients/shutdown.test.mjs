// SIGTERM with clients connected: the process exits with code 0 within 10 s, and every
// client sees its connection end (sockets closed, not left hanging). With clients around whose
// connection was refused (bad token), whose engine.io sessions are in no namespace, it still
// exits at once: far within the default SHUTDOWN_TIMEOUT_SECONDS (10).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { io as ioV4 } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';
import { rest, startServer } from './server.mjs';
import { closeAll, connectV2, connectV4, record, uniqueTitle, waitUntil } from './sockets.mjs';
import { signToken } from './tokens.mjs';

test('SIGTERM with 4.x and 2.x clients connected (websocket and polling) -> exit 0 within 10 s', { timeout: 40_000 }, async () => {
  const srv = await startServer();
  const sockets = [];
  try {
    sockets.push(
      await connectV4(srv.url, { transports: ['websocket'] }),
      await connectV4(srv.url, { transports: ['polling'] }),
      await connectV4(srv.url, {}),
      await connectV2(srv.url, { transports: ['websocket'] }),
      await connectV2(srv.url, { transports: ['polling'] }),
    );
    const disconnects = sockets.map(() => null);
    sockets.forEach((s, i) => s.on('disconnect', (reason) => { disconnects[i] = reason ?? 'disconnect'; }));

    // The sockets are live: a change reaches all of them before we stop the server.
    const recs = sockets.map((s, i) => record(s, `client ${i}`));
    const t = await rest(srv.url).createTask({ title: uniqueTitle('before shutdown') });
    await Promise.all(recs.map((r) => r.waitForTask('task_created', t.id, 1)));

    const result = await srv.stop({ timeoutMs: 10_000 });
    assert.equal(result.timedOut, false, `did not exit within 10 s of SIGTERM (killed); stderr:\n${srv.stderr().slice(-3000)}`);
    assert.equal(result.signal, null, `terminated by signal ${result.signal}`);
    assert.equal(result.code, 0, `exit code ${result.code}; stderr:\n${srv.stderr().slice(-3000)}`);
    assert.ok(result.ms < 10_000);

    // Every client notices the end of its connection.
    await waitUntil(() => disconnects.every((d) => d !== null), 10_000,
      () => `all clients to see disconnect (got ${JSON.stringify(disconnects)})`);
    for (const s of sockets) assert.equal(s.connected, false);
  } finally {
    closeAll(sockets);
    await srv.stop();
  }
});

test('SIGTERM right after the listening line -> exit 0 (10 start/stop cycles)', { timeout: 60_000 }, async () => {
  // The listening line means "ready": a SIGTERM sent the moment it appears must already be
  // handled gracefully (exit 0), not kill the process by the default signal action. Repeated
  // because the window is a race.
  const results = [];
  for (let i = 0; i < 10; i++) {
    const srv = await startServer();
    const r = await srv.stop({ timeoutMs: 10_000 });
    results.push(r);
    assert.equal(r.timedOut, false, `cycle ${i}: did not exit within 10 s of SIGTERM`);
  }
  const bad = results.map((r, i) => ({ i, code: r.code, signal: r.signal })).filter((r) => r.code !== 0);
  assert.deepEqual(bad, [], `${bad.length}/10 immediate SIGTERMs did not give exit 0: ${JSON.stringify(bad)}`);
});

// ---------------------------------------------------------------------------------------
// Refused clients: their engine.io sessions belong to no namespace.
// ---------------------------------------------------------------------------------------

const SECRET = 'shutdown-test-secret-0123456789abcdef';

/**
 * A raw Engine.IO 4 long-polling session whose socket.io CONNECT is refused, left open: the
 * handshake, `40{"token":"bad"}`, the poll that brings the CONNECT_ERROR, then one more poll
 * that stays pending (the server answers it at its next ping, 25 s later, or when the session
 * ends). Resolves once the pending poll is sent, with `{ pending }`, a promise of its answer.
 */
async function refusedRawPollingSession(url) {
  const base = `${url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  assert.match(open, /^0\{/, `handshake answer ${JSON.stringify(open)}`);
  const { sid } = JSON.parse(open.slice(1));
  const post = await fetch(`${base}&sid=${sid}`, { method: 'POST', body: '40{"token":"bad"}' });
  assert.equal(post.status, 200);
  // The refusal may share its poll with the first ping.
  const refusal = (await (await fetch(`${base}&sid=${sid}`)).text()).split('\x1e');
  assert.ok(refusal.includes('44{"message":"unauthorized"}'), `CONNECT answer ${JSON.stringify(refusal)}`);
  const pending = fetch(`${base}&sid=${sid}`).then(
    async (r) => ({ status: r.status, body: await r.text(), at: Date.now() }),
    (e) => ({ error: e.message, at: Date.now() }),
  );
  return { pending };
}

/**
 * socket.io-client 2.x with a bad token (reconnection on, its default): the refusal is an
 * `error` event and the client keeps its engine.io session open. Resolves once refused.
 */
function refusedV2(url, transports, clients) {
  const socket = ioV2(url, { forceNew: true, transports, query: { token: 'bad' } });
  clients.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`v2 ${transports}: no refusal within 8 s`)), 8_000);
    socket.on('connect', () => reject(new Error(`v2 ${transports} connected with a bad token`)));
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.engineClosed = null;
      socket.io.engine.on('close', (reason) => { socket.engineClosed ??= reason ?? 'close'; });
      resolve({ socket, err });
    });
  });
}

/**
 * socket.io-client 4.x with a bad token that tries again after every refusal, as an app does
 * that fetches a new token and reconnects: a new engine.io session each time. Resolves after
 * `n` refusals; `stop()` ends the loop.
 */
function retryingV4(url, transports, clients, n = 3) {
  const socket = ioV4(url, { forceNew: true, reconnection: false, transports, auth: { token: 'bad' } });
  clients.push(socket);
  let refusals = 0;
  let stopped = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`v4 ${transports}: ${refusals} refusals within 8 s`)), 8_000);
    socket.on('connect', () => reject(new Error(`v4 ${transports} connected with a bad token`)));
    socket.on('connect_error', () => {
      refusals += 1;
      if (refusals === n) { clearTimeout(timer); resolve({ socket, stop: () => { stopped = true; } }); }
      if (!stopped) setTimeout(() => { if (!stopped) socket.connect(); }, 10);
    });
  });
}

test('SIGTERM with refused clients around (bad token; polling and websocket; 4.x, 2.x and raw engine.io) -> exit 0 within 3 s, every session ends', { timeout: 40_000 }, async () => {
  // Default SHUTDOWN_TIMEOUT_SECONDS (10): the refused sessions must not make it wait.
  const srv = await startServer({ env: { JWT_SECRET: SECRET } });
  const good = signToken({ sub: 'alice', name: 'Alice', workspace: 'acme' }, { secret: SECRET });
  const refusedClients = [];
  const connected = [];
  const retrying = [];
  try {
    // Refused first, so that their next polls are long pending when the signal comes.
    const raw = await Promise.all([1, 2, 3].map(() => refusedRawPollingSession(srv.url)));
    const v2 = await Promise.all([
      refusedV2(srv.url, ['polling'], refusedClients),
      refusedV2(srv.url, ['polling'], refusedClients),
      refusedV2(srv.url, ['websocket'], refusedClients),
    ]);
    for (const { err } of v2) assert.deepEqual(err, { message: 'unauthorized' });
    retrying.push(...await Promise.all([
      retryingV4(srv.url, ['polling'], refusedClients),
      retryingV4(srv.url, ['websocket'], refusedClients),
    ]));

    // Clients with a good token, on every transport.
    connected.push(
      await connectV4(srv.url, { transports: ['websocket'], auth: { token: good } }),
      await connectV4(srv.url, { transports: ['polling'], auth: { token: good } }),
      await connectV4(srv.url, { auth: { token: good } }),
      await connectV2(srv.url, { transports: ['websocket'], query: { token: good } }),
      await connectV2(srv.url, { transports: ['polling'], query: { token: good } }),
    );
    const disconnects = connected.map(() => null);
    connected.forEach((s, i) => s.on('disconnect', (reason) => { disconnects[i] = reason ?? 'disconnect'; }));

    // The refused 2.x clients still hold their sessions, and no raw poll has been answered.
    for (const { socket } of v2) assert.equal(socket.io.engine.readyState, 'open');
    const unanswered = await Promise.race([
      Promise.all(raw.map((r) => r.pending)).then(() => false),
      new Promise((resolve) => { setImmediate(() => resolve(true)); }),
    ]);
    assert.equal(unanswered, true, 'the raw sessions\' polls were answered before the signal');

    const sigterm = Date.now();
    const result = await srv.stop({ timeoutMs: 10_000 });
    assert.equal(result.timedOut, false, `did not exit within 10 s of SIGTERM (killed); stderr:\n${srv.stderr().slice(-3000)}`);
    assert.equal(result.signal, null, `terminated by signal ${result.signal}`);
    assert.equal(result.code, 0, `exit code ${result.code}; stderr:\n${srv.stderr().slice(-3000)}`);
    assert.ok(result.ms < 3_000, `exit took ${result.ms} ms after SIGTERM (the shutdown waited for the refused sessions)`);

    // The pending polls were answered with the close packet, not cut off or left to time out.
    for (const [i, r] of raw.entries()) {
      const answer = await r.pending;
      assert.equal(answer.error, undefined, `raw session ${i}: pending poll failed: ${answer.error}`);
      assert.equal(answer.status, 200, `raw session ${i}: pending poll status ${answer.status}`);
      assert.ok(answer.body.split('\x1e').includes('1'), `raw session ${i}: pending poll answered ${JSON.stringify(answer.body)}, not the close packet`);
      assert.ok(answer.at - sigterm < 3_000, `raw session ${i}: pending poll answered ${answer.at - sigterm} ms after SIGTERM`);
    }
    // Every refused 2.x client saw its engine.io session end; every connected client its
    // socket disconnect.
    await waitUntil(() => v2.every(({ socket }) => socket.engineClosed !== null), 5_000,
      () => `refused 2.x clients to see their session close (got ${JSON.stringify(v2.map(({ socket }) => socket.engineClosed))})`);
    await waitUntil(() => disconnects.every((d) => d !== null), 5_000,
      () => `all connected clients to see disconnect (got ${JSON.stringify(disconnects)})`);
    for (const s of connected) assert.equal(s.connected, false);
  } finally {
    for (const r of retrying) r.stop();
    closeAll(connected);
    closeAll(refusedClients);
    await srv.stop();
  }
});
