// Background jobs through real clients: what an Angular/React app (socket.io-client 4.x +
// fetch), an EventSource and a browser form (multipart upload) see of `/api/jobs`.
//
//   (a) a socket.io-client app submits an export over fetch, follows it through `job_progress`
//       (one argument: the job JSON; queued → running → succeeded, progress never going back,
//       throttled) and downloads the CSV (Content-Type, Content-Disposition, one line a task);
//   (b) tasks created by a raw `text/csv` import, then a bulk_update followed with an
//       EventSource on /api/jobs/{id}/events (ordered, ends with succeeded, the server ends the
//       stream); the socket gets exactly one task_updated per updated task, and a 4000-row
//       import shows `job_progress` is throttled;
//   (c) JWT_SECRET on: another workspace's job is 404 everywhere (read, events, result,
//       cancel, list) and its sockets get none of its `job_progress` or task events;
//   (d) a multipart import with bad rows: the report names the right rows with
//       `validation_failed`, the good rows arrive as task_created; atomic=true imports nothing;
//   (e) bad submissions are 422 naming the field, cancel of a final job is 409, list filters.
//
// Every test gets its own server (fresh SQLite database and result directory).

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { rest, startServer } from './server.mjs';
import {
  TASK_EVENTS, assertTask, closeAll, connectV4Recorded, sleep, waitUntil,
} from './sockets.mjs';
import { openRawSse } from './sse.mjs';
import { bearer, signToken } from './tokens.mjs';

const RUN = Math.random().toString(36).slice(2, 8);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JOB_KEYS = [
  'id', 'kind', 'state', 'progress', 'params', 'error', 'result', 'created_at', 'started_at',
  'finished_at', 'cancel_requested',
];
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out', 'interrupted'];
const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'interrupted']);
const rank = (state) => (state === 'queued' ? 0 : state === 'running' ? 1 : 2);
const CSV_COLUMNS = 'id,title,description,status,assignee,assignee_email,due_date,created_at,updated_at,created_by,updated_by,version';
/** Server-side publishing interval of job progress (≤ 4 per second per job). */
const PUBLISH_MS = 250;

/**
 * A fresh server whose job result files go to its own temporary directory (the default
 * JOB_RESULT_DIR is relative to the working directory, i.e. the repository).
 */
async function fresh(t, env = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'taskwire-jobs-'));
  const srv = await startServer({ dir, env: { JOB_RESULT_DIR: path.join(dir, 'results'), ...env } });
  const sockets = [];
  const eventSources = [];
  t.after(async () => {
    for (const es of eventSources) es.close();
    closeAll(sockets);
    await srv.stop({ removeDir: true });
  });
  return { srv, sockets, eventSources };
}

function assertJob(job, expected = {}, where = 'job') {
  assert.ok(job !== null && typeof job === 'object' && !Array.isArray(job), `${where}: not a job object: ${JSON.stringify(job)}`);
  for (const k of JOB_KEYS) assert.ok(Object.hasOwn(job, k), `${where}: missing key ${k} in ${JSON.stringify(job).slice(0, 400)}`);
  assert.match(job.id, UUID_RE, `${where}: id is not a UUID`);
  assert.ok(STATES.includes(job.state), `${where}: unknown state ${job.state}`);
  assert.equal(typeof job.kind, 'string', `${where}: kind`);
  const p = job.progress;
  assert.ok(p && Number.isInteger(p.done) && Number.isInteger(p.total) && typeof p.message === 'string',
    `${where}: progress must be {done, total, message}: ${JSON.stringify(p)}`);
  assert.ok(!Number.isNaN(Date.parse(job.created_at)), `${where}: created_at ${job.created_at}`);
  assert.equal(typeof job.cancel_requested, 'boolean', `${where}: cancel_requested`);
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(job[k], v, `${where}: ${k} is ${JSON.stringify(job[k])}, expected ${JSON.stringify(v)}`);
  }
  return job;
}

/**
 * The updates of one job as a client saw them: valid job JSON, never going back (state
 * queued → running → final, progress.done non-decreasing within a state), exactly one final
 * state and it is the last, with `finalState`.
 */
