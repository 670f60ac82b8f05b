import { InjectionToken } from '@angular/core';

/** Where taskwire is and how the socket reaches it. */
export interface TaskwireConfig {
  /** Base URL of the taskwire server, e.g. `http://localhost:5000`. */
  url: string;
  /** socket.io-client transports: the default polls first and then upgrades to WebSocket. */
  transports: ('polling' | 'websocket')[];
  /** A JWT, only needed when taskwire runs with JWT_SECRET. */
  token: string;
}

export const TASKWIRE_CONFIG = new InjectionToken<TaskwireConfig>('TASKWIRE_CONFIG');

declare global {
  interface Window {
    /** Optional: set by a script before the app loads to point it at another server. */
    TASKWIRE_URL?: string;
  }
}

/**
 * Reads the settings at start-up, so one build runs against any server:
 * `?server=http://host:port` (or `window.TASKWIRE_URL`), `?transport=websocket|polling`, and a
 * token kept in localStorage under `taskwire.token`. Default: http://localhost:5000.
 */
export function resolveConfig(location: Location = window.location): TaskwireConfig {
  const params = new URLSearchParams(location.search);
  const url = (params.get('server') || window.TASKWIRE_URL || 'http://localhost:5000').replace(/\/+$/, '');
  const transport = params.get('transport');
  const transports: TaskwireConfig['transports'] =
    transport === 'websocket' ? ['websocket'] : transport === 'polling' ? ['polling'] : ['polling', 'websocket'];
  let token = '';
  try {
    token = localStorage.getItem('taskwire.token') ?? '';
  } catch {
    // storage disabled: no token
  }
  return { url, transports, token };
}
