// Launches Debian's Chromium through playwright-core (which never downloads a browser).
//
//   const browser = await launchChromium(t);   // skips the test when Chromium is missing,
//                                               // fails instead under CI=true
//   ...; await browser.close();                // also removes its profile directory
//
// Every browser gets a fresh profile directory, so nothing (cache, localStorage) leaks from
// one test to another. The flags keep Chromium from calling home: the tests run on loopback.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Two tabs of one board must both keep running their timers and streams.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

let playwright;
async function loadPlaywright() {
  try {
    playwright ??= await import('playwright-core');
    return playwright;
  } catch {
    return null;
  }
}

/**
 * Returns a persistent Chromium context (one profile, any number of pages), or null after
 * marking `t` skipped when something is missing outside CI. Under CI=true a missing browser or
 * package is a failure, never a skip.
 */
export async function launchChromium(t, { viewport = { width: 1280, height: 800 } } = {}) {
  const pw = await loadPlaywright();
  const missing = !pw ? 'the playwright-core package (run npm ci in tests/browser)'
    : !existsSync(CHROMIUM) ? `Chromium at ${CHROMIUM} (apt-get install chromium)` : null;
  if (missing) {
    if (process.env.CI === 'true') throw new Error(`browser tests need ${missing}`);
    t.skip(`missing ${missing}`);
    return null;
  }
  const profile = mkdtempSync(path.join(os.tmpdir(), 'taskwire-chromium-'));
  const context = await pw.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    try { await close(); } finally { rmSync(profile, { recursive: true, force: true }); }
  };
  return context;
}

/** Collects console errors and page errors of a page, for assertion messages. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return errors;
}

/**
 * Polls (every 20 ms) until `locator` is visible, or gone with `{ gone: true }`, at most `ms`
 * after `since` (when the change was made). Polling from here rather than with Playwright's
 * waitFor, whose in-page wait runs on animation frames: Chromium may hold those back in a tab
 * that is not in front, and the test would then time the browser's throttling, not taskwire.
 */
export async function within(locator, since, ms, what, { gone = false } = {}) {
  for (;;) {
    const visible = await locator.first().isVisible();
    if (visible !== gone) return Date.now() - since;
    if (Date.now() - since > ms) {
      assert.fail(`${what}: ${gone ? 'still shown' : 'not shown'} ${ms} ms after the change`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