function assertJobSequence(jobs, id, finalState, where) {
  assert.ok(jobs.length >= 1, `${where}: no updates`);
  jobs.forEach((j, i) => assertJob(j, { id }, `${where} #${i}`));
  const states = jobs.map((j) => j.state);
  for (let i = 1; i < jobs.length; i++) {
    const [a, b] = [jobs[i - 1], jobs[i]];
    assert.ok(rank(b.state) >= rank(a.state), `${where}: state went back ${a.state} -> ${b.state} in ${states.join(',')}`);
    assert.ok(b.progress.done >= a.progress.done,
      `${where}: progress.done went back ${a.progress.done} -> ${b.progress.done} (${jobs.map((j) => `${j.state}:${j.progress.done}`).join(', ')})`);
  }
  const finals = jobs.filter((j) => FINAL.has(j.state));
  assert.equal(finals.length, 1, `${where}: exactly one final state expected, got ${states.join(',')}`);
  assert.equal(jobs.at(-1).state, finalState, `${where}: last state should be ${finalState}: ${states.join(',')} (${JSON.stringify(jobs.at(-1).error)})`);
  return jobs.at(-1);
}

/** `job_progress` updates the recorder saw for job `id` (asserting one argument each). */
function progressOf(rec, id) {
  const entries = rec.log.filter((e) => e.event === 'job_progress' && e.args[0]?.id === id);
  for (const e of entries) {
    assert.equal(e.args.length, 1, `${rec.label}: job_progress arrived with ${e.args.length} arguments: ${JSON.stringify(e.args).slice(0, 300)}`);
  }
  return entries;
}

function waitJobFinal(rec, id, timeoutMs = 15_000) {
  return rec.waitFor((e) => e.event === 'job_progress' && e.args[0]?.id === id && FINAL.has(e.args[0]?.state),
    timeoutMs, `a final job_progress for job ${id}`);
}

