// Server-Sent Events helpers shared by the client-compatibility tests.
//
//   openRawSse(url, { headers })  -> a fetch-based reader with its own small SSE parser
//                                    (independent of the `eventsource` package), recording
//                                    every event block, comment and `retry:` it sees.
//   esReady(es)                   -> resolves once an EventSource is OPEN (with a timeout).
//   waitForList(list, pred, ms)   -> polls a list until pred holds.
//
// Every wait has a timeout.

import { sleep } from './sockets.mjs';

/**
 * Parses an SSE byte stream (as text chunks) into blocks, following the WHATWG rules that
 * matter here: lines end in \n, \r\n or \r; `:` starts a comment; `field: value` (one
 * optional space after the colon); an empty line dispatches the block.
 */
export class SseParser {
  constructor(onBlock, onComment = () => {}) {
    this.buf = '';
    this.block = null;
    this.onBlock = onBlock;
    this.onComment = onComment;
  }

  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) return;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.block) this.onBlock(this.block);
      this.block = null;
      return;
    }
    if (line.startsWith(':')) {
      this.onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.block ??= { fields: [] };
    this.block.fields.push([field, value]);
    if (field === 'data') this.block.data = this.block.data === undefined ? value : `${this.block.data}\n${value}`;
    else if (field === 'id') this.block.id = value;
    else if (field === 'event') this.block.event = value;
    else if (field === 'retry') this.block.retry = value;
  }
}

/**
 * Opens `url` with fetch and parses the stream. Resolves once the response headers arrived.
 * Returns { status, headers, blocks, comments, events, close(), waitFor(pred, ms, what), done }
 * where `events` are the blocks that carry data (each with `json` when data is JSON).
 */
export async function openRawSse(url, { headers = {}, timeoutMs = 10_000 } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new Error(`no SSE response headers from ${url} within ${timeoutMs} ms`)), timeoutMs);
  let res;
  try {
    res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: ctrl.signal });
  } finally {
    clearTimeout(timer);
  }
  const blocks = [];
  const comments = [];
  const events = [];
  const waiters = new Set();
  const wake = () => { for (const w of [...waiters]) w(); };
  const parser = new SseParser((b) => {
    blocks.push(b);
    if (b.data !== undefined) {
      try { b.json = JSON.parse(b.data); } catch { /* not JSON */ }
      b.receivedAt = Date.now();
      events.push(b);
    }
    wake();
  }, (c) => { comments.push({ text: c, at: Date.now() }); wake(); });

  let closed = false;
  let error = null;
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.push(decoder.decode(chunk, { stream: true }));
    } catch (e) {
      if (!closed) error = e;
    } finally {
      closed = true;
      wake();
    }
  })();

  return {
    url,
    status: res.status,
    headers: res.headers,
    blocks,
    comments,
    events,
    get closed() { return closed; },
    get error() { return error; },
    done,
    close() {
      if (!closed) { closed = true; ctrl.abort(); }
      return done.catch(() => {});
    },
    /** Resolves with the first event (data block) matching pred; rejects after timeoutMs. */
    waitFor(pred, ms = 5_000, what = 'an SSE event') {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${ms} ms from ${url}; got ids [${events.map((e) => e.id).join(',')}]` +
            `${error ? `; stream error: ${error.message}` : ''}${closed ? ' (stream closed)' : ''}`));
        }, ms);
        function check() {
          const e = events.find(pred);
          if (e) { clearTimeout(t); waiters.delete(check); resolve(e); }
        }
        waiters.add(check);
      });
    },
  };
}

/** Resolves once `es.readyState === OPEN (1)`; rejects if it is CLOSED or after timeoutMs. */
export async function esReady(es, timeoutMs = 5_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (es.readyState === 1) return es;
    if (es.readyState === 2) throw new Error(`EventSource ${es.url} closed before opening`);
    await sleep(10);
  }
  throw new Error(`EventSource ${es.url} not open within ${timeoutMs} ms (readyState ${es.readyState})`);
}

/** Collects events from an async source until `pred(list)` holds, with a timeout. */
export async function waitForList(list, pred, timeoutMs, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (pred(list)) return list;
    await sleep(10);
  }
  if (pred(list)) return list;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
}
