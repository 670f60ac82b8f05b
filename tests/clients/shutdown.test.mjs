// SIGTERM with clients connected: the process exits with code 0 within 10 s, and every
// client sees its connection end (sockets closed, not left hanging).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rest, startServer } from './server.mjs';
import { closeAll, connectV2, connectV4, record, uniqueTitle, waitUntil } from './sockets.mjs';

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