/** POST /api/jobs with fetch, as an app would; asserts 202 + Location and returns the job. */
async function submit(base, body, { headers = {}, query = '' } = {}) {
  const init = { method: 'POST', headers: { ...headers }, signal: AbortSignal.timeout(10_000) };
  if (body instanceof FormData || typeof body === 'string') {
    init.body = body;
  } else {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}/api/jobs${query}`, init);
  const text = await res.text();
  assert.equal(res.status, 202, `POST /api/jobs${query} -> ${res.status} ${text.slice(0, 400)}`);
  const job = JSON.parse(text);
  assertJob(job, {}, 'submit response');
  assert.equal(res.headers.get('location'), `/api/jobs/${job.id}`, 'Location of the new job');
  return job;
}

/**
 * Throttling: besides queued, running and the final state, at most one update per 250 ms.
 * `since` is a client time before the job was submitted, so `last receipt - since` bounds the
 * time the server spent publishing from above (a client that got the updates in a burst
 * cannot make this fail).
 */
function assertThrottled(entries, since, where) {
  const span = entries.at(-1).at - since;
  const allowed = 4 + Math.floor(span / PUBLISH_MS);
  assert.ok(entries.length <= allowed,
    `${where}: ${entries.length} job_progress updates within ${span} ms of the submit; throttled to ≤ 4/s allows ${allowed}`);
}

/** Stamps receive times on a recorder's log (the shared recorder does not). */
function stampTimes(socket, rec) {
  socket.onAny(() => { rec.log.at(-1).at ??= Date.now(); });
}

async function connect(env, label, opts = {}) {
  const { socket, rec } = await connectV4Recorded(env.srv.url, { transports: ['websocket'], ...opts }, label);
  env.sockets.push(socket);
  stampTimes(socket, rec);
  return { socket, rec };
}

const utcDay = (iso) => new Date(iso).toISOString().slice(0, 10);

// ---------------------------------------------------------------------------------------

test('(a) an app on socket.io-client follows its export through job_progress and downloads the CSV', { timeout: 30_000 }, async (t) => {
  const env = await fresh(t);
  const base = env.srv.url;
  const api = rest(base);

  // What an Angular service / React hook does: one `job_progress` listener with ONE
  // parameter, keeping the latest state of every job by id.
  const { socket, rec } = await connect(env, 'app', { transports: undefined });
  const jobs = new Map();
  const seen = [];
  socket.on('job_progress', (job) => {
    seen.push(job);
    jobs.set(job.id, job);
  });

  const N = 40;
  const titles = Array.from({ length: N }, (_, i) => `export-${RUN} task ${i}`);
  const created = await Promise.all(titles.map((title, i) => api.createTask({ title, assignee: i % 2 ? 'ann' : 'bob' })));
  await waitUntil(() => rec.log.filter((e) => e.event === 'task_created').length >= N, 5_000, 'the app\'s task_created events');

  const submittedAt = Date.now();
  const submitted = await submit(base, { kind: 'export', params: { format: 'csv' } });
  assertJob(submitted, { kind: 'export', state: 'queued', params: { format: 'csv' }, error: null, result: null, cancel_requested: false }, 'submitted');

  await waitJobFinal(rec, submitted.id);
  const updates = progressOf(rec, submitted.id);
  const mine = seen.filter((j) => j.id === submitted.id);
  assert.equal(mine.length, updates.length, 'the one-parameter listener got every update');
  const last = assertJobSequence(mine, submitted.id, 'succeeded', 'app job_progress');
  assert.equal(mine[0].state, 'queued', `the socket was connected before the submit, so it sees "queued" first: ${mine.map((j) => j.state)}`);
  assert.ok(mine.some((j) => j.state === 'running'), `a "running" update before the end: ${mine.map((j) => j.state)}`);
  assertThrottled(updates, submittedAt, 'export');
  assert.equal(jobs.get(submitted.id), last, 'the app\'s state holds the final job');
  assert.deepEqual(last.progress, { done: N, total: N, message: last.progress.message }, 'progress done = total = N at the end');
  assert.ok(last.started_at && last.finished_at, 'started_at and finished_at set');
  assert.equal(last.error, null);
  assert.equal(last.result?.format, 'csv');
  assert.equal(last.result?.rows, N, `result.rows: ${JSON.stringify(last.result)}`);
  assert.equal(last.result?.url, `/api/jobs/${submitted.id}/result`);
  // The socket carries the job exactly as the REST API has it.
  const read = await api.request('GET', `/api/jobs/${submitted.id}`);
  assert.equal(read.status, 200);
  assert.deepEqual(read.json, last, 'final job_progress = GET /api/jobs/{id}');

  // The download.
  const res = await fetch(base + last.result.url, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  assert.equal(res.status, 200, `GET result -> ${res.status} ${body.slice(0, 200)}`);
  assert.equal(res.headers.get('content-type'), 'text/csv; charset=utf-8');
  const cd = res.headers.get('content-disposition') ?? '';
  const m = /^attachment; filename="(tasks-(\d{4}-\d{2}-\d{2})\.csv)"$/.exec(cd);
  assert.ok(m, `Content-Disposition: ${JSON.stringify(cd)}`);
  assert.ok([utcDay(last.started_at), utcDay(last.finished_at)].includes(m[2]), `file date ${m[2]} is the day the export ran`);
  assert.equal(m[1], last.result.filename, 'result.filename = the download name');
  assert.equal(Buffer.byteLength(body), last.result.bytes, 'result.bytes = the file size');
  const lines = body.replace(/\r?\n$/, '').split(/\r?\n/);
  assert.ok(lines[0].startsWith('id,title'), `header line: ${lines[0]}`);
  assert.equal(lines[0], CSV_COLUMNS, 'header lists every task field');
  assert.equal(lines.length, N + 1, `header + one line per task: got ${lines.length} lines`);
  for (const task of created) {
    const rows = lines.filter((l) => l.startsWith(`${task.id},`));
    assert.equal(rows.length, 1, `task ${task.id} appears on exactly one line`);
    assert.ok(rows[0].startsWith(`${task.id},${task.title},,pending,${task.assignee},`), `line for ${task.id}: ${rows[0]}`);
    assert.ok(rows[0].endsWith(',1'), `version column: ${rows[0]}`);
  }
});

test('(b) EventSource follows a bulk_update over 300 imported tasks; the socket gets one task_updated each', { timeout: 30_000 }, async (t) => {
  // One worker, so jobs run one after the other in submission order.
  const env = await fresh(t, { TASK_MAX_WORKERS: '1' });
  const base = env.srv.url;
  const api = rest(base);
  const { rec } = await connect(env, 'watcher');

  // 300 tasks from one import: the raw CSV body with kind and format in the query.
  const N = 300;
  const prefix = `bulk-${RUN}`;
  const csv = `title\n${Array.from({ length: N }, (_, i) => `${prefix} #${i}`).join('\n')}\n`;
  const imp = await submit(base, csv, { headers: { 'content-type': 'text/csv' }, query: '?kind=import&format=csv' });
  assertJob(imp, { kind: 'import', state: 'queued', params: { format: 'csv', atomic: false, rows: N } }, 'raw import');
  const impFinal = (await waitJobFinal(rec, imp.id)).args[0];
  assert.equal(impFinal.state, 'succeeded', `import: ${JSON.stringify(impFinal.error)}`);
  assert.deepEqual(impFinal.result, { accepted: N, rejected: [] });
  await waitUntil(() => rec.log.filter((e) => e.event === 'task_created').length >= N, 10_000,
    () => `${N} task_created, got ${rec.log.filter((e) => e.event === 'task_created').length}`);
  const ids = new Set(rec.log.filter((e) => e.event === 'task_created').map((e) => e.args[0].id));
  assert.equal(ids.size, N, 'one task_created per imported row');
  assert.equal(await api.totalCount(), N);

  // A 4000-row import first keeps the single worker busy, so the bulk_update is (very
  // likely) still queued or running when the EventSource connects.
  const FILLER = 4000;
  const fillerAt = Date.now();
  const filler = await submit(base, {
    kind: 'import',
    params: { format: 'csv', data: `title,assignee\n${Array.from({ length: FILLER }, (_, i) => `filler ${i},zed`).join('\n')}` },
  });
  const patch = { status: 'in_progress', assignee: 'bulk-bot' };
  const bulk = await submit(base, { kind: 'bulk_update', params: { filter: { q: prefix }, patch } });
  assertJob(bulk, { kind: 'bulk_update', state: 'queued', params: { filter: { q: prefix }, patch } }, 'bulk submitted');

  const es = new EventSource(`${base}/api/jobs/${bulk.id}/events`);
  env.eventSources.push(es);
  const messages = [];
  let finalAt = null;
  let errorAfterFinal = null;
  es.onmessage = (e) => {
    messages.push({ type: e.type, job: JSON.parse(e.data) });
    if (FINAL.has(messages.at(-1).job.state)) finalAt ??= messages.length;
  };
  es.onerror = (e) => {
    // The server ended the stream after the final state; EventSource would reconnect (and
    // get the final state again): close it ourselves.
    if (finalAt !== null && errorAfterFinal === null) {
      errorAfterFinal = { readyState: es.readyState, code: e.code, messages: messages.length };
      es.close();
    }
  };
  await waitUntil(() => errorAfterFinal !== null, 20_000,
    () => `the job stream to end after the final state; got ${messages.map((m) => m.job.state).join(',')}, readyState ${es.readyState}`);

  const jobs = messages.map((m) => m.job);
  t.diagnostic(`EventSource saw: ${jobs.map((j) => `${j.state}:${j.progress.done}/${j.progress.total}`).join(', ')}`);
  assert.deepEqual(messages.map((m) => m.type), messages.map(() => 'message'), 'unnamed events (onmessage)');
  const last = assertJobSequence(jobs, bulk.id, 'succeeded', 'EventSource');
  assert.equal(finalAt, messages.length, 'nothing after the final state');
  assert.equal(errorAfterFinal.messages, messages.length, 'the stream ended right after the final state');
  assert.equal(errorAfterFinal.readyState, 0, 'stream ended by the server (EventSource about to reconnect), not refused');
  assert.equal(es.readyState, 2, 'closed');
  if (jobs[0].state === 'queued') {
    assert.ok(jobs.some((j) => j.state === 'running'), `queued first, so "running" must follow: ${jobs.map((j) => j.state)}`);
  }
  assert.deepEqual(last.result, { matched: N, updated: N }, 'bulk_update result');
  assert.deepEqual(last.progress.done, N);

  // The socket: one task_updated per updated task, with the patch applied; none for fillers.
  const updatedOf = () => rec.log.filter((e) => e.event === 'task_updated');
  await waitUntil(() => updatedOf().length >= N, 10_000, () => `${N} task_updated, got ${updatedOf().length}`);
  const bulkFinal = (await waitJobFinal(rec, bulk.id)).args[0];
  assert.deepEqual(bulkFinal, last, 'socket and SSE agree on the final job');
  await sleep(300); // a duplicate or a stray update would arrive now
  const updated = updatedOf();
  assert.equal(updated.length, N, `exactly ${N} task_updated, got ${updated.length}`);
  const counts = new Map();
  for (const e of updated) {
    assert.equal(e.args.length, 1, 'task_updated has one argument');
    const task = assertTask(e.args[0], { ...patch, version: 2 }, 'task_updated');
    assert.ok(ids.has(task.id), `task_updated for a task outside the filter: ${task.title}`);
    counts.set(task.id, (counts.get(task.id) ?? 0) + 1);
  }
  assert.equal(counts.size, N, 'every imported task updated');
  assert.ok([...counts.values()].every((c) => c === 1), 'no task updated twice');
  const check = await api.listTasks({ assignee: 'bulk-bot', limit: '1' });
  assert.equal(check.headers.get('x-total-count'), String(N), 'the REST API shows the patch');

  // The filler import: all rows created, and its progress throttled on the socket.
  const fillerFinal = (await waitJobFinal(rec, filler.id)).args[0];
  assert.equal(fillerFinal.state, 'succeeded');
  assert.equal(fillerFinal.result?.accepted, FILLER);
  const fillerUpdates = progressOf(rec, filler.id);
  assertJobSequence(fillerUpdates.map((e) => e.args[0]), filler.id, 'succeeded', 'filler job_progress');
  assertThrottled(fillerUpdates, fillerAt, 'filler import (20 batches of 200 rows)');
  t.diagnostic(`filler: ${fillerUpdates.length} job_progress in ${fillerUpdates.at(-1).at - fillerUpdates[0].at} ms`);

  // Following a job that is already final: one event, then the server ends the stream.
  const raw = await openRawSse(`${base}/api/jobs/${bulk.id}/events`);
  assert.equal(raw.status, 200);
  assert.match(raw.headers.get('content-type') ?? '', /^text\/event-stream\b/);
  let timer;
  const ended = await Promise.race([raw.done.then(() => true), new Promise((r) => { timer = setTimeout(() => r(false), 5_000); })]);
  clearTimeout(timer);
  assert.ok(ended, 'the stream of a finished job ends by itself within 5 s');
  assert.equal(raw.events.length, 1, `one event for a finished job: ${raw.events.map((e) => e.data.slice(0, 80))}`);
  assert.equal(raw.events[0].event, undefined, 'unnamed event');
  assert.deepEqual(raw.events[0].json, last);
  await raw.close();
});

test('(c) with JWT_SECRET a job of workspace A is 404 for B, and B\'s sockets get none of its job_progress', { timeout: 30_000 }, async (t) => {
  const SECRET = `jobs-secret-${RUN}-0123456789`;
  const env = await fresh(t, { JWT_SECRET: SECRET });
  const base = env.srv.url;
  const api = rest(base);
  const tokA = signToken({ sub: 'alice', name: 'Alice', workspace: 'acme' }, { secret: SECRET });
  const tokB = signToken({ sub: 'gina', name: 'Gina', workspace: 'globex' }, { secret: SECRET });
  const asA = (m, p, o = {}) => api.request(m, p, { ...o, headers: { ...bearer(tokA), ...(o.headers ?? {}) } });
  const asB = (m, p, o = {}) => api.request(m, p, { ...o, headers: { ...bearer(tokB), ...(o.headers ?? {}) } });

  const a = await connect(env, 'acme socket', { auth: { token: tokA } });
  const b = await connect(env, 'globex socket', { auth: { token: tokB } });
  const b2 = await connect(env, 'globex since=0 socket', { auth: { token: tokB, since: 0 }, transports: ['polling'] });

  // No token: 401.
  assert.equal((await api.request('GET', '/api/jobs')).status, 401, 'GET /api/jobs without a token');
  assert.equal((await api.request('POST', '/api/jobs', { body: { kind: 'export', params: { format: 'csv' } } })).status, 401, 'POST /api/jobs without a token');

  // Workspace A: an import (JSON rows) and an export.
  const rows = Array.from({ length: 5 }, (_, i) => ({ title: `acme-${RUN} secret ${i}`, status: 'completed' }));
  const imp = await submit(base, { kind: 'import', params: { format: 'json', data: rows } }, { headers: bearer(tokA) });
  const impFinal = (await waitJobFinal(a.rec, imp.id)).args[0];
  assert.deepEqual(impFinal.result, { accepted: 5, rejected: [] }, `acme import: ${JSON.stringify(impFinal)}`);
  const exp = await submit(base, { kind: 'export', params: { format: 'json' } }, { headers: bearer(tokA) });
  const expFinal = (await waitJobFinal(a.rec, exp.id)).args[0];
  assert.equal(expFinal.state, 'succeeded');
  assert.equal(expFinal.result.rows, 5, 'acme exports its 5 tasks');
  const own = await asA('GET', `/api/jobs/${exp.id}`);
  assert.equal(own.status, 200, 'acme reads its own job');
  const aTaskIds = new Set(a.rec.log.filter((e) => e.event === 'task_created').map((e) => e.args[0].id));
  assert.equal(aTaskIds.size, 5, 'acme socket saw its 5 imported tasks');

  // Workspace B: everything about A's jobs is 404 (not 403: existence is not revealed).
  for (const job of [imp, exp]) {
    for (const [method, p] of [
      ['GET', `/api/jobs/${job.id}`], ['GET', `/api/jobs/${job.id}/result`], ['POST', `/api/jobs/${job.id}/cancel`],
      ['GET', `/api/jobs/${job.id}/events`],
    ]) {
      const r = await asB(method, p, { timeoutMs: 5_000 });
      assert.equal(r.status, 404, `globex ${method} ${p} -> ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(r.json?.error?.code, 'not_found', `globex ${method} ${p}: ${r.text.slice(0, 200)}`);
    }
  }
  // An EventSource with ?token= for B is refused with 404 and does not retry.
  const es = new EventSource(`${base}/api/jobs/${exp.id}/events?token=${encodeURIComponent(tokB)}`);
  env.eventSources.push(es);
  const esMessages = [];
  es.onmessage = (e) => esMessages.push(e.data);
  const esError = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no EventSource error within 5 s')), 5_000);
    es.onerror = (e) => { clearTimeout(timer); resolve({ code: e.code, readyState: es.readyState }); };
  });
  assert.deepEqual(esError, { code: 404, readyState: 2 }, 'EventSource of B on A\'s job: 404, closed');
  assert.deepEqual(esMessages, []);
  // …while A's own EventSource (?token=) on the same job gets its final state.
  const esA = new EventSource(`${base}/api/jobs/${exp.id}/events?token=${encodeURIComponent(tokA)}`);
  env.eventSources.push(esA);
  const esAFirst = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message on acme\'s EventSource within 5 s')), 5_000);
    esA.onmessage = (e) => { clearTimeout(timer); esA.close(); resolve(JSON.parse(e.data)); };
  });
  assert.deepEqual(esAFirst, expFinal, 'acme\'s EventSource: the final job');
  const listB = await asB('GET', '/api/jobs');
  assert.equal(listB.status, 200);
  assert.deepEqual(listB.json, [], 'globex lists none of acme\'s jobs');
  const listA = await asA('GET', '/api/jobs');
  assert.deepEqual(listA.json.map((j) => j.id).sort(), [imp.id, exp.id].sort(), 'acme lists its two jobs');
  // The export's cancel by B did nothing, and the file is still there for A.
  const fileA = await fetch(`${base}${expFinal.result.url}`, { headers: bearer(tokA), signal: AbortSignal.timeout(5_000) });
  assert.equal(fileA.status, 200);
  assert.equal(fileA.headers.get('content-type'), 'application/json');
  const exported = await fileA.json();
  assert.deepEqual(exported.map((x) => x.id).sort(), [...aTaskIds].sort(), 'acme\'s JSON export holds its tasks');

  // B's own job: B's sockets get its job_progress (so they do receive jobs at all); its
  // export sees none of A's tasks. The fan-out is ordered, so once B has its own final state
  // anything of A's addressed to B would have arrived too; wait a little more anyway.
  const bJob = await submit(base, { kind: 'export', params: { format: 'csv' } }, { headers: bearer(tokB) });
  const bFinal = (await waitJobFinal(b.rec, bJob.id)).args[0];
  await waitJobFinal(b2.rec, bJob.id);
  assert.equal(bFinal.result.rows, 0, 'globex export has none of acme\'s tasks');
  await waitJobFinal(a.rec, exp.id); // (already there)
  await sleep(300);
  for (const s of [b, b2]) {
    const foreign = s.rec.log.filter((e) => e.event === 'job_progress' && e.args[0]?.id !== bJob.id);
    assert.deepEqual(foreign.map((e) => `${e.args[0]?.kind}:${e.args[0]?.state}`), [], `${s.rec.label} got job_progress of acme's jobs`);
    const foreignTasks = s.rec.log.filter((e) => TASK_EVENTS.includes(e.event));
    assert.deepEqual(foreignTasks.map((e) => e.args[0]?.title), [], `${s.rec.label} got acme's task events`);
    assert.ok(progressOf(s.rec, bJob.id).length >= 2, `${s.rec.label}: its own job's updates`);
  }
  assert.deepEqual(progressOf(a.rec, bJob.id), [], 'acme got globex\'s job_progress');
  const aAll = a.rec.log.filter((e) => e.event === 'job_progress').map((e) => e.args[0].id);
  assert.deepEqual([...new Set(aAll)].sort(), [imp.id, exp.id].sort(), 'acme sees exactly its own jobs');
});

