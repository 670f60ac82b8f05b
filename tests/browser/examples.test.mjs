// The Angular (ngx-socket-io) and React (socket.io-client) examples, built from
// examples/*-tasks, served from their own origin and opened in Chromium against a real
// taskwire: they list tasks over REST and apply task_created/updated/deleted live, once with
// socket.io-client on WebSocket only and once on HTTP long-polling only.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { REPO_ROOT, rest, startServer } from '../clients/server.mjs';
import { launchChromium, watchErrors, within } from './browser.mjs';
import { serveStatic } from './static.mjs';

/** How quickly a REST change must reach the app. */
const LIVE_MS = 2000;

const EXAMPLES = [
  { name: 'angular', dir: 'examples/angular-tasks', dist: 'dist/browser' },
  { name: 'react', dir: 'examples/react-tasks', dist: 'dist' },
];
const TRANSPORTS = ['websocket', 'polling'];

/** Installs the locked dependencies (see scripts/test-browser.sh for why npm install follows). */
function install(cwd) {
  try {
    npm(['ci', '--no-audit', '--no-fund', '--loglevel=error'], cwd);
  } catch {
    npm(['install', '--no-audit', '--no-fund', '--loglevel=error'], cwd);
  }
}

function npm(args, cwd) {
  const r = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NG_CLI_ANALYTICS: 'false', NO_COLOR: '1' },
    timeout: 600_000,
  });
  if (r.status !== 0) {
    throw new Error(`npm ${args.join(' ')} in ${cwd} failed (${r.status ?? r.signal}):\n${(r.stdout + r.stderr).slice(-4000)}`);
  }
}

const sites = {};
let server;

before(async () => {
  // Build each example as a user would (npm ci once, then its build script), then serve it.
  for (const example of EXAMPLES) {
    const cwd = path.join(REPO_ROOT, example.dir);
    if (!existsSync(path.join(cwd, 'node_modules'))) install(cwd);
    npm(['run', 'build', '--silent'], cwd);
    const dist = path.join(cwd, example.dist);
    assert.ok(existsSync(path.join(dist, 'index.html')), `${example.name}: the build left no ${example.dist}/index.html`);
    sites[example.name] = await serveStatic(dist);
  }
  // taskwire must let the apps' origins in: FRONTEND_URL, as the examples' READMEs say.
  server = await startServer({ env: { FRONTEND_URL: Object.values(sites).map((s) => s.url).join(',') } });
});

after(async () => {
  await server?.stop();
  for (const site of Object.values(sites)) await site.close();
});

for (const example of EXAMPLES) {
  for (const transport of TRANSPORTS) {
    test(`${example.name} example over ${transport}: lists tasks from REST and applies live changes`, { timeout: 60_000 }, async (t) => {
      const context = await launchChromium(t);
      if (!context) return;
      try {
        const api = rest(server.url);
        const tag = `${example.name}/${transport}`;
        const existing = await api.createTask({ title: `Existing before load (${tag})` });

        const page = await context.newPage();
        const errors = watchErrors(page);
        const websockets = [];
        const sent = [];
        page.on('websocket', (ws) => {
          websockets.push(ws.url());
          ws.on('framesent', (frame) => sent.push(String(frame.payload)));
        });
        const polls = [];
        page.on('request', (r) => {
          if (r.url().includes('/socket.io/')) {
            polls.push(r.url());
            if (r.method() === 'POST') sent.push(r.postData() ?? '');
          }
        });

        const query = new URLSearchParams({ server: server.url, transport });
        await page.goto(`${sites[example.name].url}/?${query}`);
        const status = page.locator('#connection');
        await page.locator('#connection[data-state="connected"][data-loaded="yes"]').waitFor({ timeout: 20_000 })
          .catch(async () => assert.fail(`${tag} did not connect and load: ${await status.textContent()} ${JSON.stringify(errors)}`));
        assert.equal(await status.getAttribute('data-transport'), transport);
        await page.locator(`#tasks li[data-id="${existing.id}"]`).waitFor({ timeout: 5000 });

        // Created over REST -> appears.
        let since = Date.now();
        const task = await api.createTask({ title: `Live from REST (${tag})` });
        const item = page.locator(`#tasks li[data-id="${task.id}"]`);
        await within(item, since, LIVE_MS, `${tag}: task_created`);
        assert.equal(await item.locator('.title').textContent(), task.title);

        // Updated over REST -> changes in place.
        since = Date.now();
        await api.updateTask(task.id, { title: `Renamed (${tag})`, status: 'completed' });
        await within(page.locator(`#tasks li[data-id="${task.id}"][data-status="completed"]`), since, LIVE_MS, `${tag}: task_updated`);
        assert.equal(await item.locator('.title').textContent(), `Renamed (${tag})`);
        if (example.name === 'angular') {
          // The component's subscription to TaskService.onTaskUpdate() saw it too.
          await page.locator('#last-update', { hasText: `Renamed (${tag})` }).waitFor({ timeout: 2000 });
        }

        if (example.name === 'react') {
          // Opening a task emits join-task with its id (fire and forget).
          await item.getByRole('button').click();
          await page.locator('#details h2', { hasText: `Renamed (${tag})` }).waitFor({ timeout: 2000 });
          const joined = `["join-task","${task.id}"]`;
          const deadline = Date.now() + 2000;
          while (!sent.some((s) => s.includes(joined)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          assert.ok(sent.some((s) => s.includes(joined)), `${tag}: join-task was not sent (sent: ${JSON.stringify(sent.slice(-5))})`);
        }

        // Deleted over REST -> disappears.
        since = Date.now();
        await api.deleteTask(task.id);
        await within(item, since, LIVE_MS, `${tag}: task_deleted`, { gone: true });

        // The socket really used only the transport asked for.
        const engine = (u) => new URL(u).searchParams.get('transport');
        if (transport === 'websocket') {
          assert.ok(websockets.some((u) => u.includes('/socket.io/') && engine(u) === 'websocket'), `${tag}: no WebSocket was opened`);
          assert.deepEqual(polls.filter((u) => engine(u) === 'polling'), [], `${tag}: long-polling requests were made`);
        } else {
          assert.deepEqual(websockets, [], `${tag}: a WebSocket was opened`);
          assert.ok(polls.filter((u) => engine(u) === 'polling').length >= 2, `${tag}: no long-polling requests seen`);
        }
        assert.deepEqual(errors, [], `${tag}: errors in the page`);
      } finally {
        await context.close();
      }
    });
  }
}
