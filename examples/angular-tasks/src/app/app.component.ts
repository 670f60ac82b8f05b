import { ChangeDetectionStrategy, Component, DestroyRef, inject, signal } from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { Socket } from 'ngx-socket-io';

import { Task } from './task';
import { TaskService } from './task.service';
import { TASKWIRE_CONFIG } from './taskwire-config';

const LABELS: Record<Task['status'], string> = {
  pending: 'Pending',
  in_progress: 'In progress',
  completed: 'Completed',
};

@Component({
  selector: 'app-root',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <main>
      <h1>Tasks</h1>
      <p id="connection" role="status" [attr.data-state]="state()" [attr.data-transport]="transport() ?? ''"
         [attr.data-loaded]="loaded() ? 'yes' : 'no'">
        @if (state() === 'connected') {
          Live via {{ transport() }} from {{ url }}
        } @else {
          Not connected to {{ url }}{{ error() ? ': ' + error() : '' }}
        }
      </p>
      <ul id="tasks">
        @for (task of tasks(); track task.id) {
          <li [attr.data-id]="task.id" [attr.data-status]="task.status">
            <span class="title">{{ task.title }}</span> <span class="status">({{ label(task) }})</span>
          </li>
        }
      </ul>
      @if (lastUpdate(); as update) {
        <p id="last-update">Last update: {{ update.title }} (version {{ update.version }})</p>
      }
    </main>
  `,
})
export class AppComponent {
  protected readonly url = inject(TASKWIRE_CONFIG).url;
  protected readonly tasks = signal<Task[]>([]);
  protected readonly loaded = signal(false);
  protected readonly state = signal<'connecting' | 'connected' | 'disconnected'>('connecting');
  protected readonly transport = signal<string | null>(null);
  protected readonly error = signal<string | null>(null);
  protected readonly lastUpdate = signal<Task | null>(null);

  constructor() {
    const service = inject(TaskService);
    const socket = inject(Socket);
    const destroyRef = inject(DestroyRef);

    service
      .tasks()
      .pipe(takeUntilDestroyed(destroyRef))
      .subscribe({
        next: (tasks) => {
          this.tasks.set(tasks);
          this.loaded.set(true);
        },
        error: (err: { message?: string }) => this.error.set(err.message ?? String(err)),
      });
    // The idiomatic pattern: a component subscribes to the service's Observable<Task>.
    service
      .onTaskUpdate()
      .pipe(takeUntilDestroyed(destroyRef))
      .subscribe((task) => this.lastUpdate.set(task));

    const refresh = () => {
      this.transport.set(service.transport());
      this.state.set(socket.ioSocket.connected ? 'connected' : 'disconnected');
    };
    service.connected().pipe(takeUntilDestroyed(destroyRef)).subscribe(() => {
      this.error.set(null);
      refresh();
      socket.ioSocket.io.engine.once('upgrade', refresh);
    });
    socket.fromEvent<void, 'disconnect'>('disconnect').pipe(takeUntilDestroyed(destroyRef)).subscribe(refresh);
    socket
      .fromEvent<Error, 'connect_error'>('connect_error')
      .pipe(takeUntilDestroyed(destroyRef))
      .subscribe((err) => {
        this.error.set(err.message);
        refresh();
      });
  }

  protected label(task: Task): string {
    return LABELS[task.status] ?? task.status;
  }
}