test('(d) a multipart CSV upload with bad rows: the report names them, the good rows arrive as task_created', { timeout: 30_000 }, async (t) => {
  const env = await fresh(t);
  const base = env.srv.url;
  const api = rest(base);
  const { rec } = await connect(env, 'form page', { transports: ['polling'] });

  const p = `form-${RUN}`;
  const csv = [
    'title,status,assignee,due_date',
    `${p} good one,pending,ann,`,
    `${p} bad status,finished,bob,`,
    `"${p} good, quoted",completed,,`,
    `,in_progress,nobody,`,
    `${p} good three,in_progress,cy,2030-01-31`,
  ].join('\r\n') + '\r\n';
  const goodTitles = [`${p} good one`, `${p} good, quoted`, `${p} good three`];

  // A browser form: kind, a text field `atomic`, and the file; no params JSON.
  const form = new FormData();
  form.append('kind', 'import');
  form.append('atomic', 'false');
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'tasks.csv');
  const job = await submit(base, form);
  assertJob(job, { kind: 'import', state: 'queued', params: { format: 'csv', atomic: false, rows: 5 } }, 'multipart submit');

  const final = (await waitJobFinal(rec, job.id)).args[0];
  assertJobSequence(progressOf(rec, job.id).map((e) => e.args[0]), job.id, 'succeeded', 'multipart import job_progress');
  assert.equal(final.result?.accepted, 3, `accepted: ${JSON.stringify(final.result)}`);
  const rejected = final.result.rejected;
  assert.deepEqual(rejected.map((r) => r.row), [2, 4], `rejected rows (1-based data rows): ${JSON.stringify(rejected)}`);
  for (const r of rejected) {
    assert.equal(r.error?.code, 'validation_failed', `row ${r.row}: ${JSON.stringify(r)}`);
    assert.equal(typeof r.error.message, 'string');
  }
  assert.match(rejected[0].error.message, /status/, 'row 2 is rejected for its status');
  assert.match(rejected[1].error.message, /title/, 'row 4 is rejected for its missing title');
  assert.deepEqual(final.progress, { done: 5, total: 5, message: final.progress.message });

  await waitUntil(() => rec.log.filter((e) => e.event === 'task_created').length >= 3, 5_000, 'three task_created');
  await sleep(300);
  const created = rec.log.filter((e) => e.event === 'task_created').map((e) => e.args[0]);
  assert.deepEqual(created.map((c) => c.title).sort(), [...goodTitles].sort(), 'task_created for exactly the good rows');
  const byTitle = Object.fromEntries(created.map((c) => [c.title, c]));
  assertTask(byTitle[`${p} good one`], { status: 'pending', assignee: 'ann', version: 1 }, 'row 1');
  assertTask(byTitle[`${p} good, quoted`], { status: 'completed', assignee: null, version: 1 }, 'row 3');
  assertTask(byTitle[`${p} good three`], { status: 'in_progress', assignee: 'cy', due_date: '2030-01-31', version: 1 }, 'row 5');
  assert.equal(rec.log.filter((e) => e.event === 'task_updated' || e.event === 'task_deleted').length, 0);
  assert.equal(await api.totalCount(), 3);

  // The same file with atomic=true: the job fails and imports nothing.
  const form2 = new FormData();
  form2.append('kind', 'import');
  form2.append('params', JSON.stringify({ atomic: true }));
  form2.append('file', new Blob([csv], { type: 'text/csv' }), 'again.csv');
  const job2 = await submit(base, form2);
  assertJob(job2, { params: { format: 'csv', atomic: true, rows: 5 } }, 'atomic submit');
  const final2 = (await waitJobFinal(rec, job2.id)).args[0];
  assert.equal(final2.state, 'failed', `atomic import with bad rows: ${JSON.stringify(final2)}`);
  assert.equal(final2.error?.code, 'rows_rejected');
  assert.match(final2.error.message, /row 2/, `the error names the first bad row: ${final2.error.message}`);
  await sleep(300);
  assert.equal(rec.log.filter((e) => e.event === 'task_created').length, 3, 'atomic: no task_created');
  assert.equal(await api.totalCount(), 3, 'atomic: nothing imported');

  // A malformed file is refused up front: 422 naming the file, and no job.
  const form3 = new FormData();
  form3.append('kind', 'import');
  form3.append('file', new Blob(['name,status\nx,pending\n'], { type: 'text/csv' }), 'no-title.csv');
  const r3 = await fetch(`${base}/api/jobs`, { method: 'POST', body: form3, signal: AbortSignal.timeout(5_000) });
  const b3 = await r3.json();
  assert.equal(r3.status, 422, JSON.stringify(b3));
  assert.equal(b3.error?.code, 'validation_failed');
  assert.equal(b3.error?.field, 'file');
  const list = await api.request('GET', '/api/jobs?kind=import');
  assert.deepEqual(list.json.map((j) => j.id), [job2.id, job.id], 'two import jobs, newest first');
});

