// CORS for browser frontends on another origin. With FRONTEND_URL=http://app.example the
// Socket.IO long-polling requests (what a browser's socket.io-client sends first) from
// Origin http://app.example get Access-Control-Allow-Origin: http://app.example; requests
// from any other origin do not get a header that lets that origin read the response.
//
// Raw node:http is used so the Origin header goes out exactly as a browser would send it.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';

const APP = 'http://app.example';
const EVIL = 'http://evil.example';

function request(base, method, path, { headers = {}, body, timeoutMs = 10_000 } = {}) {
  const u = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method,
      headers: { ...headers, ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}) },
      timeout: timeoutMs,
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function sidFromHandshake(body) {
  // EIO4: `0{"sid":…}`; EIO3: `<len>:0{"sid":…}`
  const m = /0(\{.*?"sid".*?\})/.exec(body);
  assert.ok(m, `no open packet in handshake body: ${body.slice(0, 200)}`);
  return JSON.parse(m[1]).sid;
}

function allowsOrigin(res, origin) {
  const acao = res.headers['access-control-allow-origin'];
  return acao === origin || acao === '*';
}

describe('CORS with FRONTEND_URL=http://app.example', { timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await startServer({ env: { FRONTEND_URL: APP } }); });
  after(async () => { await srv?.stop(); });

  test('EIO4 polling handshake from the allowed origin gets Access-Control-Allow-Origin', async () => {
    const r = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: APP } });
    assert.equal(r.status, 200, `handshake status ${r.status}: ${r.body.slice(0, 200)}`);
    assert.ok(sidFromHandshake(r.body));
    assert.equal(r.headers['access-control-allow-origin'], APP);
  });

  test('EIO4 polling handshake from another origin does not get it', async () => {
    const r = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: EVIL } });
    assert.ok(!allowsOrigin(r, EVIL),
      `evil origin was allowed: Access-Control-Allow-Origin=${r.headers['access-control-allow-origin']}`);
  });

  test('EIO4 polling POST (CONNECT packet) on the session from the allowed origin gets it too', async () => {
    const hs = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: APP } });
    const sid = sidFromHandshake(hs.body);
    const r = await request(srv.url, 'POST', `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, {
      headers: { Origin: APP, 'content-type': 'text/plain;charset=UTF-8' }, body: '40',
    });
    assert.equal(r.status, 200, `POST status ${r.status}: ${r.body}`);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    // The following GETs on the session deliver the socket.io CONNECT ack (possibly after an
    // engine.io ping `2`, which the server may queue first), each with the header.
    let received = '';
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 5 && !/40\{"sid":/.test(received) && Date.now() < deadline; i++) {
      const g = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, {
        headers: { Origin: APP }, timeoutMs: Math.max(1, deadline - Date.now()),
      });
      assert.equal(g.status, 200, `poll GET ${i}: ${g.status} ${g.body}`);
      assert.equal(g.headers['access-control-allow-origin'], APP, `poll GET ${i}`);
      received += `${g.body}\u001e`;
    }
    assert.match(received, /40\{"sid":/, `no CONNECT ack in the polled packets: ${JSON.stringify(received)}`);
  });

  test('EIO3 (socket.io-client 2.x) polling handshake from the allowed origin gets it', async () => {
    const r = await request(srv.url, 'GET', `/socket.io/?EIO=3&transport=polling&t=${Date.now()}`, { headers: { Origin: APP } });
    assert.equal(r.status, 200, `EIO3 handshake status ${r.status}: ${r.body.slice(0, 200)}`);
    assert.ok(sidFromHandshake(r.body));
    assert.equal(r.headers['access-control-allow-origin'], APP);
  });

  test('EIO3 polling handshake from another origin does not get it', async () => {
    const r = await request(srv.url, 'GET', `/socket.io/?EIO=3&transport=polling&t=${Date.now()}`, { headers: { Origin: EVIL } });
    assert.ok(!allowsOrigin(r, EVIL), `evil origin allowed: ${r.headers['access-control-allow-origin']}`);
  });

  test('preflight for a polling POST from the allowed origin is answered with the origin', async () => {
    const r = await request(srv.url, 'OPTIONS', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, {
      headers: { Origin: APP, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.ok(r.status >= 200 && r.status < 300, `preflight status ${r.status}`);
    assert.equal(r.headers['access-control-allow-origin'], APP);
  });

  test('REST from the allowed origin gets it; from another origin not', async () => {
    const ok = await request(srv.url, 'GET', '/api/tasks', { headers: { Origin: APP } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], APP);
    const bad = await request(srv.url, 'GET', '/api/tasks', { headers: { Origin: EVIL } });
    assert.ok(!allowsOrigin(bad, EVIL), `evil origin allowed on REST: ${bad.headers['access-control-allow-origin']}`);
  });
});

describe('CORS with a comma-separated FRONTEND_URL', { timeout: 60_000 }, () => {
  let srv;
  const SECOND = 'http://second.example:8080';
  before(async () => { srv = await startServer({ env: { FRONTEND_URL: `${APP},${SECOND}` } }); });
  after(async () => { await srv?.stop(); });

  test('both listed origins are allowed on polling, a third is not', async () => {
    for (const origin of [APP, SECOND]) {
      const r = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: origin } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-origin'], origin, `origin ${origin}`);
    }
    const r = await request(srv.url, 'GET', `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: EVIL } });
    assert.ok(!allowsOrigin(r, EVIL));
  });
});
