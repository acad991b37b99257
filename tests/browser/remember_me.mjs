// Drives headless Chromium (Debian's /usr/bin/chromium, through playwright-core) through the
// remember_me example: password login with "Remember me", a simulated browser restart, the
// fresh-login guard, cookie theft detection, logout and CSRF protection.
//
//   node tests/browser/remember_me.mjs http://127.0.0.1:3400 [--mode=persistent|signed] [--grace-secs=N]
//
// The example must run with COOKIE_SECURE=0 (plain http) and, for the theft step, the same
// REMEMBER_GRACE_SECS as --grace-secs (default 5). Prints one PASS/FAIL line per step and a
// final RESULT line; exits 0 when every step passed, 1 when one failed, 2 on bad usage or a
// browser that cannot start. tests/browser.rs runs it under `cargo test`.

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The whole run, browser start included; well under the Rust test's own limit.
const OVERALL_TIMEOUT_MS = 50_000;
const STEP_TIMEOUT_MS = 5_000;

function usage(message) {
  console.error(`error: ${message}`);
  console.error('usage: node remember_me.mjs <base-url> [--mode=persistent|signed] [--grace-secs=N]');
  process.exit(2);
}

const args = process.argv.slice(2);
const base = args.find((a) => !a.startsWith('--'));
if (!base) usage('missing <base-url>');
let baseUrl;
try {
  baseUrl = new URL(base);
} catch {
  usage(`not a URL: ${base}`);
}
if (baseUrl.hostname !== '127.0.0.1' || baseUrl.protocol !== 'http:') {
  usage(`only http://127.0.0.1 is allowed, got ${base}`);
}
const origin = baseUrl.origin;
const option = (name, fallback) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
};
const mode = option('mode', 'persistent');
if (!['persistent', 'signed'].includes(mode)) usage(`unknown --mode=${mode}`);
const graceSecs = Number(option('grace-secs', '5'));
if (!Number.isFinite(graceSecs) || graceSecs < 0) usage('bad --grace-secs');

