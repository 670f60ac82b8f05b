import { provideHttpClient, withFetch } from '@angular/common/http';
import { ApplicationConfig } from '@angular/core';
import { SocketIoConfig, provideSocketIo } from 'ngx-socket-io';

import { TASKWIRE_CONFIG, TaskwireConfig } from './taskwire-config';

/** Providers for the app: HttpClient, the ngx-socket-io Socket and the taskwire settings. */
export function appConfig(taskwire: TaskwireConfig): ApplicationConfig {
  const socket: SocketIoConfig = {
    url: taskwire.url,
    options: {
      transports: taskwire.transports,
      ...(taskwire.token ? { auth: { token: taskwire.token } } : {}),
    },
  };
  return {
    providers: [
      provideHttpClient(withFetch()),
      provideSocketIo(socket),
      { provide: TASKWIRE_CONFIG, useValue: taskwire },
    ],
  };
}
