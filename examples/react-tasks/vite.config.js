import { defineConfig } from 'vite';

// No framework plugin: Vite compiles JSX by itself, and the example stays at three runtime
// dependencies. Add @vitejs/plugin-react if you want Fast Refresh while editing.
export default defineConfig({
  // Relative asset URLs, so the built app works from any directory of any static server.
  base: './',
  server: { port: 5173 },
});
