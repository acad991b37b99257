// Drives headless Chromium (Debian's /usr/bin/chromium, through playwright-core) through single
// sign-on with two services: the sso_auth example and the sso_service example run twice.
//
//   node tests/browser/sso.mjs <auth-url> <service-a-url> <service-b-url> --admin-token=TOKEN
//
// Sign in at A (sent to the provider, password, back at A), B signed in without a password, a
// key rotation at the provider during the run refuses nothing, sign out at A: A and B both
// signed out. Prints one PASS/FAIL line per step and a final RESULT line; exits 0 when every
// step passed, 1 when one failed, 2 on bad usage or a browser that cannot start.
// tests/browser.rs runs it under `cargo test`.

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OVERALL_TIMEOUT_MS = 50_000;
const STEP_TIMEOUT_MS = 8_000;

function usage(message) {
  console.error(`error: ${message}`);
  console.error('usage: node sso.mjs <auth-url> <service-a-url> <service-b-url> --admin-token=TOKEN');
  process.exit(2);
}

const args = process.argv.slice(2);
const urls = args.filter((a) => !a.startsWith('--'));
if (urls.length !== 3) usage('three URLs expected');
const [auth, a, b] = urls.map((u) => {
  let parsed;
  try {
    parsed = new URL(u);
  } catch {
    usage(`not a URL: ${u}`);
  }
  if (parsed.hostname !== '127.0.0.1' || parsed.protocol !== 'http:') {
    usage(`only http://127.0.0.1 is allowed, got ${u}`);
  }
  return parsed.origin;
});
const adminToken = args.find((x) => x.startsWith('--admin-token='))?.slice('--admin-token='.length);
if (!adminToken) usage('missing --admin-token');

const watchdog = setTimeout(() => {
  console.log(`FAIL watchdog: the run took longer than ${OVERALL_TIMEOUT_MS} ms`);
  console.log('RESULT: FAIL');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class CheckFailed extends Error {}

function check(condition, what, detail = '') {
  if (!condition) throw new CheckFailed(`${what}${detail ? ` (${detail})` : ''}`);
  console.log(`  ok - ${what}`);
}

/// Loads `url`; returns where the browser ended after redirects, the status and the text.
async function visit(page, url) {
  const res = await page.goto(url, { waitUntil: 'load' });
  const at = new URL(page.url());
  return { origin: at.origin, path: at.pathname, status: res?.status(), text: await page.textContent('body') };
}

const onLoginPage = async (page) => new URL(page.url()).origin === auth && (await page.$('input[name=password]')) !== null;
const signedInAs = (r, user) => r.status === 200 && r.text.includes(`Signed in as ${user}`);

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const s = {};

step('a: service A sends an anonymous visit to the sign-in page', async () => {
  s.ctx = await s.browser.newContext();
  s.ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  s.ctx.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  s.page = await s.ctx.newPage();
  const r = await visit(s.page, `${a}/`);
  check(r.origin === auth && r.path === '/authorize', 'sent to the provider', `${r.origin}${r.path}`);
  check(await onLoginPage(s.page), 'the sign-in page asks for a password');
});

step('b: sign in as alice: back on A, signed in', async () => {
  await s.page.fill('input[name=username]', 'alice');
  await s.page.fill('input[name=password]', 'alice-password');
  await Promise.all([s.page.waitForURL((u) => u.origin === a), s.page.click('button[type=submit]')]);
  await s.page.waitForLoadState('load');
  const text = await s.page.textContent('body');
  check(new URL(s.page.url()).pathname === '/', 'back on the page asked for', s.page.url());
  check(text.includes('Signed in as alice'), 'A shows alice', text.slice(0, 200));
  const jar = await s.ctx.cookies(a);
  const mine = jar.filter((c) => c.name.startsWith('orders_'));
  check(mine.length >= 2 && mine.every((c) => c.httpOnly && c.sameSite === 'Lax'), "A's cookies are HttpOnly and SameSite=Lax");
});

step('c: a key rotation at the provider', async () => {
  const res = await fetch(`${auth}/admin/rotate-key`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } });
  check(res.status === 200, 'rotate-key answers 200', String(res.status));
  const rotation = await res.json();
  s.signsFrom = rotation.signs_from;
  check(typeof rotation.kid === 'string' && rotation.kid !== rotation.previous_kid, 'a new key', JSON.stringify(rotation));
  // Until the new key signs, and after: A keeps the user signed in.
  while (Date.now() / 1000 <= s.signsFrom + 0.5) {
    const r = await visit(s.page, `${a}/`);
    check(signedInAs(r, 'alice'), 'A still signed in during the rotation', `${r.origin}${r.path} ${r.status}`);
    await sleep(300);
  }
});

step('d: service B: signed in without a password (an ID token of the new key)', async () => {
  check(Date.now() / 1000 > s.signsFrom, 'the new key signs by now');
  const r = await visit(s.page, `${b}/`);
  check(r.origin === b && r.path === '/', 'on B', `${r.origin}${r.path}`);
  check(signedInAs(r, 'alice'), 'B shows alice', `${r.status} ${r.text.slice(0, 200)}`);
  // A fresh sign-in at A too, with the new key: its own cookies dropped.
  await s.ctx.clearCookies({ name: 'orders_session' });
  await s.ctx.clearCookies({ name: 'orders_refresh' });
  const again = await visit(s.page, `${a}/`);
  check(signedInAs(again, 'alice'), 'A signs in again without a password', `${again.origin}${again.path} ${again.status}`);
});

step('e: sign out at A: A and B both signed out', async () => {
  await visit(s.page, `${a}/`);
  await Promise.all([s.page.waitForURL((u) => u.origin === auth), s.page.click('form[action="/logout"] button')]);
  await s.page.waitForLoadState('load');
  let text = await s.page.textContent('body');
  check(text.includes('Sign out of every service?'), 'the provider asks to confirm', text.slice(0, 200));
  await Promise.all([s.page.waitForNavigation({ waitUntil: 'load' }), s.page.click('button[type=submit]')]);
  text = await s.page.textContent('body');
  check(text.includes('signed out of every service'), 'the provider signed the user out', text.slice(0, 200));
  // The back-channel logout to B is asynchronous: allow it a moment.
  let rb;
  for (let i = 0; i < 20; i++) {
    rb = await visit(s.page, `${b}/`);
    if (await onLoginPage(s.page)) break;
    await sleep(100);
  }
  check(await onLoginPage(s.page), "B's next page load goes to the sign-in page", `${rb.origin}${rb.path} ${rb.status}`);
  const ra = await visit(s.page, `${a}/`);
  check(await onLoginPage(s.page), "A's next page load goes to the sign-in page", `${ra.origin}${ra.path} ${ra.status}`);
});

let failed = false;
try {
  try {
    s.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    console.log(`FAIL setup: cannot start ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    console.log('RESULT: FAIL');
    process.exitCode = 2;
    throw e;
  }
  console.log(`chromium ${s.browser.version()}, provider ${auth}, services ${a} ${b}`);
  for (const { name, fn } of steps) {
    if (failed) {
      console.log(`SKIP ${name}`);
      continue;
    }
    const t0 = Date.now();
    try {
      await fn();
      console.log(`PASS ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed = true;
      const why = e instanceof CheckFailed ? e.message : (e.stack || String(e)).split('\n').slice(0, 3).join(' | ');
      console.log(`FAIL ${name}: ${why}`);
    }
  }
  console.log(`RESULT: ${failed ? 'FAIL' : 'PASS'} (${steps.length} steps)`);
  if (failed) process.exitCode = 1;
} catch {
  // Reported above.
} finally {
  await s.browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