test('(e) bad submissions are 422 naming the field; cancel of a final job is 409; list filters', { timeout: 30_000 }, async (t) => {
  const env = await fresh(t);
  const base = env.srv.url;
  const api = rest(base);
  const cases = [
    [{ kind: 'nope', params: {} }, 'kind'],
    [{ params: { format: 'csv' } }, 'kind'],
    [{ kind: 'export', params: { format: 'xml' } }, 'params.format'],
    [{ kind: 'export', params: { format: 5 } }, 'params.format'],
    [{ kind: 'export', params: { format: 'csv', filter: { status: 'someday' } } }, 'params.filter.status'],
    [{ kind: 'import', params: { data: 'title\nx\n' } }, 'params.format'],
    [{ kind: 'import', params: { format: 'csv' } }, 'params.data'],
    [{ kind: 'import', params: { format: 'csv', data: 'title\nx\n', atomic: 'yes' } }, 'params.atomic'],
    [{ kind: 'bulk_update', params: { filter: {}, patch: { status: 'later' } } }, 'params.patch.status'],
    [{ kind: 'bulk_update', params: { filter: {}, patch: {} } }, 'params.patch'],
  ];
  for (const [body, field] of cases) {
    const r = await api.request('POST', '/api/jobs', { body });
    assert.equal(r.status, 422, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json?.error?.code, 'validation_failed', r.text);
    assert.equal(r.json?.error?.field, field, `${JSON.stringify(body)}: ${r.text}`);
    assert.ok(r.json.error.message.length > 0);
  }
  const none = await api.request('GET', '/api/jobs');
  assert.deepEqual(none.json, [], 'refused submissions create no job');

  const { rec } = await connect(env, 'e');
  const exp = await submit(base, { kind: 'export', params: { format: 'json' } });
  await waitJobFinal(rec, exp.id);
  const c = await api.request('POST', `/api/jobs/${exp.id}/cancel`);
  assert.equal(c.status, 409, `cancel of a finished job -> ${c.status} ${c.text}`);
  assert.equal(c.json?.error?.code, 'conflict');
  const unknown = await api.request('GET', '/api/jobs/01890a5d-ac96-774b-bcce-b302099a8057');
  assert.equal(unknown.status, 404);

  const imp = await submit(base, { kind: 'import', params: { format: 'csv', data: 'title\nonly one\n' } });
  await waitJobFinal(rec, imp.id);
  const byKind = await api.request('GET', '/api/jobs?kind=export');
  assert.deepEqual(byKind.json.map((j) => j.id), [exp.id], '?kind=export');
  const byState = await api.request('GET', '/api/jobs?state=succeeded');
  assert.deepEqual(byState.json.map((j) => j.id), [imp.id, exp.id], '?state=succeeded, newest first');
  const queued = await api.request('GET', '/api/jobs?state=queued');
  assert.deepEqual(queued.json, [], '?state=queued');
  const badState = await api.request('GET', '/api/jobs?state=done');
  assert.equal(badState.status, 422, `?state=done -> ${badState.status}`);
});

// A missing required param names the param itself, not its parent object.
test('(e2) a missing required param is 422 naming that param', { timeout: 30_000 }, async (t) => {
  const env = await fresh(t);
  const api = rest(env.srv.url);
  for (const [body, field] of [
    [{ kind: 'export', params: {} }, 'params.format'],
    [{ kind: 'bulk_update', params: { filter: {} } }, 'params.patch'],
  ]) {
    const r = await api.request('POST', '/api/jobs', { body });
    assert.equal(r.status, 422, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json?.error?.field, field, `${JSON.stringify(body)}: ${r.text}`);
  }
});
