// socket.io-client 4.x (Engine.IO v4) over each transport setup: websocket only, polling
// only, and the default (polling, then upgrade to websocket). A REST create/update/delete
// must reach the client as task_created / task_updated / task_deleted, each with exactly one
// argument (the task), each exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rest, startServer } from './server.mjs';
import {
  assertSingleArgEvents, assertTask, closeAll, connectV4, record, transportName, uniqueTitle, waitUntil,
} from './sockets.mjs';

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

async function restLifecycle(rec) {
  const title = uniqueTitle('v4 lifecycle');
  const created = await api.createTask({ title, description: 'from REST' });
  assertTask(created, { title, status: 'pending', version: 1 }, 'POST response');

  const ev1 = await rec.waitForTask('task_created', created.id);
  assertTask(ev1.args[0], { id: created.id, title, description: 'from REST', status: 'pending', version: 1 }, 'task_created');

  const updated = await api.updateTask(created.id, { status: 'In Progress', title: `${title} (edited)` });
  assertTask(updated, { id: created.id, status: 'in_progress', version: 2 }, 'PATCH response');
  const ev2 = await rec.waitForTask('task_updated', created.id, 2);
  assertTask(ev2.args[0], { id: created.id, title: `${title} (edited)`, status: 'in_progress', version: 2 }, 'task_updated');

  await api.deleteTask(created.id);
  const ev3 = await rec.waitForTask('task_deleted', created.id);
  // For delete, the payload is the task as it was.
  assertTask(ev3.args[0], { id: created.id, title: `${title} (edited)`, status: 'in_progress', version: 2 }, 'task_deleted');

  // Socket.IO delivers in order on one connection: once task_deleted is here, any duplicate of
  // the earlier events would have arrived too.
  assert.equal(rec.count('task_created', created.id), 1, 'task_created delivered exactly once');
  assert.equal(rec.count('task_updated', created.id), 1, 'task_updated delivered exactly once');
  assert.equal(rec.count('task_deleted', created.id), 1, 'task_deleted delivered exactly once');
  assert.equal(assertSingleArgEvents(rec), 3, 'exactly three task events seen');
  // Order: created, updated, deleted.
  assert.deepEqual(rec.log.filter((e) => e.args[0]?.id === created.id).map((e) => e.event),
    ['task_created', 'task_updated', 'task_deleted']);
}

describe('socket.io-client 4.x', { timeout: 60_000 }, () => {
  test('websocket only: receives REST changes, one argument each', async () => {
    const s = await connectV4(srv.url, { transports: ['websocket'] });
    sockets.push(s);
    assert.equal(s.initialTransport.transport, 'websocket');
    assert.equal(transportName(s), 'websocket');
    assert.equal(typeof s.id, 'string');
    const rec = record(s, 'v4 websocket');
    await restLifecycle(rec);
    assert.equal(s.connected, true);
  });

  test('polling only: receives REST changes, one argument each, stays on polling', async () => {
    const s = await connectV4(srv.url, { transports: ['polling'] });
    sockets.push(s);
    assert.equal(s.initialTransport.transport, 'polling');
    const rec = record(s, 'v4 polling');
    await restLifecycle(rec);
    assert.equal(transportName(s), 'polling');
    assert.equal(s.connected, true);
  });

  test('default (polling, then upgrade): upgrades to websocket and receives REST changes', async () => {
    const s = await connectV4(srv.url, {});
    sockets.push(s);
    assert.equal(s.initialTransport.transport, 'polling', 'the default client starts with long-polling');
    const rec = record(s, 'v4 default');
    await waitUntil(() => transportName(s) === 'websocket', 10_000, 'the upgrade to websocket');
    await restLifecycle(rec);
    assert.equal(transportName(s), 'websocket');
    assert.equal(s.connected, true);
  });

  test('default client: events sent while the upgrade may still be in flight are not lost', async () => {
    // Start a change the moment we are connected (still on polling), keep going through the upgrade.
    const s = await connectV4(srv.url, {});
    sockets.push(s);
    const rec = record(s, 'v4 default (mid-upgrade)');
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const t = await api.createTask({ title: uniqueTitle(`mid-upgrade ${i}`) });
      ids.push(t.id);
    }
    for (const id of ids) await rec.waitForTask('task_created', id, 1);
    for (const id of ids) assert.equal(rec.count('task_created', id), 1, `task_created for ${id} exactly once`);
    assertSingleArgEvents(rec);
    await waitUntil(() => transportName(s) === 'websocket', 10_000, 'the upgrade to websocket');
  });
});
