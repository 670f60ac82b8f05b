// SSE with a real EventSource (the `eventsource` npm package, WHATWG-compliant) on
// /api/tasks/stream: plain `onmessage` (the seed-era frontend pattern), wrapped in an RxJS
// Observable and through rxjs `fromEvent`, `?named=1`, the `/task_updates` alias, response
// headers, keep-alive comments, resuming with `?lastEventId=`, `resync_required` when the
// position was pruned, and EventSource's own reconnect (Last-Event-ID header) across a
// SIGKILL + restart of the server on the same port and database.
//
// Every REST change made here is counted in `seq`, so each event's id must be exactly the
// number of changes made so far on that server (seq is per workspace, gapless, from 1).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { Observable, fromEvent, lastValueFrom, map, take, timeout, toArray } from 'rxjs';
import { rest, startServer, waitForMetric } from './server.mjs';
import { assertTask, sleep, uniqueTitle, waitUntil } from './sockets.mjs';
import { esReady, openRawSse, waitForList } from './sse.mjs';

let srv;
let api;
let seq = 0; // changes committed on `srv` so far = latest sequence number
const open = new Set(); // EventSources to close at the end

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  for (const es of open) es.close();
  await srv?.stop({ removeDir: true });
});

function eventSource(path, init) {
  const es = new EventSource(srv.url + path, init);
  open.add(es);
  return es;
}

async function create(title) {
  const t = await api.createTask({ title });
  seq += 1;
  return t;
}
async function update(id, fields) {
  const t = await api.updateTask(id, fields);
  seq += 1;
  return t;
}
async function remove(id) {
  await api.deleteTask(id);
  seq += 1;
}

test('EventSource with only onmessage receives created/updated/deleted with id = seq', { timeout: 20_000 }, async () => {
  const es = eventSource('/api/tasks/stream');
  const got = [];
  es.onmessage = (e) => got.push({ data: JSON.parse(e.data), lastEventId: e.lastEventId, type: e.type });
  await esReady(es);

  const base = seq;
  const title = uniqueTitle('sse-onmessage');
  const t = await create(title);
  await update(t.id, { status: 'in_progress' });
  await update(t.id, { title: `${title} v3` });
  await remove(t.id);

  await waitForList(got, (l) => l.length >= 4, 5_000, () => `4 messages, got ${got.length}`);
  await sleep(200); // nothing extra may follow
  assert.equal(got.length, 4, `exactly 4 messages: ${JSON.stringify(got.map((g) => g.lastEventId))}`);
  assert.deepEqual(got.map((g) => g.type), ['message', 'message', 'message', 'message']);
  assert.deepEqual(got.map((g) => g.data.type), ['task_created', 'task_updated', 'task_updated', 'task_deleted']);
  assert.deepEqual(got.map((g) => g.lastEventId), [1, 2, 3, 4].map((i) => String(base + i)), 'lastEventId = seq, +1 each');
  assertTask(got[0].data.task, { id: t.id, title, version: 1, status: 'pending' }, 'created');
  assertTask(got[1].data.task, { id: t.id, title, version: 2, status: 'in_progress' }, 'updated #1');
  assertTask(got[2].data.task, { id: t.id, title: `${title} v3`, version: 3 }, 'updated #2');
  assertTask(got[3].data.task, { id: t.id, title: `${title} v3`, version: 3 }, 'deleted (task as it was)');
  es.close();
});

test('the seed-era RxJS Observable wrapper around EventSource gets task events and closes on unsubscribe', { timeout: 20_000 }, async () => {
  let es;
  const task$ = new Observable((sub) => {
    es = eventSource('/api/tasks/stream');
    es.onmessage = (e) => sub.next(JSON.parse(e.data));
    return () => es.close();
  });
  const result = lastValueFrom(task$.pipe(take(3), toArray(), timeout(8_000)));
  await waitUntil(() => es !== undefined, 2_000, 'subscription');
  await esReady(es);

  const t = await create(uniqueTitle('sse-observable'));
  await update(t.id, { description: 'one' });
  await update(t.id, { description: 'two' });
  const events = await result;
  assert.deepEqual(events.map((e) => e.type), ['task_created', 'task_updated', 'task_updated']);
  assert.deepEqual(events.map((e) => e.task.id), [t.id, t.id, t.id]);
  assert.deepEqual(events.map((e) => e.task.version), [1, 2, 3]);
  assert.equal(events[2].task.description, 'two');
  assert.equal(es.readyState, 2, 'take(3) completed, teardown closed the EventSource');
});