const watchdog = setTimeout(() => {
  console.log(`FAIL watchdog: the run took longer than ${OVERALL_TIMEOUT_MS} ms`);
  console.log('RESULT: FAIL');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

const url = (path) => new URL(path, origin).href;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class CheckFailed extends Error {}

function check(condition, what, detail = '') {
  if (!condition) throw new CheckFailed(`${what}${detail ? ` (${detail})` : ''}`);
  console.log(`  ok - ${what}`);
}

async function cookie(context, name) {
  const all = await context.cookies(origin);
  return all.find((c) => c.name === name)?.value;
}

async function text(page, selector) {
  const el = await page.$(selector);
  return el ? (await el.textContent()).trim() : null;
}

/// Loads `path` and returns the page's pathname after redirects, and the last response.
async function visit(page, path) {
  const res = await page.goto(url(path), { waitUntil: 'load' });
  return { path: new URL(page.url()).pathname, status: res?.status() };
}

async function newContext(browser) {
  const context = await browser.newContext({ baseURL: origin });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  return context;
}

async function passwordLogin(page, { username, password, remember }) {
  await visit(page, '/login');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  if (remember) await page.check('input[name=remember]');
  await Promise.all([page.waitForURL((u) => u.pathname !== '/login'), page.click('#login button[type=submit]')]);
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
// Shared between steps.
const s = {};

step('a: password login with "Remember me" ticked', async () => {
  s.ctx1 = await newContext(s.browser);
  s.page1 = await s.ctx1.newPage();
  const first = await visit(s.page1, '/');
  check(first.path === '/login', 'an anonymous visit to / is sent to /login', `at ${first.path}`);
  await passwordLogin(s.page1, { username: 'alice', password: 'alice-password', remember: true });
  check(new URL(s.page1.url()).pathname === '/', 'the login lands on /', s.page1.url());
  check((await text(s.page1, '#who')) === 'alice', 'the page shows alice');
  check((await text(s.page1, '#how')) === 'password', 'logged in by password', await text(s.page1, '#how'));
  s.access0 = await cookie(s.ctx1, 'access_token');
  s.remember0 = await cookie(s.ctx1, 'remember_me');
  check(!!s.access0, 'an access_token cookie is set');
  check(!!s.remember0, 'a remember_me cookie is set');
  const jar = await s.ctx1.cookies(origin);
  check(jar.every((c) => c.httpOnly && c.sameSite === 'Lax'), 'both cookies are HttpOnly and SameSite=Lax');
});

step('b: browser restart (access cookie dropped): logged in again from the remember-me cookie', async () => {
  await s.ctx1.clearCookies({ name: 'access_token' });
  check(!(await cookie(s.ctx1, 'access_token')), 'the access cookie is gone');
  await s.page1.reload({ waitUntil: 'load' });
  check(new URL(s.page1.url()).pathname === '/', 'still on /', s.page1.url());
  check((await text(s.page1, '#who')) === 'alice', 'the page still shows alice');
  check((await text(s.page1, '#how')) === 'remembered', 'marked remembered', await text(s.page1, '#how'));
  check((await s.page1.$('#auto-login')) !== null, 'the page says the remember-me cookie logged in');
  const access1 = await cookie(s.ctx1, 'access_token');
  check(!!access1 && access1 !== s.access0, 'a fresh access token cookie was set');
  s.remember1 = await cookie(s.ctx1, 'remember_me');
  if (mode === 'persistent') {
    check(!!s.remember1 && s.remember1 !== s.remember0, 'the remember-me cookie was rotated');
  } else {
    check(s.remember1 === s.remember0, 'the signed remember-me cookie is kept');
  }
  // The next load is a plain JWT request: no second auto-login, still remembered.
  await s.page1.reload({ waitUntil: 'load' });
  check((await s.page1.$('#auto-login')) === null, 'the next load uses the access token');
  check((await text(s.page1, '#how')) === 'remembered', 'still marked remembered');
});

step('b: /settings asks a remembered login for the password', async () => {
  const r = await visit(s.page1, '/settings');
  check(r.path === '/settings' && r.status === 401, '/settings answers 401', `${r.path} ${r.status}`);
  check((await s.page1.$('#reauth')) !== null, 'the page asks for the password again');
  check((await s.page1.$('#settings')) === null, 'the settings are not shown');
  await s.page1.fill('input[name=password]', 'wrong-password');
  await s.page1.click('#login button[type=submit]');
  await s.page1.waitForSelector('#error');
  check((await s.page1.$('#settings')) === null, 'a wrong password is refused');
  await s.page1.fill('input[name=password]', 'alice-password');
  await Promise.all([s.page1.waitForSelector('#settings'), s.page1.click('#login button[type=submit]')]);
  check(new URL(s.page1.url()).pathname === '/settings', 'the right password opens /settings');
  if (mode === 'persistent') {
    check((await text(s.page1, '#devices')) === '1', 'one remembered browser is listed', await text(s.page1, '#devices'));
  }
  await visit(s.page1, '/');
  check((await text(s.page1, '#how')) === 'password', 'the new access token is a password login');
  check((await cookie(s.ctx1, 'remember_me')) === s.remember1, 'the remember-me cookie is kept');
});

if (mode === 'persistent') {
  step('c: a stolen (already rotated) remember-me cookie is detected as theft', async () => {
    // Past the grace window in which a just-rotated token is still accepted.
    await sleep(graceSecs * 1000 + 700);
    s.ctx2 = await newContext(s.browser);
    await s.ctx2.addCookies([{ name: 'remember_me', value: s.remember0, url: origin, httpOnly: true, sameSite: 'Lax' }]);
    const thief = await s.ctx2.newPage();
    const r = await visit(thief, '/');
    check(r.path === '/login', 'the thief is not logged in (sent to /login)', r.path);
    check((await thief.$('#who')) === null, 'no user shown to the thief');
    check(!(await cookie(s.ctx2, 'remember_me')), "the thief's remember-me cookie was deleted");
    check(!(await cookie(s.ctx2, 'access_token')), 'the thief got no access token');
    // The victim's remembered login died too: every series of alice was removed.
    await s.ctx1.clearCookies({ name: 'access_token' });
    const v = await visit(s.page1, '/');
    check(v.path === '/login', 'the victim, without an access cookie, is logged out too', v.path);
    check(!(await cookie(s.ctx1, 'remember_me')), "the victim's remember-me cookie was deleted");
    await s.ctx2.close();
  });
}

step('d: logout revokes the token, forgets the browser and clears both cookies', async () => {
  const ctx = await newContext(s.browser);
  const page = await ctx.newPage();
  await passwordLogin(page, { username: 'bob', password: 'bob-password', remember: true });
  check((await text(page, '#who')) === 'bob', 'bob is logged in');
  const access = await cookie(ctx, 'access_token');
  const remember = await cookie(ctx, 'remember_me');
  await Promise.all([page.waitForURL((u) => u.pathname === '/login'), page.click('#logout button[type=submit]')]);
  check(!(await cookie(ctx, 'access_token')) && !(await cookie(ctx, 'remember_me')), 'both cookies are cleared');
  check((await visit(page, '/')).path === '/login', 'a visit to / is sent to /login');
  // The revoked access token, put back, is refused (and cleared again).
  await ctx.addCookies([{ name: 'access_token', value: access, url: origin }]);
  check((await visit(page, '/')).path === '/login', 'the revoked access token is refused');
  check(!(await cookie(ctx, 'access_token')), 'and its cookie cleared');
  if (mode === 'persistent') {
    await ctx.addCookies([{ name: 'remember_me', value: remember, url: origin }]);
    check((await visit(page, '/')).path === '/login', 'the forgotten remember-me cookie no longer logs in');
  }
  await ctx.close();
});

step('e: a cross-site POST is refused (CSRF protection)', async () => {
  const ctx = await newContext(s.browser);
  const page = await ctx.newPage();
  await passwordLogin(page, { username: 'bob', password: 'bob-password', remember: false });
  // A form on another (opaque) origin posting to /logout.
  const attacker = await ctx.newPage();
  await attacker.setContent(`<form id="f" method="post" action="${url('/logout')}"></form>`);
  const [res] = await Promise.all([
    attacker.waitForResponse((r) => r.url() === url('/logout')),
    attacker.evaluate(() => document.getElementById('f').submit()),
  ]);
  check(res.status() === 403, 'the forged logout answers 403', String(res.status()));
  await visit(page, '/');
  check((await text(page, '#who')) === 'bob', 'bob is still logged in');
  await ctx.close();
});

let failed = false;
try {
  try {
    // launch() starts Chromium on a fresh temporary user-data-dir, deleted on close.
    s.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    console.log(`FAIL setup: cannot start ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    console.log('RESULT: FAIL');
    process.exitCode = 2;
    throw e;
  }
  console.log(`chromium ${s.browser.version()}, ${origin}, ${mode} mode`);
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
