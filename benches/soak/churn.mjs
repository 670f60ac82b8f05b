// Churn for the soak (benches/soak.sh): for a bounded time, clients arrive at a steady rate,
// stay a few seconds and leave, the way browser tabs come and go beside the long-lived sockets
// the load generator holds. Each arrival is one of:
//
//   websocket   socket.io-client with transports: ['websocket'], leaves with disconnect()
//   polling     transports: ['polling'] only, leaves with disconnect()
//   upgrade     the default (long-polling, then the upgrade), leaves with disconnect()
//   refused     a token signed with the wrong secret: must get connect_error, never connect
//   dropped     a WebSocket client whose TCP connection is destroyed without a close frame;
//               the server only learns of it from its heartbeat
//   sse         GET /api/tasks/stream, read for a while, then aborted
//
// Prints one JSON report on stdout: per kind, how many started, did what they should (connected
// or, for `refused`, were refused), failed otherwise, and the events they received.
//
//   node churn.mjs --url http://127.0.0.1:5000 --token <jwt> --bad-token <jwt> \
//     --per-minute 1000 --seconds 600

import { io } from 'socket.io-client';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const url = args.url ?? 'http://127.0.0.1:5000';
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url)) {
  console.error('churn: loopback URLs only');
  process.exit(2);
}
const token = args.token;
const badToken = args['bad-token'];
const perMinute = Number(args['per-minute'] ?? 1000);
const seconds = Number(args.seconds ?? 600);
// How long one client stays, in milliseconds: uniform in [min, max).
const stayMin = Number(args['stay-min-ms'] ?? 2000);
const stayMax = Number(args['stay-max-ms'] ?? 15000);
// A client that has neither connected nor been refused by then counts as failed.
const CONNECT_TIMEOUT_MS = 20000;

// Shares of the arrivals, in order; they sum to 1.
const MIX = [
  ['websocket', 0.25],
  ['polling', 0.15],
  ['upgrade', 0.3],
  ['refused', 0.1],
  ['dropped', 0.1],
  ['sse', 0.1],
];

const report = Object.fromEntries(
  MIX.map(([kind]) => [kind, { started: 0, ok: 0, failed: 0, events: 0, errors: {} }]),
);
let open = 0;

const pick = () => {
  let r = Math.random();
  for (const [kind, share] of MIX) {
    if ((r -= share) < 0) return kind;
  }
  return MIX[0][0];
};
const stay = () => stayMin + Math.random() * (stayMax - stayMin);
const fail = (kind, why) => {
  report[kind].failed += 1;
  const key = String(why).slice(0, 120);
  report[kind].errors[key] = (report[kind].errors[key] ?? 0) + 1;
};

function socketClient(kind) {
  const transports = { websocket: ['websocket'], polling: ['polling'], dropped: ['websocket'] }[kind];
  const socket = io(url, {
    forceNew: true,
    reconnection: false,
    timeout: CONNECT_TIMEOUT_MS,
    ...(transports ? { transports } : {}),
    auth: { token: kind === 'refused' ? badToken : token },
  });
  open += 1;
  let settled = false;
  const done = () => {
    if (settled) return;
    settled = true;
    open -= 1;
  };
  socket.onAny(() => {
    report[kind].events += 1;
  });
  socket.on('connect', () => {
    if (kind === 'refused') {
      fail(kind, 'connected with a bad token');
      socket.disconnect();
      done();
      return;
    }
    report[kind].ok += 1;
    setTimeout(() => {
      if (kind === 'dropped') {
        // The ws library's underlying net.Socket: destroyed, no close frame, no FIN handshake
        // the server could read as a goodbye before its heartbeat notices.
        const raw = socket.io.engine?.transport?.ws?._socket;
        if (raw) raw.destroy();
        else fail(kind, 'no raw socket to drop');
        socket.io.engine?.removeAllListeners();
      } else {
        socket.disconnect();
      }
      done();
    }, stay());
  });
  socket.on('connect_error', (err) => {
    if (kind === 'refused') report[kind].ok += 1;
    else fail(kind, `connect_error: ${err.message}`);
    socket.disconnect();
    done();
  });
}

async function sseClient() {
  const kind = 'sse';
  open += 1;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), stay());
  try {
    const res = await fetch(`${url}/api/tasks/stream`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    if (res.status !== 200) {
      fail(kind, `status ${res.status}`);
      return;
    }
    report[kind].ok += 1;
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of res.body) {
      pending += decoder.decode(chunk, { stream: true });
      const parts = pending.split('\n\n');
      pending = parts.pop();
      report[kind].events += parts.filter((p) => /^data:/m.test(p)).length;
    }
  } catch (err) {
    if (err.name !== 'AbortError') fail(kind, err.message);
  } finally {
    clearTimeout(timer);
    open -= 1;
  }
}

function arrive() {
  const kind = pick();
  report[kind].started += 1;
  if (kind === 'sse') sseClient();
  else socketClient(kind);
}

const interval = 60000 / perMinute;
const started = Date.now();
const ticker = setInterval(() => {
  // Arrivals due by now, so a busy event loop catches up instead of falling behind.
  const due = Math.floor((Date.now() - started) / interval);
  while (arrivals < due) {
    arrivals += 1;
    arrive();
  }
}, 20);
let arrivals = 0;

setTimeout(async () => {
  clearInterval(ticker);
  // Let the last arrivals finish their stay (bounded).
  const until = Date.now() + stayMax + CONNECT_TIMEOUT_MS;
  while (open > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  const total = Object.values(report).reduce(
    (sum, r) => ({ started: sum.started + r.started, ok: sum.ok + r.ok, failed: sum.failed + r.failed }),
    { started: 0, ok: 0, failed: 0 },
  );
  console.log(JSON.stringify({ seconds, per_minute: perMinute, still_open: open, total, kinds: report }));
  process.exit(0);
}, seconds * 1000);