test('rxjs fromEvent(eventSource, "message") receives task events', { timeout: 20_000 }, async () => {
  const es = eventSource('/api/tasks/stream');
  await esReady(es);
  const result = lastValueFrom(fromEvent(es, 'message').pipe(
    map((e) => ({ id: e.lastEventId, data: JSON.parse(e.data) })), take(2), toArray(), timeout(8_000)));
  const base = seq;
  const t = await create(uniqueTitle('sse-fromEvent'));
  await update(t.id, { status: 'completed' });
  const events = await result;
  assert.deepEqual(events.map((e) => e.id), [String(base + 1), String(base + 2)]);
  assert.deepEqual(events.map((e) => e.data.type), ['task_created', 'task_updated']);
  assertTask(events[1].data.task, { id: t.id, status: 'completed', version: 2 }, 'fromEvent update');
  es.close();
});

test('?named=1: addEventListener("task_updated") receives it and onmessage does not', { timeout: 20_000 }, async () => {
  const es = eventSource('/api/tasks/stream?named=1');
  const unnamed = [];
  const named = [];
  es.onmessage = (e) => unnamed.push(e);
  for (const type of ['task_created', 'task_updated', 'task_deleted']) {
    es.addEventListener(type, (e) => named.push({ type: e.type, id: e.lastEventId, data: JSON.parse(e.data) }));
  }
  await esReady(es);
  const base = seq;
  const t = await create(uniqueTitle('sse-named'));
  await update(t.id, { assignee: 'bob' });
  await waitForList(named, (l) => l.length >= 2, 5_000, () => `2 named events, got ${named.length}`);
  await sleep(200);
  assert.equal(unnamed.length, 0, `onmessage must not fire for named events: ${unnamed.map((e) => e.data).join(' | ')}`);
  assert.deepEqual(named.map((e) => e.type), ['task_created', 'task_updated']);
  assert.deepEqual(named.map((e) => e.data.type), ['task_created', 'task_updated']);
  assert.deepEqual(named.map((e) => e.id), [String(base + 1), String(base + 2)]);
  assertTask(named[1].data.task, { id: t.id, assignee: 'bob', version: 2 }, 'named update');
  es.close();
});

test('response headers and first bytes: text/event-stream, X-Accel-Buffering: no, retry: 3000', { timeout: 20_000 }, async () => {
  for (const p of ['/api/tasks/stream', '/task_updates']) {
    const s = await openRawSse(srv.url + p);
    try {
      assert.equal(s.status, 200, `${p} status`);
      assert.match(s.headers.get('content-type') ?? '', /^text\/event-stream\b/, `${p} content-type`);
      assert.equal(s.headers.get('x-accel-buffering'), 'no', `${p} X-Accel-Buffering`);
      await waitUntil(() => s.blocks.length >= 1, 3_000, `${p}: first block`);
      assert.equal(s.blocks[0].retry, '3000', `${p}: first block should be retry: 3000, got ${JSON.stringify(s.blocks[0])}`);
      assert.equal(s.blocks[0].data, undefined, `${p}: retry block carries no data`);
      assert.equal(s.blocks.filter((b) => b.retry !== undefined).length, 1, `${p}: retry sent once`);
    } finally {
      await s.close();
    }
  }
});

