// One REST change must reach EVERY connected client, whatever its client version and
// transport: 5 socket.io-client 4.x clients (websocket, websocket, polling, polling, default
// with upgrade) plus 2 socket.io-client 2.5.0 clients (websocket, polling).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { rest, startServer } from './server.mjs';
import {
  assertSingleArgEvents, assertTask, closeAll, connectV2, connectV4, record, transportName, uniqueTitle, waitUntil,
} from './sockets.mjs';

let srv;
let api;
const clients = []; // { label, socket, rec }

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
  const specs = [
    ['v4 websocket #1', () => connectV4(srv.url, { transports: ['websocket'] })],
    ['v4 websocket #2', () => connectV4(srv.url, { transports: ['websocket'] })],
    ['v4 polling #1', () => connectV4(srv.url, { transports: ['polling'] })],
    ['v4 polling #2', () => connectV4(srv.url, { transports: ['polling'] })],
    ['v4 default (upgrade)', () => connectV4(srv.url, {})],
    ['v2 websocket', () => connectV2(srv.url, { transports: ['websocket'] })],
    ['v2 polling', () => connectV2(srv.url, { transports: ['polling'] })],
  ];
  const sockets = await Promise.all(specs.map(([, connect]) => connect()));
  specs.forEach(([label], i) => clients.push({ label, socket: sockets[i], rec: record(sockets[i], label) }));
});

after(async () => {
  closeAll(clients.map((c) => c.socket));
  await srv?.stop();
});

test('a REST create and update reach all 7 connected clients (v4 + v2, all transports)', { timeout: 60_000 }, async () => {
  assert.equal(clients.length, 7);
  const byLabel = Object.fromEntries(clients.map((c) => [c.label, c]));
  assert.equal(transportName(byLabel['v4 polling #1'].socket), 'polling');
  assert.equal(transportName(byLabel['v2 polling'].socket), 'polling');
  assert.equal(transportName(byLabel['v2 websocket'].socket), 'websocket');
  await waitUntil(() => transportName(byLabel['v4 default (upgrade)'].socket) === 'websocket', 10_000, 'v4 default upgrade');

  const title = uniqueTitle('broadcast');
  const created = await api.createTask({ title });
  await Promise.all(clients.map(async ({ rec, label }) => {
    const e = await rec.waitForTask('task_created', created.id, 1, 8_000);
    assertTask(e.args[0], { id: created.id, title, status: 'pending', version: 1 }, `${label} task_created`);
  }));

  const updated = await api.updateTask(created.id, { status: 'completed', assignee: 'alice' }, 'PUT');
  assertTask(updated, { status: 'completed', assignee: 'alice', version: 2 }, 'PUT response');
  await Promise.all(clients.map(async ({ rec, label }) => {
    const e = await rec.waitForTask('task_updated', created.id, 2, 8_000);
    assertTask(e.args[0], { id: created.id, title, status: 'completed', assignee: 'alice', version: 2 }, `${label} task_updated`);
  }));

  for (const { rec, label, socket } of clients) {
    assert.equal(rec.count('task_created', created.id), 1, `${label}: task_created exactly once`);
    assert.equal(rec.count('task_updated', created.id), 1, `${label}: task_updated exactly once`);
    assert.equal(assertSingleArgEvents(rec), 2, `${label}: two task events`);
    assert.equal(socket.connected, true, `${label} still connected`);
  }
});

test('a burst of 20 REST updates reaches every client complete and in order', { timeout: 60_000 }, async () => {
  const created = await api.createTask({ title: uniqueTitle('burst') });
  for (let i = 0; i < 20; i++) {
    await api.updateTask(created.id, { description: `step ${i + 1}` });
  }
  await Promise.all(clients.map(({ rec }) => rec.waitForTask('task_updated', created.id, 21, 10_000)));
  for (const { rec, label } of clients) {
    const versions = rec.log.filter((e) => e.event === 'task_updated' && e.args[0]?.id === created.id).map((e) => e.args[0].version);
    assert.deepEqual(versions, Array.from({ length: 20 }, (_, i) => i + 2), `${label}: versions 2..21 in order, no gaps or duplicates`);
    const last = rec.log.filter((e) => e.event === 'task_updated' && e.args[0]?.id === created.id).at(-1).args[0];
    assert.equal(last.description, 'step 20');
    assertSingleArgEvents(rec);
  }
});
