import { bootstrapApplication } from '@angular/platform-browser';

import { AppComponent } from './app/app.component';
import { appConfig } from './app/app.config';
import { resolveConfig } from './app/taskwire-config';

bootstrapApplication(AppComponent, appConfig(resolveConfig())).catch((err) => console.error(err));
