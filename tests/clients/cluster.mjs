// What a multi-process test needs besides taskwire itself: a Postgres database of its own, a
// redis-server of its own (so it can be killed and restarted), and nginx configured from
// examples/cluster/nginx.conf. Every one of them is real; a missing one fails the test.
//
//   const db = await createDatabase();        db.url, await db.drop()
//   const redis = await startRedis();         redis.url, await redis.kill(), await redis.start()
//   const lb = await startNginx([url, …]);    lb.url, await lb.stop()

import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './server.mjs';
import { sleep } from './sockets.mjs';

const run = promisify(execFile);
const ADMIN_URL = process.env.TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
async function waitForPort(port, timeoutMs, what) {
  const t0 = Date.now();
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** A new, empty Postgres database; `drop()` removes it (closing what is still connected). */
export async function createDatabase() {
  const name = `taskwire_cluster_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const psql = (sql) => run('psql', [ADMIN_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);
  await psql(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), name, drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** A redis-server on a free port that keeps nothing on disk. */
export async function startRedis() {
  const port = await freePort();
  let child = null;
  let log = '';
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    log: () => log,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      child.stdout.on('data', (d) => { log = (log + d).slice(-20_000); });
      child.stderr.on('data', (d) => { log = (log + d).slice(-20_000); });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.exited = exited;
      await Promise.race([
        waitForPort(port, 10_000, 'redis-server'),
        exited.then(() => { throw new Error(`redis-server exited at start:\n${log}`); }),
      ]);
    },
    /** SIGKILL: as a crash or a restart of the Redis host looks to taskwire. */
    async kill() {
      if (!child) return;
      const c = child;
      child = null;
      c.kill('SIGKILL');
      await c.exited;
      children.delete(c);
    },
  };
  await redis.start();
  return redis;
}

/**
 * nginx with examples/cluster/nginx.conf in front of `backends` (taskwire base URLs), in a
 * directory of its own (pid, temp files), on a free port.
 */
export async function startNginx(backends) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'taskwire-nginx-'));
  chmodSync(dir, 0o755); // nginx's workers (not root) keep request bodies in temp dirs here
  const servers = backends.map((u) => `server ${new URL(u).host} max_fails=1 fail_timeout=5s;`).join(' ');
  const conf = readFileSync(path.join(REPO_ROOT, 'examples/cluster/nginx.conf'), 'utf8')
    .replace('@LISTEN@', `127.0.0.1:${port}`)
    .replace('@SERVERS@', servers);
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  await run('nginx', ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr']);
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let log = '';
  child.stderr.on('data', (d) => { log = (log + d).slice(-20_000); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await Promise.race([
    waitForPort(port, 10_000, 'nginx'),
    exited.then(() => { throw new Error(`nginx exited at start:\n${log}`); }),
  ]);
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      child.kill('SIGQUIT');
      await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
      children.delete(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
