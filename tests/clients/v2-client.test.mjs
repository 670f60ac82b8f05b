// socket.io-client 2.5.0 (Engine.IO v3), installed as the npm alias `socket.io-client-v2`,
// over websocket, over long-polling and with its default transports (polling, then the
// upgrade to a WebSocket): receives the task events with exactly one argument and can use
// create_task / update_task / delete_task with acks.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { metric, rest, scrapeMetrics, startServer } from './server.mjs';
import {
  assertErrorAck, assertOkAck, assertSingleArgEvents, assertTask, closeAll, connectV2, emitAck, record, transportName,
  sleep, uniqueTitle, waitUntil,
} from './sockets.mjs';

const require = createRequire(import.meta.url);

let srv;
let api;
const sockets = [];

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  closeAll(sockets);
  await srv?.stop();
});

test('the alias really is socket.io-client 2.5.0 speaking Engine.IO 3', () => {
  assert.equal(require('socket.io-client-v2/package.json').version, '2.5.0');
  assert.equal(require('engine.io-client/package.json').version.split('.')[0], '6'); // the 4.x client's engine
  const v2engine = require(require.resolve('engine.io-client/package.json', { paths: [require.resolve('socket.io-client-v2')] }));
  assert.equal(v2engine.version.split('.')[0], '3', 'socket.io-client 2.5.0 uses engine.io-client 3.x (EIO=3)');
});

for (const transport of ['websocket', 'polling', 'default']) {
  describe(`socket.io-client 2.5.0 over ${transport}`, { timeout: 60_000 }, () => {
    let s;
    let rec;
    let observer;
    let observerRec;
    const opts = transport === 'default' ? {} : { transports: [transport] };
    // The default transports end on a WebSocket once the upgrade is done.
    const expected = transport === 'default' ? 'websocket' : transport;

    before(async () => {
      s = await connectV2(srv.url, opts);
      observer = await connectV2(srv.url, opts);
      sockets.push(s, observer);
      rec = record(s, `v2 ${transport}`);
      observerRec = record(observer, `v2 ${transport} observer`);
    });

    test('connected with the requested transport', async () => {
      assert.equal(s.connected, true);
      await waitUntil(() => transportName(s) === expected && transportName(observer) === expected, 5_000,
        () => `v2 ${transport}: on ${expected}, is on ${transportName(s)} / ${transportName(observer)}`);
      assert.equal(typeof s.id, 'string');
      if (transport === 'default') {
        // The server moved both upgraded Engine.IO v3 sessions to its direct write path.
        let upgraded = 0;
        for (let i = 0; i < 100 && upgraded < 2; i++) {
          upgraded = metric(await scrapeMetrics(srv.url), 'taskwire_engineio_upgraded_direct_sessions');
          if (upgraded < 2) await sleep(50);
        }
        assert.equal(upgraded, 2, 'upgraded sessions on the direct write path');
      }
    });

    test('REST create/update/delete arrive as task_* events with one argument', async () => {
      const title = uniqueTitle(`v2 ${transport}`);
      const t = await api.createTask({ title });
      const e1 = await rec.waitForTask('task_created', t.id, 1);
      assertTask(e1.args[0], { id: t.id, title, status: 'pending', version: 1 }, 'task_created');

      await api.updateTask(t.id, { status: 'in-progress' });
      const e2 = await rec.waitForTask('task_updated', t.id, 2);
      assertTask(e2.args[0], { id: t.id, title, status: 'in_progress', version: 2 }, 'task_updated');

      await api.deleteTask(t.id);
      const e3 = await rec.waitForTask('task_deleted', t.id);
      assertTask(e3.args[0], { id: t.id, title, status: 'in_progress', version: 2 }, 'task_deleted');

      assert.equal(rec.count('task_created', t.id), 1);
      assert.equal(rec.count('task_updated', t.id), 1);
      assert.equal(rec.count('task_deleted', t.id), 1);
      assert.equal(assertSingleArgEvents(rec), 3);
    });

    test('create_task / update_task / delete_task with acks', async () => {
      const title = uniqueTitle(`v2 ${transport} cmd`);
      const created = assertOkAck(await emitAck(s, 'create_task', [{ title, status: 'IN_PROGRESS' }]),
        { title, status: 'in_progress', version: 1 }, 'v2 create_task');
      const r = await api.getTask(created.id);
      assert.equal(r.status, 200);
      assertTask(r.json, { id: created.id, title, version: 1 }, 'REST after v2 create_task');
      await observerRec.waitForTask('task_created', created.id, 1);

      assertOkAck(await emitAck(s, 'update_task', [{ id: created.id, status: 'completed' }]),
        { id: created.id, status: 'completed', version: 2 }, 'v2 update_task');
      const e = await observerRec.waitForTask('task_updated', created.id, 2);
      assert.equal(e.args[0].status, 'completed');

      assertOkAck(await emitAck(s, 'delete_task', [{ id: created.id }]),
        { id: created.id, status: 'completed', version: 2 }, 'v2 delete_task');
      assert.equal((await api.getTask(created.id)).status, 404);
      await observerRec.waitForTask('task_deleted', created.id);
      assertSingleArgEvents(observerRec);
    });

    test('error acks for bad payloads; the connection survives', async () => {
      const e1 = assertErrorAck(await emitAck(s, 'create_task', [{}]), ['validation_failed'], 'v2 create_task {}');
      assert.match(e1.message, /title/i);
      assertErrorAck(await emitAck(s, 'create_task', [42]), ['validation_failed', 'invalid_json'], 'v2 create_task 42');
      assertErrorAck(await emitAck(s, 'create_task', []), ['validation_failed', 'invalid_json'], 'v2 create_task no payload');
      assertErrorAck(await emitAck(s, 'update_task', [{ id: '01890a5d-ac96-774b-bcce-b302099a8057', title: 'x' }]),
        ['not_found'], 'v2 update_task unknown id');
      assert.equal(s.connected, true);
      assertOkAck(await emitAck(s, 'create_task', [{ title: uniqueTitle('v2 after errors') }]), {}, 'v2 create after errors');
    });
  });
}
