// Spawns the taskwire binary for one test file and gives small REST helpers.
//
//   const srv = await startServer({ env: { FRONTEND_URL: 'http://app.example' } });
//   srv.url            -> 'http://127.0.0.1:<port>'
//   await srv.stop()   -> { code, signal, timedOut, ms }   (SIGTERM, SIGKILL after 10 s)
//
// The binary is ${TASKWIRE_BIN:-target/debug/taskwire} (relative paths are relative to the
// repo root). Every server gets a fresh temporary directory with its own SQLite database and
// listens on a random port (PORT=0); we wait for the one stdout line
// `taskwire listening on http://127.0.0.1:<port>`.
//
// To restart on the same database and port (e.g. after `await srv.kill()`):
//   const again = await startServer({ dir: srv.dir, env: { PORT: String(srv.port) } });
// `dir` reuses an existing directory (its taskwire.db); stop() then leaves it in place unless
// removeDir: true is passed.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

export function binaryPath() {
  const bin = process.env.TASKWIRE_BIN || 'target/debug/taskwire';
  return path.isAbsolute(bin) ? bin : path.resolve(REPO_ROOT, bin);
}

// Settings a developer may have exported in their shell that would change what we test.
const SCRUBBED_ENV = [
  'HOST', 'PORT', 'DATABASE_URL', 'JWT_SECRET', 'FRONTEND_URL', 'EVENT_STYLE', 'WEBHOOK_URL',
  'WEBHOOK_SECRET', 'SMTP_URL', 'REDIS_URL', 'BODY_LIMIT',
  'EVENT_RETENTION_SECONDS', 'EVENT_RETENTION_COUNT', 'EVENT_PRUNE_INTERVAL_SECONDS',
  'SSE_KEEPALIVE_SECONDS', 'SOCKET_BUFFER', 'JWT_ISSUER', 'JWT_AUDIENCE', 'SHUTDOWN_TIMEOUT_SECONDS',
  'REST_RATE_BURST', 'REST_RATE_LIMIT_BY', 'TRUSTED_PROXIES', 'FORWARDED_HEADER', 'REDIS_PREFIX',
  'NOTIFICATION_RETENTION_SECONDS', 'SOCKET_RATE_BURST',
];

const LISTEN_RE = /^taskwire listening on (http:\/\/127\.0\.0\.1:(\d+))$/;
const MAX_LOG = 256 * 1024;

const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function tail(text, n = 8000) {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/**
 * Start a taskwire server.
 * @param {{env?: Record<string,string>, timeoutMs?: number, dir?: string}} [opts]
 *   dir: reuse this directory (and the taskwire.db in it) instead of a fresh temporary one.
 */
export async function startServer({ env = {}, timeoutMs = 20_000, dir: reuseDir } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`taskwire binary not found at ${bin}: run \`cargo build --bin taskwire\` or set TASKWIRE_BIN`);
  }
  const dir = reuseDir ?? mkdtempSync(path.join(os.tmpdir(), 'taskwire-clients-'));
  const ownsDir = reuseDir === undefined;
  const childEnv = { ...process.env };
  for (const k of SCRUBBED_ENV) delete childEnv[k];
  Object.assign(childEnv, {
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: `sqlite://${dir}/taskwire.db`,
    // The suites hammer the server on purpose; a test that checks limits sets its own.
    REST_RATE_LIMIT: '0',
    SOCKET_RATE_LIMIT: '0',
    ...env,
  });

  const child = spawn(bin, [], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);

  let stdout = '';
  let stderr = '';
  let exit = null; // { code, signal }
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      running.delete(child);
      resolve(exit);
    });
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-MAX_LOG); });
  child.stdout.setEncoding('utf8');

  const url = await new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve(value);
    };
    const timer = setTimeout(() => {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      finish(new Error(`taskwire did not print its listening line within ${timeoutMs} ms\n` +
        `--- stdout ---\n${tail(stdout)}\n--- stderr ---\n${tail(stderr)}`));
    }, timeoutMs);
    child.once('error', (e) => finish(new Error(`cannot spawn ${bin}: ${e.message}`)));
    exited.then(({ code, signal }) => finish(new Error(
      `taskwire exited before listening (code ${code}, signal ${signal})\n` +
      `--- stdout ---\n${tail(stdout)}\n--- stderr ---\n${tail(stderr)}`)));
    child.stdout.on('data', (d) => {
      stdout = (stdout + d).slice(-MAX_LOG);
      if (done) return;
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const m = LISTEN_RE.exec(line);
        if (m) return finish(null, m[1]);
      }
    });
  });

  const started = Date.now();
  let stopped = null;
  return {
    url,
    port: Number(new URL(url).port),
    dir,
    pid: child.pid,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    get exitStatus() { return exit; },
    /** SIGKILL (no graceful shutdown); keeps the directory. Resolves {code, signal}. */
    async kill() {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
    /** SIGTERM, wait up to timeoutMs, then SIGKILL. Resolves {code, signal, timedOut, ms}. */
    stop({ timeoutMs: stopTimeout = 10_000, removeDir = ownsDir } = {}) {
      if (stopped) return stopped;
      stopped = (async () => {
        const t0 = Date.now();
        let timedOut = false;
        if (!exit) {
          child.kill('SIGTERM');
          let timer;
          const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), stopTimeout); });
          const r = await Promise.race([exited, timeout]);
          clearTimeout(timer);
          if (r === 'timeout') {
            timedOut = true;
            child.kill('SIGKILL');
            await exited;
          }
        }
        if (removeDir) rmSync(dir, { recursive: true, force: true });
        return { ...exit, timedOut, ms: Date.now() - t0, uptimeMs: t0 - started };
      })();
      return stopped;
    },
  };
}

