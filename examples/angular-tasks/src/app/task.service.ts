import { HttpClient, HttpHeaders } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Socket } from 'ngx-socket-io';
import { Observable, defer, from, merge, of } from 'rxjs';
import { map, scan, switchMap } from 'rxjs/operators';

import { Task } from './task';
import { TASKWIRE_CONFIG } from './taskwire-config';

/** One change to the list: a fresh list from REST, or one task event. */
type Change =
  | { kind: 'reset'; tasks: Task[] }
  | { kind: 'upsert'; task: Task }
  | { kind: 'delete'; task: Task };

/**
 * Tasks from taskwire: REST for the list, Socket.IO events for live changes. Each event has
 * one argument, the task, so `fromEvent` gives an `Observable<Task>` directly.
 */
@Injectable({ providedIn: 'root' })
export class TaskService {
  private readonly socket = inject(Socket);
  private readonly http = inject(HttpClient);
  private readonly config = inject(TASKWIRE_CONFIG);

  /** Every `task_updated` event. */
  onTaskUpdate(): Observable<Task> {
    return this.socket.fromEvent<Task, 'task_updated'>('task_updated');
  }

  /** Every `task_created` event. */
  onTaskCreated(): Observable<Task> {
    return this.socket.fromEvent<Task, 'task_created'>('task_created');
  }

  /** Every `task_deleted` event (the task as it was). */
  onTaskDeleted(): Observable<Task> {
    return this.socket.fromEvent<Task, 'task_deleted'>('task_deleted');
  }

  /** Emits once per connection, including the current one if the socket is already up. */
  connected(): Observable<void> {
    return defer(() =>
      merge(this.socket.ioSocket.connected ? of(undefined) : of(), this.socket.fromEvent<void, 'connect'>('connect')),
    ).pipe(map(() => undefined));
  }

  /** `websocket` or `polling` while connected, `null` otherwise. */
  transport(): string | null {
    return this.socket.ioSocket.connected ? this.socket.ioSocket.io.engine.transport.name : null;
  }

  /** GET /api/tasks. */
  list(): Observable<Task[]> {
    const headers = this.config.token
      ? new HttpHeaders({ Authorization: `Bearer ${this.config.token}` })
      : new HttpHeaders();
    return this.http.get<Task[]>(`${this.config.url}/api/tasks`, {
      headers,
      params: { limit: 1000, sort: 'created_at' },
    });
  }

  /**
   * The live list: reloaded over REST on every (re)connect, because events sent while the
   * socket was away are not replayed to a plain client, and changed by every event.
   */
  tasks(): Observable<Task[]> {
    const resets = this.connected().pipe(
      switchMap(() => from(this.list())),
      map((tasks): Change => ({ kind: 'reset', tasks })),
    );
    const events = merge(
      this.onTaskCreated().pipe(map((task): Change => ({ kind: 'upsert', task }))),
      this.onTaskUpdate().pipe(map((task): Change => ({ kind: 'upsert', task }))),
      this.onTaskDeleted().pipe(map((task): Change => ({ kind: 'delete', task }))),
    );
    return merge(resets, events).pipe(
      scan((byId, change) => apply(byId, change), new Map<string, Task>()),
      map((byId) => [...byId.values()]),
    );
  }
}

function apply(byId: Map<string, Task>, change: Change): Map<string, Task> {
  const next = new Map(change.kind === 'reset' ? [] : byId);
  switch (change.kind) {
    case 'reset':
      for (const task of change.tasks) next.set(task.id, task);
      break;
    case 'upsert': {
      const current = next.get(change.task.id);
      if (!current || current.version <= change.task.version) next.set(change.task.id, change.task);
      break;
    }
    case 'delete':
      next.delete(change.task.id);
      break;
  }
  return next;
}
