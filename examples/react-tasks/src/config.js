// Where taskwire is and how to reach it. Build time: VITE_TASKWIRE_URL, VITE_TASKWIRE_TRANSPORT,
// VITE_TASKWIRE_TOKEN. Run time (wins): ?server=http://host:port&transport=websocket|polling,
// and a token stored in localStorage under `taskwire.token`.
const params = new URLSearchParams(window.location.search);

function storedToken() {
  try {
    return localStorage.getItem('taskwire.token') || '';
  } catch {
    return '';
  }
}

export const SERVER_URL = (
  params.get('server') || import.meta.env.VITE_TASKWIRE_URL || 'http://localhost:5000'
).replace(/\/+$/, '');

const transport = params.get('transport') || import.meta.env.VITE_TASKWIRE_TRANSPORT || '';

/** socket.io-client's default is long-polling first, then an upgrade to WebSocket. */
export const TRANSPORTS =
  transport === 'websocket' ? ['websocket'] : transport === 'polling' ? ['polling'] : ['polling', 'websocket'];

/** Only needed when taskwire runs with JWT_SECRET. */
export const TOKEN = storedToken() || import.meta.env.VITE_TASKWIRE_TOKEN || '';