// ---------------------------------------------------------------------------------------
// REST helpers (global fetch)
// ---------------------------------------------------------------------------------------

export class HttpError extends Error {}

function describe(r) {
  return `${r.method} ${r.path} -> ${r.status} ${r.text.slice(0, 500)}`;
}

export function rest(baseUrl) {
  /**
   * @param {string} method
   * @param {string} p path, e.g. /api/tasks
   * @param {{body?: any, raw?: boolean, headers?: Record<string,string>, timeoutMs?: number}} [o]
   */
  async function request(method, p, { body, raw = false, headers = {}, timeoutMs = 10_000 } = {}) {
    const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) {
      init.body = raw ? body : JSON.stringify(body);
      if (!raw && !Object.keys(init.headers).some((h) => h.toLowerCase() === 'content-type')) {
        init.headers['content-type'] = 'application/json';
      }
    }
    const res = await fetch(baseUrl + p, init);
    const text = await res.text();
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    return { method, path: p, status: res.status, headers: res.headers, text, json };
  }

  function expect(r, status) {
    if (r.status !== status) throw new HttpError(`expected ${status}: ${describe(r)}`);
    return r;
  }

  return {
    request,
    async createTask(fields) {
      const r = expect(await request('POST', '/api/tasks', { body: fields }), 201);
      const loc = r.headers.get('location');
      if (!loc || !r.json?.id || !loc.endsWith(`/api/tasks/${r.json.id}`)) {
        throw new HttpError(`POST /api/tasks: Location ${JSON.stringify(loc)} does not point at the new task ${r.json?.id}`);
      }
      return r.json;
    },
    async updateTask(id, fields, method = 'PATCH') {
      const r = expect(await request(method, `/api/tasks/${encodeURIComponent(id)}`, { body: fields }), 200);
      return r.json;
    },
    async deleteTask(id) {
      expect(await request('DELETE', `/api/tasks/${encodeURIComponent(id)}`), 204);
    },
    /** Returns the raw response (status, json) so callers can check 404 too. */
    getTask(id) {
      return request('GET', `/api/tasks/${encodeURIComponent(id)}`);
    },
    listTasks(query = {}) {
      const qs = new URLSearchParams(query).toString();
      return request('GET', `/api/tasks${qs ? `?${qs}` : ''}`);
    },
    async totalCount() {
      const r = expect(await request('GET', '/api/tasks?limit=1'), 200);
      const h = r.headers.get('x-total-count');
      if (h === null) throw new HttpError(`GET /api/tasks has no X-Total-Count header`);
      return Number(h);
    },
  };
}

/**
 * GET /metrics and parse the Prometheus text format into { 'name{labels}': value }.
 * `metric(m, name, labels)` sums every series of `name` whose labels include `labels`.
 */
export async function scrapeMetrics(baseUrl, timeoutMs = 5_000) {
  const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new HttpError(`GET /metrics -> ${res.status}`);
  const out = {};
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

export function metric(metrics, name, labels = {}) {
  let sum = 0;
  for (const [key, value] of Object.entries(metrics)) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const ls = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/**
 * Waits until the server's /metrics shows at least `atLeast` for `name` (summed over its
 * series): for a background timer's work (pruning, a refill) instead of a fixed sleep.
 */
export async function waitForMetric(baseUrl, name, atLeast, timeoutMs = 10_000) {
  const t0 = Date.now();
  let seen = 0;
  for (;;) {
    seen = metric(await scrapeMetrics(baseUrl), name);
    if (seen >= atLeast) return seen;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${name} stayed at ${seen} (< ${atLeast}) for ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
