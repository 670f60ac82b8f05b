// ngx-socket-io (what Angular apps use) against taskwire, run in plain Node.
//
// WHICH ONE: the real wrapper runs here, it is not replicated. We import ngx-socket-io 4.10.0
// (the release for Angular 21; ngx-socket-io 4.11 wants Angular 22, which needs Node >= 22.22)
// and obtain its `Socket` (= WrappedSocket) through Angular's own dependency injection:
// `provideSocketIo(config)` in an environment injector scoped as 'root' with zoneless change
// detection, exactly the providers an app's `bootstrapApplication(..., {providers:
// [provideSocketIo(config)]})` gets. Why this works outside a browser: WrappedSocket's
// constructor is `(config, appRef)` and only calls `io(config.url, config.options)` from
// socket.io-client; the ApplicationRef is used only for `appRef.tick()` after each event, and
// a zoneless ApplicationRef ticks fine with no views. Two things are needed in Node: the
// package is partially compiled, so `@angular/compiler` must be loaded first (JIT fallback,
// as in an un-linked dev build), and the injector must carry the 'root' scope
// (ɵINJECTOR_SCOPE) so that ApplicationRef (providedIn: 'root') can be created.
//
// What is checked: `socket.fromEvent('task_updated')` (the wrapper's Observable) emits the
// task object; RxJS's own `fromEvent(socket.ioSocket, 'task_updated')` emits the task object
// and not an array (RxJS turns a multi-argument event into an array, which is why the server
// must send exactly one argument); `emitWithAck('create_task', …)` resolves with the ack.

import '@angular/compiler';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ng from '@angular/core';
import { Socket, provideSocketIo } from 'ngx-socket-io';
import { filter, firstValueFrom, fromEvent, timeout as rxTimeout } from 'rxjs';
import { rest, startServer } from './server.mjs';
import { assertOkAck, assertTask, sleep, transportName, uniqueTitle, waitUntil } from './sockets.mjs';

let srv;
let api;
const injectors = [];

before(async () => {
  srv = await startServer();
  api = rest(srv.url);
});

after(async () => {
  for (const inj of injectors) {
    try { inj.get(Socket).disconnect(); } catch { /* ignore */ }
    try { inj.destroy(); } catch { /* ignore */ }
  }
  await srv?.stop();
});

/** What an Angular app does: provideSocketIo({url, options}) and inject(Socket). */
function angularSocket(config) {
  const injector = ng.createEnvironmentInjector(
    [
      { provide: ng.ɵINJECTOR_SCOPE, useValue: 'root' },
      ng.provideZonelessChangeDetection(),
      provideSocketIo(config),
    ],
    ng.Injector.NULL,
    'ngx-socket-io test root',
  );
  injectors.push(injector);
  const socket = injector.get(Socket);
  assert.ok(socket instanceof Socket);
  assert.ok(socket.appRef instanceof ng.ApplicationRef, 'the wrapper got a real ApplicationRef from DI');
  return socket;
}

async function connected(socket, timeoutMs = 10_000) {
  if (!socket.connected) {
    await firstValueFrom(socket.fromEvent('connect').pipe(rxTimeout(timeoutMs)));
  }
  assert.equal(socket.connected, true);
}

// The configs Angular apps typically pass.
const CONFIGS = [
  ['options: {} (polling, then upgrade)', {}],
  ['options: {transports: ["websocket"]}', { transports: ['websocket'] }],
];

for (const [name, options] of CONFIGS) {
  describe(`ngx-socket-io Socket with ${name}`, { timeout: 60_000 }, () => {
    let socket;
    before(async () => {
      socket = angularSocket({ url: srv.url, options: { ...options, reconnection: false } });
      await connected(socket);
      if (!options.transports) {
        await waitUntil(() => transportName(socket) === 'websocket', 10_000, 'the upgrade to websocket');
      }
    });

    test('socket.fromEvent("task_updated") emits the task object', async () => {
      const t = await api.createTask({ title: uniqueTitle('ngx') });
      const got = firstValueFrom(socket.fromEvent('task_updated').pipe(
        filter((v) => v?.id === t.id), rxTimeout(5_000)));
      await api.updateTask(t.id, { status: 'completed' });
      const v = await got;
      assert.ok(!Array.isArray(v), `expected the task object, got an array: ${JSON.stringify(v)}`);
      assertTask(v, { id: t.id, title: t.title, status: 'completed', version: 2 }, 'ngx fromEvent value');
    });

    test('rxjs fromEvent(socket.ioSocket, "task_updated") emits the task itself, not an [task, …] array', async () => {
      const t = await api.createTask({ title: uniqueTitle('rxjs') });
      // Collect every emission for this task so an extra argument or a duplicate is seen.
      const vs = [];
      const sub = fromEvent(socket.ioSocket, 'task_updated').pipe(
        filter((v) => (Array.isArray(v) ? v[0] : v)?.id === t.id),
      ).subscribe((v) => vs.push(v));
      try {
        await api.updateTask(t.id, { title: `${t.title} v2` });
        await api.updateTask(t.id, { title: `${t.title} v3` });
        await waitUntil(() => vs.some((v) => (Array.isArray(v) ? v[0] : v)?.version === 3), 5_000,
          () => `the second task_updated via rxjs fromEvent (got ${JSON.stringify(vs).slice(0, 300)})`);
      } finally {
        sub.unsubscribe();
      }
      for (const v of vs) assert.ok(!Array.isArray(v), `RxJS emitted an array (the event had several arguments): ${JSON.stringify(v).slice(0, 300)}`);
      assert.equal(vs.length, 2, `expected exactly 2 emissions, got ${JSON.stringify(vs).slice(0, 300)}`);
      assertTask(vs[0], { id: t.id, title: `${t.title} v2`, version: 2 }, 'first emission');
      assertTask(vs[1], { id: t.id, title: `${t.title} v3`, version: 3 }, 'second emission');
    });

    test('fromEvent("task_created") / fromEvent("task_deleted") also emit plain task objects', async () => {
      const title = uniqueTitle('ngx created');
      const createdP = firstValueFrom(fromEvent(socket.ioSocket, 'task_created').pipe(
        filter((v) => (Array.isArray(v) ? v[0] : v)?.title === title), rxTimeout(5_000)));
      const t = await api.createTask({ title });
      const c = await createdP;
      assert.ok(!Array.isArray(c), 'task_created emitted an array');
      assertTask(c, { id: t.id, title, version: 1 });

      const deletedP = firstValueFrom(socket.fromEvent('task_deleted').pipe(filter((v) => v?.id === t.id), rxTimeout(5_000)));
      const deletedRx = firstValueFrom(fromEvent(socket.ioSocket, 'task_deleted').pipe(
        filter((v) => (Array.isArray(v) ? v[0] : v)?.id === t.id), rxTimeout(5_000)));
      await api.deleteTask(t.id);
      assertTask(await deletedP, { id: t.id, title, version: 1 });
      const d = await deletedRx;
      assert.ok(!Array.isArray(d), 'task_deleted emitted an array');
    });

    test('emitWithAck("create_task") resolves with {ok:true, task}', async () => {
      const title = uniqueTitle('ngx emitWithAck');
      const ack = await Promise.race([
        socket.emitWithAck('create_task', { title }),
        sleep(5_000).then(() => { throw new Error('no ack within 5 s'); }),
      ]);
      assertOkAck([ack], { title, version: 1 }, 'ngx emitWithAck');
      const r = await api.getTask(ack.task.id);
      assert.equal(r.status, 200);
    });
  });
}
