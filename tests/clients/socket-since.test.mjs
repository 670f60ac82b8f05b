// Socket.IO sequence numbers and replay (socket.io-client 4.8): `auth: {since}` opts in to a
// second `{seq, type, at}` argument and replays what was missed before live events; `sync`
// does the same on a connected socket with an ack `{ok, replayed}`; a position that was
// pruned (or is ahead of the log) gives `resync_required` and then live events.
//
// `seq` counts every REST change made on the main server, so it is the expected latest
// sequence number at any point. Clients run WebSocket-only, polling-only and with the default
// transports (polling, then the upgrade to a WebSocket, after which the server writes the
// session on its direct path): replay and live events must keep their order across it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { rest, startServer, waitForMetric } from './server.mjs';
import {
  TASK_EVENTS, assertErrorAck, assertSeqMeta, assertSingleArgEvents, assertTask, closeAll, connectV4Recorded, emitAck,
  sleep, transportName, uniqueTitle, waitUntil,
} from './sockets.mjs';

let srv;
let api;
let seq = 0;
const sockets = [];

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  closeAll(sockets);
  await srv?.stop();
});

async function connect(url, opts, label) {
  const c = await connectV4Recorded(url, opts, label);
  sockets.push(c.socket);
  return c;
}

const taskEvents = (rec) => rec.log.filter((e) => TASK_EVENTS.includes(e.event));
const seqs = (rec) => taskEvents(rec).map((e) => e.args[1]?.seq);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** Client options for `transports` (an array, or 'default' for socket.io-client's own). */
const withTransports = (transports, opts) => (transports === 'default' ? opts : { transports, ...opts });

test('auth {since: 0} on a server with 3 prior changes: replays seq 1..3 (two args) then live 4', { timeout: 20_000 }, async () => {
  const title = uniqueTitle('since0');
  const t = await api.createTask({ title });
  await api.updateTask(t.id, { status: 'in_progress' });
  await api.updateTask(t.id, { assignee: 'carol' });
  seq = 3;

  const clients = [];
  let upgrading;
  for (const transports of [['websocket'], ['polling'], 'default']) {
    const { socket, rec } = await connect(srv.url, withTransports(transports, { auth: { since: 0 } }), `since0 ${transports}`);
    clients.push(rec);
    if (transports === 'default') upgrading = socket;
    await waitUntil(() => taskEvents(rec).length >= 3, 5_000, () => `${rec.label}: 3 replayed events, got ${taskEvents(rec).length}`);
    const ev = taskEvents(rec);
    assert.deepEqual(ev.map((e) => e.event), ['task_created', 'task_updated', 'task_updated'], rec.label);
    ev.forEach((e, i) => assert.equal(assertSeqMeta(e, `${rec.label} #${i}`).seq, i + 1));
    assertTask(ev[0].args[0], { id: t.id, title, version: 1 }, `${rec.label} replayed create`);
    assertTask(ev[2].args[0], { id: t.id, assignee: 'carol', version: 3 }, `${rec.label} replayed update`);
  }

  await waitUntil(() => transportName(upgrading) === 'websocket', 5_000, () => 'the default client upgraded to a WebSocket');
  await api.updateTask(t.id, { status: 'completed' });
  seq = 4;
  for (const rec of clients) {
    await rec.waitForTask('task_updated', t.id, 4, 5_000);
    await sleep(100);
    assert.deepEqual(seqs(rec), [1, 2, 3, 4], `${rec.label}: replay then live, no gap, no duplicate`);
    assertSeqMeta(taskEvents(rec)[3], `${rec.label} live`);
  }
  closeAll(sockets.splice(0));
});

test('a plain client gets 1 argument while a since client gets 2 for the same event', { timeout: 20_000 }, async () => {
  const plain = await connect(srv.url, { transports: ['websocket'] }, 'plain');
  const withSeq = await connect(srv.url, { transports: ['websocket'], auth: { since: seq } }, 'since=latest');
  const plainPolling = await connect(srv.url, { transports: ['polling'], auth: { token: 'ignored-without-jwt' } }, 'plain polling (auth without since)');
  // Default transports: the changes below may arrive before, during or after the upgrade.
  const withSeqDefault = await connect(srv.url, { auth: { since: seq } }, 'since=latest, default transports');
  await sleep(200);
  assert.equal(taskEvents(withSeq.rec).length, 0, 'since = latest replays nothing');
  assert.equal(taskEvents(withSeqDefault.rec).length, 0, 'since = latest replays nothing (default transports)');

  const t = await api.createTask({ title: uniqueTitle('args') });
  seq += 1;
  await api.updateTask(t.id, { description: 'x' });
  seq += 1;
  for (const c of [plain, withSeq, plainPolling, withSeqDefault]) await c.rec.waitForTask('task_updated', t.id, 2, 5_000);

  assert.equal(assertSingleArgEvents(plain.rec), 2, 'plain: two task events');
  assert.equal(assertSingleArgEvents(plainPolling.rec), 2, 'plain polling: two task events');
  const ev = taskEvents(withSeq.rec);
  assert.equal(ev.length, 2);
  const m1 = assertSeqMeta(ev[0], 'since client create');
  const m2 = assertSeqMeta(ev[1], 'since client update');
  assert.deepEqual([m1.seq, m2.seq], [seq - 1, seq]);
  assert.deepEqual(ev[0].args[0], taskEvents(plain.rec)[0].args[0], 'same task JSON as the plain client');
  assert.deepEqual(ev[1].args[0], taskEvents(plain.rec)[1].args[0], 'same task JSON as the plain client');
  assert.ok(Date.parse(m2.at) >= Date.parse(m1.at), 'at is non-decreasing');
  assert.deepEqual(seqs(withSeqDefault.rec), [seq - 1, seq], 'default transports: the same two events, in order');
  closeAll(sockets.splice(0));
});

test('sync {since}: ack {ok: true, replayed: k}, the k events arrive with two args, then live ones once', { timeout: 20_000 }, async () => {
  const c = await connect(srv.url, { transports: ['websocket'] }, 'sync client');
  const t = await api.createTask({ title: uniqueTitle('sync') });
  seq += 1;
  for (let i = 0; i < 4; i++) { await api.updateTask(t.id, { description: `s${i}` }); seq += 1; }
  await c.rec.waitForTask('task_updated', t.id, 5, 5_000);
  const from = seq - 5;
  const before = c.rec.log.length;

  const ack = await emitAck(c.socket, 'sync', [{ since: from }]);
  assert.equal(ack.length, 1, `one ack argument: ${JSON.stringify(ack)}`);
  assert.deepEqual(ack[0], { ok: true, replayed: 5 });
  await waitUntil(() => c.rec.log.length - before >= 5, 5_000, 'the 5 replayed events');
  const replayed = c.rec.log.slice(before).filter((e) => TASK_EVENTS.includes(e.event));
  assert.deepEqual(replayed.map((e) => assertSeqMeta(e, 'sync replay').seq), range(from + 1, seq));
  assert.deepEqual(replayed.map((e) => e.args[0].version), [1, 2, 3, 4, 5]);

  await api.updateTask(t.id, { description: 'live after sync' });
  seq += 1;
  await c.rec.waitForTask('task_updated', t.id, 6, 5_000);
  await sleep(200);
  const live = c.rec.log.filter((e) => e.event === 'task_updated' && e.args[0]?.version === 6);
  assert.equal(live.length, 1, `live event exactly once after sync, got ${live.map((e) => e.args.length)} args`);
  assert.equal(assertSeqMeta(live[0], 'live after sync').seq, seq);

  // sync at the head replays nothing
  const ack2 = await emitAck(c.socket, 'sync', [{ since: seq }]);
  assert.deepEqual(ack2[0], { ok: true, replayed: 0 });
  // malformed sync is refused with an error ack, not a crash
  const bad = await emitAck(c.socket, 'sync', [{ since: 'yesterday' }]);
  assertErrorAck(bad, ['validation_failed'], 'sync with a non-integer since');
  assert.equal(c.socket.connected, true);
  closeAll(sockets.splice(0));
});

test('since greater than the latest seq -> resync_required on connect and in the sync ack, then live', { timeout: 20_000 }, async () => {
  const ahead = seq + 1000;
  const c = await connect(srv.url, { transports: ['websocket'], auth: { since: ahead } }, 'since ahead');
  const r = await c.rec.waitFor((e) => e.event === 'resync_required', 5_000, 'resync_required');
  assert.deepEqual(r.args, [{ type: 'resync_required', since: ahead, latest: seq }]);

  const p = await connect(srv.url, { transports: ['polling'] }, 'sync ahead');
  const ack = await emitAck(p.socket, 'sync', [{ since: ahead }]);
  const err = assertErrorAck(ack, ['resync_required'], 'sync ahead of the log');
  assert.match(err.message, /\S/);

  const t = await api.createTask({ title: uniqueTitle('after-ahead') });
  seq += 1;
  for (const x of [c, p]) {
    const e = await x.rec.waitForTask('task_created', t.id, 1, 5_000);
    await sleep(100);
    assert.equal(x.rec.count('task_created', t.id), 1, `${x.rec.label}: live event once`);
    assert.equal(assertSeqMeta(e, x.rec.label).seq, seq);
  }
  closeAll(sockets.splice(0));
});

test('after pruning (EVENT_RETENTION_COUNT=5): resync_required on connect / in sync ack; in-window since still replays', { timeout: 30_000 }, async () => {
  const rs = await startServer({ env: { EVENT_RETENTION_COUNT: '5', EVENT_PRUNE_INTERVAL_SECONDS: '1' } });
  const local = [];
  try {
    const rapi = rest(rs.url);
    const t = await rapi.createTask({ title: uniqueTitle('prune') });
    for (let i = 2; i <= 20; i++) await rapi.updateTask(t.id, { description: `p${i}` });
    await waitForMetric(rs.url, 'taskwire_events_pruned_total', 15); // the log holds 16..20

    const stale = await connectV4Recorded(rs.url, { transports: ['websocket'], auth: { since: 1 } }, 'since 1 (pruned)');
    local.push(stale.socket);
    const r = await stale.rec.waitFor((e) => e.event === 'resync_required', 5_000, 'resync_required on connect');
    assert.deepEqual(r.args, [{ type: 'resync_required', since: 1, latest: 20 }]);

    const boundaryOld = await connectV4Recorded(rs.url, { transports: ['polling'], auth: { since: 14 } }, 'since 14 (16.. kept, 15 gone)');
    local.push(boundaryOld.socket);
    const r14 = await boundaryOld.rec.waitFor((e) => e.event === 'resync_required', 5_000, 'resync_required for since 14');
    assert.deepEqual(r14.args, [{ type: 'resync_required', since: 14, latest: 20 }]);

    const inWindow = await connectV4Recorded(rs.url, { transports: ['websocket'], auth: { since: 15 } }, 'since 15 (in window)');
    local.push(inWindow.socket);
    await waitUntil(() => taskEvents(inWindow.rec).length >= 5, 5_000, () => `replay 16..20, got ${seqs(inWindow.rec)}`);
    assert.deepEqual(seqs(inWindow.rec), [16, 17, 18, 19, 20]);
    assert.equal(inWindow.rec.log.filter((e) => e.event === 'resync_required').length, 0);

    const syncer = await connectV4Recorded(rs.url, { transports: ['websocket'] }, 'sync 1 (pruned)');
    local.push(syncer.socket);
    const ack = await emitAck(syncer.socket, 'sync', [{ since: 1 }]);
    assertErrorAck(ack, ['resync_required'], 'sync from a pruned position');

    await rapi.updateTask(t.id, { description: 'live after prune' });
    for (const x of [stale, boundaryOld, inWindow, syncer]) {
      const e = await x.rec.waitForTask('task_updated', t.id, 21, 5_000);
      await sleep(100);
      assert.equal(x.rec.count('task_updated', t.id, 21), 1, `${x.rec.label}: live event exactly once`);
      assert.equal(assertSeqMeta(e, x.rec.label).seq, 21);
    }
    assert.equal(taskEvents(stale.rec).length, 1, 'the stale client got no replay, only the live event');
  } catch (e) {
    console.log(`--- server log (tail) ---\n${rs.stderr().slice(-6000)}`);
    throw e;
  } finally {
    closeAll(local);
    await rs.stop();
  }
});
