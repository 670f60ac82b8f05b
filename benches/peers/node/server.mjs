// Reference peer for the taskwire benchmark: the server people typically write today, Node
// socket.io 4.8 + express, with taskwire's REST routes, task JSON and events (one argument, the
// task, to every socket) over an in-memory store. It is deliberately plain: what a Node
// backend of a task app looks like, not a tuned one.
//
//   npm ci && PORT=5001 node server.mjs
//
// Prints `node peer listening on http://HOST:PORT` once it accepts connections.

import { randomUUID } from 'node:crypto';
import http from 'node:http';

import express from 'express';
import { Server } from 'socket.io';

const HOST = process.env.HOST ?? '127.0.0.1';
const PORT = Number(process.env.PORT ?? 5001);

/** @type {Map<string, object>} */
const tasks = new Map();

const STATUSES = new Set(['pending', 'in_progress', 'completed']);

// Lenient status input, canonical output, as taskwire does.
function parseStatus(value) {
  if (typeof value !== 'string') return null;
  const s = value.trim().toLowerCase().replace(/[\s-]+/g, '_');
  return STATUSES.has(s) ? s : null;
}

function now() {
  return new Date().toISOString();
}

function fail(res, status, code, message, field) {
  const error = { code, message };
  if (field) error.field = field;
  res.status(status).json({ error });
}

// Applies a partial update; returns an error [field, message] or null.
function apply(task, body) {
  if ('title' in body) {
    if (typeof body.title !== 'string' || !body.title.trim() || body.title.trim().length > 500) {
      return ['title', 'field `title` must be a non-blank string of at most 500 characters'];
    }
    task.title = body.title.trim();
  }
  if ('description' in body) {
    if (body.description !== null && typeof body.description !== 'string') {
      return ['description', 'field `description` must be a string'];
    }
    task.description = body.description ?? '';
  }
  if ('status' in body) {
    const status = parseStatus(body.status);
    if (!status) return ['status', 'field `status` must be pending, in_progress or completed'];
    task.status = status;
  }
  for (const field of ['assignee', 'assignee_email', 'due_date']) {
    if (field in body) {
      if (body[field] !== null && typeof body[field] !== 'string') {
        return [field, `field \`${field}\` must be a string or null`];
      }
      task[field] = body[field];
    }
  }
  return null;
}

function isObject(body) {
  return body !== null && typeof body === 'object' && !Array.isArray(body);
}

const app = express();
app.use(express.json({ limit: '1mb' }));

const server = http.createServer(app);
const io = new Server(server, { serveClient: false });

app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));

app.get('/api/tasks', (_req, res) => {
  const all = [...tasks.values()];
  res.set('X-Total-Count', String(all.length)).json(all.slice(0, 100));
});

app.post('/api/tasks', (req, res) => {
  if (!isObject(req.body)) return fail(res, 422, 'validation_failed', 'body must be an object', 'body');
  if (!('title' in req.body)) return fail(res, 422, 'validation_failed', 'field `title` is required', 'title');
  const at = now();
  const task = {
    id: randomUUID(),
    title: '',
    description: '',
    status: 'pending',
    assignee: null,
    assignee_email: null,
    due_date: null,
    created_at: at,
    updated_at: at,
    created_by: null,
    updated_by: null,
    version: 1,
  };
  const err = apply(task, req.body);
  if (err) return fail(res, 422, 'validation_failed', err[1], err[0]);
  tasks.set(task.id, task);
  io.emit('task_created', task);
  res.status(201).set({ Location: `/api/tasks/${task.id}`, ETag: '"1"' }).json(task);
});

app.get('/api/tasks/:id', (req, res) => {
  const task = tasks.get(req.params.id);
  if (!task) return fail(res, 404, 'not_found', `task ${req.params.id} does not exist`);
  res.set('ETag', `"${task.version}"`).json(task);
});

// `If-Match: "3"`, `W/"3"`, `3` or `*`; false when it names another version.
function matches(req, task) {
  const header = req.get('If-Match');
  if (!header || header.trim() === '*') return true;
  const version = Number(header.trim().replace(/^W\//, '').replace(/"/g, ''));
  return version === task.version;
}

function update(req, res) {
  const task = tasks.get(req.params.id);
  if (!task) return fail(res, 404, 'not_found', `task ${req.params.id} does not exist`);
  if (!isObject(req.body)) return fail(res, 422, 'validation_failed', 'body must be an object', 'body');
  if (!matches(req, task)) return fail(res, 412, 'precondition_failed', 'stale If-Match');
  const next = { ...task };
  const err = apply(next, req.body);
  if (err) return fail(res, 422, 'validation_failed', err[1], err[0]);
  next.version += 1;
  next.updated_at = now();
  tasks.set(next.id, next);
  io.emit('task_updated', next);
  res.set('ETag', `"${next.version}"`).json(next);
}

app.patch('/api/tasks/:id', update);
app.put('/api/tasks/:id', update);

app.delete('/api/tasks/:id', (req, res) => {
  const task = tasks.get(req.params.id);
  if (!task) return fail(res, 404, 'not_found', `task ${req.params.id} does not exist`);
  if (!matches(req, task)) return fail(res, 412, 'precondition_failed', 'stale If-Match');
  tasks.delete(task.id);
  io.emit('task_deleted', task);
  res.status(204).end();
});

app.use((_req, res) => fail(res, 404, 'not_found', 'no such route'));

// Malformed JSON bodies get taskwire's 400 instead of express's HTML page.
app.use((err, _req, res, _next) => {
  if (err.type === 'entity.parse.failed') return fail(res, 400, 'invalid_json', 'body is not valid JSON');
  if (err.type === 'entity.too.large') return fail(res, 413, 'payload_too_large', 'body too large');
  return fail(res, 500, 'internal', 'internal error');
});

function stop() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(PORT, HOST, () => {
  const { address, port } = server.address();
  console.log(`node peer listening on http://${address}:${port}`);
});