test('the /task_updates alias works with EventSource onmessage', { timeout: 20_000 }, async () => {
  const es = eventSource('/task_updates');
  const got = [];
  es.onmessage = (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) });
  await esReady(es);
  const base = seq;
  const t = await create(uniqueTitle('sse-alias'));
  await waitForList(got, (l) => l.length >= 1, 5_000, 'an event on /task_updates');
  assert.equal(got[0].id, String(base + 1));
  assert.equal(got[0].data.type, 'task_created');
  assertTask(got[0].data.task, { id: t.id, version: 1 }, '/task_updates');
  es.close();
});

test('resume with ?lastEventId= after closing: exactly the 5 missed events in order, then live', { timeout: 20_000 }, async () => {
  const es1 = eventSource('/api/tasks/stream');
  const first = [];
  es1.onmessage = (e) => first.push(e.lastEventId);
  await esReady(es1);
  const t = await create(uniqueTitle('sse-resume'));
  await update(t.id, { description: 'seen' });
  await waitForList(first, (l) => l.length >= 2, 5_000, 'two events before closing');
  const last = Number(first.at(-1));
  assert.equal(last, seq);
  es1.close();

  for (let i = 1; i <= 5; i++) await update(t.id, { description: `missed ${i}` });

  const es2 = eventSource(`/api/tasks/stream?lastEventId=${last}`);
  const got = [];
  es2.onmessage = (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) });
  await waitForList(got, (l) => l.length >= 5, 5_000, () => `5 replayed events, got ${got.length}`);
  await sleep(200);
  assert.equal(got.length, 5, `exactly the 5 missed events, got ids ${got.map((g) => g.id)}`);
  assert.deepEqual(got.map((g) => g.id), [1, 2, 3, 4, 5].map((i) => String(last + i)));
  assert.deepEqual(got.map((g) => g.data.task.description), [1, 2, 3, 4, 5].map((i) => `missed ${i}`));
  assert.deepEqual(got.map((g) => g.data.task.version), [3, 4, 5, 6, 7]);

  await update(t.id, { description: 'live' });
  await waitForList(got, (l) => l.length >= 6, 5_000, 'the live event after the replay');
  await sleep(200);
  assert.equal(got.length, 6);
  assert.equal(got[5].id, String(last + 6));
  assert.equal(got[5].data.task.description, 'live');
  es2.close();
});

test('resume from the latest position replays nothing and goes live', { timeout: 20_000 }, async () => {
  const es = eventSource(`/api/tasks/stream?lastEventId=${seq}`);
  const got = [];
  es.onmessage = (e) => got.push(e.lastEventId);
  await esReady(es);
  await sleep(300);
  assert.deepEqual(got, [], 'nothing to replay');
  await create(uniqueTitle('sse-at-head'));
  await waitForList(got, (l) => l.length >= 1, 5_000, 'live event');
  assert.deepEqual(got, [String(seq)]);
  es.close();
});

test('keep-alive comments every SSE_KEEPALIVE_SECONDS', { timeout: 20_000 }, async () => {
  const ka = await startServer({ env: { SSE_KEEPALIVE_SECONDS: '1' } });
  try {
    const s = await openRawSse(`${ka.url}/api/tasks/stream`);
    try {
      await waitUntil(() => s.comments.length >= 2, 4_000, () => `2 keep-alive comments, got ${s.comments.length}`);
      const gap = s.comments[1].at - s.comments[0].at;
      assert.ok(gap >= 500 && gap <= 2_000, `keep-alive interval ~1 s, measured ${gap} ms`);
      assert.equal(s.events.length, 0, 'keep-alives are comments, not events');
    } finally {
      await s.close();
    }
  } finally {
    await ka.stop();
  }
});

