// JWTs for the auth tests, minted by hand with node:crypto so the tests depend on no JWT
// library (and can build the malformed tokens a library would refuse to produce).
//
//   signToken({ sub: 'alice', workspace: 'acme' }, { secret })          -> HS256, exp = now+1h
//   signToken(claims, { secret, alg: 'HS512' })                           -> HS512
//   signToken(claims, { alg: 'none' })                                    -> 'h.p.' (unsigned)
//   signToken(claims, { secret, exp: false })                             -> no exp claim
//   mintWithCli({ sub, workspace, name }, env)                            -> `taskwire token …`
//
// Claims given explicitly win over the defaults (exp = now + 3600); pass `exp: undefined` in
// claims together with `{ exp: false }` in options to leave it out.

import { createHmac } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { binaryPath, REPO_ROOT } from './server.mjs';

export const b64url = (input) => Buffer.from(input).toString('base64url');
export const nowSeconds = () => Math.floor(Date.now() / 1000);

const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/**
 * @param {Record<string, any>} claims
 * @param {{secret?: string, alg?: string, header?: Record<string, any>, exp?: boolean, ttl?: number}} [o]
 */
export function signToken(claims, { secret = '', alg = 'HS256', header = {}, exp = true, ttl = 3600 } = {}) {
  const payload = { ...(exp ? { exp: nowSeconds() + ttl } : {}), ...claims };
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(payload));
  if (alg.toLowerCase() === 'none') return `${h}.${p}.`;
  const hash = HMAC[alg];
  if (!hash) throw new Error(`signToken: unsupported alg ${alg}`);
  const sig = createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

/** Decodes a JWT payload without verifying it (to check what `taskwire token` put in it). */
export function decodePayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

const execFileP = promisify(execFile);

/** Runs `taskwire token --sub … [--workspace …] [--name …]` with JWT_SECRET etc. in env. */
export async function mintWithCli({ sub, workspace, name, email, ttl }, env) {
  const args = ['token', '--sub', sub];
  if (workspace) args.push('--workspace', workspace);
  if (name) args.push('--name', name);
  if (email) args.push('--email', email);
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  const childEnv = { ...process.env };
  for (const k of ['JWT_SECRET', 'JWT_ISSUER', 'JWT_AUDIENCE', 'DATABASE_URL']) delete childEnv[k];
  Object.assign(childEnv, env);
  const { stdout } = await execFileP(binaryPath(), args, { cwd: REPO_ROOT, env: childEnv, timeout: 10_000 });
  return stdout.trim();
}

/** Headers for a bearer token (or none). */
export const bearer = (token) => (token === undefined ? {} : { authorization: `Bearer ${token}` });