test('too old (pruned) or ahead of the log: one unnamed resync_required event, then live', { timeout: 30_000 }, async () => {
  const rs = await startServer({ env: { EVENT_RETENTION_COUNT: '5', EVENT_PRUNE_INTERVAL_SECONDS: '1' } });
  const ess = [];
  try {
    const rapi = rest(rs.url);
    const t = await rapi.createTask({ title: uniqueTitle('sse-prune') });
    for (let i = 2; i <= 20; i++) await rapi.updateTask(t.id, { description: `u${i}` });
    await waitForMetric(rs.url, 'taskwire_events_pruned_total', 15); // the log holds 16..20

    for (const [since, label] of [[1, 'pruned'], [500, 'ahead of the log']]) {
      const es = new EventSource(`${rs.url}/api/tasks/stream?lastEventId=${since}`);
      ess.push(es);
      const got = [];
      es.onmessage = (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) });
      await waitForList(got, (l) => l.length >= 1, 5_000, `${label}: resync_required`);
      await sleep(200);
      assert.equal(got.length, 1, `${label}: exactly one event, got ${JSON.stringify(got).slice(0, 400)}`);
      assert.deepEqual(got[0].data, { type: 'resync_required', since, latest: 20 }, `${label}: payload`);
      es.onmessage = null;
    }
    // both are live afterwards: the next change (seq 21) reaches both
    const live = ess.map(() => []);
    ess.forEach((es, i) => { es.onmessage = (e) => live[i].push({ id: e.lastEventId, data: JSON.parse(e.data) }); });
    await rapi.updateTask(t.id, { description: 'after resync' });
    for (const [i, got] of live.entries()) {
      await waitForList(got, (l) => l.length >= 1, 5_000, `live event after resync_required on ${ess[i].url}`);
      assert.equal(got.length, 1);
      assert.equal(got[0].id, '21');
      assert.equal(got[0].data.type, 'task_updated');
      assert.equal(got[0].data.task.description, 'after resync');
    }
    // a position still in the retained window resumes normally (log keeps the last 5: 17..21)
    const s = await openRawSse(`${rs.url}/api/tasks/stream`, { headers: { 'Last-Event-ID': '17' } });
    try {
      await s.waitFor((e) => e.id === '21', 5_000, 'replay up to 21 via Last-Event-ID header');
      assert.deepEqual(s.events.map((e) => e.id), ['18', '19', '20', '21']);
    } finally {
      await s.close();
    }
  } finally {
    for (const es of ess) es.close();
    await rs.stop();
  }
});

// Last: this test replaces `srv` with a restarted server.
test('SIGKILL + restart on the same port and DB: EventSource reconnects by itself with Last-Event-ID and misses nothing', { timeout: 30_000 }, async () => {
  const es = eventSource('/api/tasks/stream');
  const got = [];
  let errors = 0;
  es.onmessage = (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) });
  es.onerror = () => { errors += 1; };
  await esReady(es);
  const t = await create(uniqueTitle('sse-restart'));
  await waitForList(got, (l) => l.length >= 1, 5_000, 'event before the kill');
  const last = seq;
  assert.equal(got.at(-1).id, String(last));

  const killed = await srv.kill();
  assert.equal(killed.signal, 'SIGKILL');
  await waitUntil(() => errors >= 1, 5_000, 'EventSource error after the server died');
  assert.equal(es.readyState, 0, 'EventSource is CONNECTING (it retries on its own)');

  srv = await startServer({ dir: srv.dir, env: { PORT: String(srv.port) } });
  api = rest(srv.url);
  // changes right after the restart: whether EventSource reconnects before or after them, its
  // Last-Event-ID makes the server replay exactly what it missed
  for (let i = 1; i <= 3; i++) await update(t.id, { description: `after restart ${i}` });
  await waitForList(got, (l) => l.length >= 4, 12_000, () => `3 events after the restart, got ids ${got.map((g) => g.id)}`);
  await update(t.id, { description: 'live after restart' });
  await waitForList(got, (l) => l.length >= 5, 5_000, 'live event after the restart');
  await sleep(200);
  assert.deepEqual(got.map((g) => g.id), [0, 1, 2, 3, 4].map((i) => String(last + i)), 'ids continue across the restart, no gap, no repeat');
  assert.deepEqual(got.slice(1).map((g) => g.data.task.version), [2, 3, 4, 5]);
  assert.equal(got.at(-1).data.task.description, 'live after restart');
  assert.equal(es.readyState, 1);
  es.close();
});
