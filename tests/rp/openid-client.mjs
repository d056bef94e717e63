// A real relying party (panva's openid-client) signing a user in through Tenure in headless
// Chromium, driven by tests/relying_parties.rs, which starts `tenure serve`, invites the user with
// an authenticator app and registers the applications. Every check is an assertion here; the
// last line printed is a JSON summary the Rust test checks again. Exit status 0 means all held.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const ISSUER = env('ISSUER');
const INVITATION = env('INVITATION');
const USERNAME = env('USERNAME');
const PASSWORD = env('PASSWORD');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const PUBLIC_CLIENT_ID = env('PUBLIC_CLIENT_ID');
const REDIRECT_URI = env('REDIRECT_URI');
const POST_LOGOUT_URI = env('POST_LOGOUT_URI');
const SCREENSHOTS = process.env.SCREENSHOTS;

// RFC 6238 with the defaults authenticator apps use (SHA-1, 6 digits, 30 s).
function totp(base32, at) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/[\s=]/g, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

// An error Tenure answered with, as the library reports it.
async function oauthError(promise) {
  try {
    await promise;
  } catch (error) {
    return error.error ?? error.cause?.error ?? String(error);
  }
  assert.fail('expected Tenure to refuse');
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const summary = {};
let shown = null; // the page in front, described when a step fails
const servers = [];
try {
  // First sign-in from the invitation: a password, the authenticator key read off the page.
  const onboarding = await browser.newContext();
  const page = await onboarding.newPage();
  shown = page;
  await page.goto(INVITATION);
  await page.fill('#new_password', PASSWORD);
  await page.fill('#confirm_password', PASSWORD);
  await page.click('#continue');
  const secret = (await page.textContent('#secret')).trim();
  const enrolledAt = Date.now() / 1000;
  await page.fill('#code', totp(secret, enrolledAt));
  await page.click('#continue');
  await page.waitForSelector('#recovery-codes');
  await page.click('#continue');
  await page.click('#accept');
  await page.click('#continue');
  await page.waitForSelector('#welcome');
  await onboarding.close();

  // The application, from Tenure's discovery document; ID token signatures checked with the JWKS.
  const insecure = { execute: [client.allowInsecureRequests] };
  const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined,
    client.ClientSecretBasic(CLIENT_SECRET), insecure);
  client.enableNonRepudiationChecks(config);
  assert.equal(config.serverMetadata().issuer, ISSUER);

  // A browser with no session: the application sends it to Tenure, which signs the user in.
  const context = await browser.newContext();
  // The application's own web server, where Tenure sends the browser back.
  const back = [];
  const site = createServer((req, res) => {
    const url = new URL(req.url, REDIRECT_URI);
    if (![new URL(REDIRECT_URI).pathname, new URL(POST_LOGOUT_URI).pathname].includes(url.pathname)) {
      return res.writeHead(404).end(); // the browser's favicon.ico
    }
    back.push(url.href);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<p id="application">back at the application</p>');
  });
  await new Promise((done) => site.listen(Number(new URL(REDIRECT_URI).port), '127.0.0.1', done));
  servers.push(site);
  const tab = await context.newPage();
  shown = tab;
  if (process.env.RP_DEBUG) tab.on('response', (r) => console.error('<-', r.status(), r.url()));
  const request = async (extra = {}, cfg = config) => {
    const verifier = client.randomPKCECodeVerifier();
    const checks = { pkceCodeVerifier: verifier, expectedState: client.randomState(), expectedNonce: client.randomNonce() };
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: REDIRECT_URI, scope: 'openid profile email', state: checks.expectedState,
      nonce: checks.expectedNonce, code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256', ...extra,
    });
    return { url, checks };
  };
  const arrive = async (url) => {
    const before = back.length;
    await tab.goto(url.href);
    await tab.waitForSelector('#application');
    assert.equal(back.length, before + 1, 'one redirect back to the application');
    return new URL(back[back.length - 1]);
  };

  const first = await request({ login_hint: USERNAME });
  await tab.goto(first.url.href);
  await tab.waitForSelector('#username');
  assert.equal(await tab.inputValue('#username'), USERNAME, 'login_hint fills the username');
  if (SCREENSHOTS) await tab.screenshot({ path: `${SCREENSHOTS}/oidc-1-sign-in.png` });
  await tab.click('#next');
  await tab.fill('#password', PASSWORD);
  await tab.click('#sign-in');
  await tab.waitForSelector('#code');
  if (SCREENSHOTS) await tab.screenshot({ path: `${SCREENSHOTS}/oidc-2-code.png` });
  // The enrollment used its time step; the next one is accepted (one step of drift).
  await tab.fill('#code', totp(secret, enrolledAt + 30));
  await tab.click('#continue');
  await tab.waitForSelector('#application');
  const callback = new URL(back.at(-1));
  assert.equal(callback.searchParams.get('iss'), ISSUER, 'RFC 9207');
  const tokens = await client.authorizationCodeGrant(config, callback, { ...first.checks, idTokenExpected: true });
  const claims = tokens.claims();
  assert.equal(claims.iss, ISSUER);
  assert.equal(claims.aud, CLIENT_ID);
  assert.equal(claims.preferred_username, USERNAME);
  assert.equal(claims.nonce, first.checks.expectedNonce);
  assert.deepEqual([...claims.amr].sort(), ['mfa', 'otp', 'pwd']);
  assert.equal(claims.org.id, 'acme');
  assert.ok(claims.sid, 'a session id');
  assert.ok(Math.abs(claims.auth_time - Date.now() / 1000) < 120, 'auth_time is the sign-in');
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.equal(tokens.expires_in, 300, 'access tokens live five minutes');
  Object.assign(summary, { sub: claims.sub, preferred_username: claims.preferred_username, amr: claims.amr,
    org: claims.org.id, kid: JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).kid });

  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(info.preferred_username, USERNAME);
  assert.equal(info.email, `${USERNAME}@example.com`);

  // The code is good once: its second use is refused and revokes the tokens it led to.
  assert.equal(await oauthError(client.authorizationCodeGrant(config, callback, first.checks)), 'invalid_grant');
  assert.equal(await oauthError(client.refreshTokenGrant(config, tokens.refresh_token)), 'invalid_grant');

  // With a session, the application's request is answered at once, even asking for no prompt.
  const silent = await request({ prompt: 'none' });
  const silentTokens = await client.authorizationCodeGrant(config, await arrive(silent.url), silent.checks);
  assert.equal(silentTokens.claims().sub, claims.sub);

  // Refresh tokens rotate; a reused one revokes its family.
  const rotated = await client.refreshTokenGrant(config, silentTokens.refresh_token);
  assert.notEqual(rotated.refresh_token, silentTokens.refresh_token);
  assert.equal(rotated.claims().sub, claims.sub, 'a fresh, verified ID token');
  assert.equal(await oauthError(client.refreshTokenGrant(config, silentTokens.refresh_token)), 'invalid_grant');
  assert.equal(await oauthError(client.refreshTokenGrant(config, rotated.refresh_token)), 'invalid_grant');

  // A wrong PKCE verifier is refused.
  const wrong = await request({ prompt: 'none' });
  const wrongChecks = { ...wrong.checks, pkceCodeVerifier: client.randomPKCECodeVerifier() };
  assert.equal(await oauthError(client.authorizationCodeGrant(config, await arrive(wrong.url), wrongChecks)),
    'invalid_grant');

  // Introspection and revocation.
  const third = await request();
  const held = await client.authorizationCodeGrant(config, await arrive(third.url), third.checks);
  const seen = await client.tokenIntrospection(config, held.access_token);
  assert.equal(seen.active, true);
  assert.equal(seen.sub, claims.sub);
  assert.equal(seen.client_id, CLIENT_ID);
  const refreshSeen = await client.tokenIntrospection(config, held.refresh_token);
  assert.equal(refreshSeen.active, true);
  assert.ok(refreshSeen.exp > Date.now() / 1000 + 29 * 86400, 'a refresh token lives thirty days');
  await client.tokenRevocation(config, held.refresh_token);
  assert.equal((await client.tokenIntrospection(config, held.refresh_token)).active, false);
  assert.equal(await oauthError(client.refreshTokenGrant(config, held.refresh_token)), 'invalid_grant');

  // A public application (PKCE, no secret) signs the same user in; it cannot introspect.
  const publicConfig = await client.discovery(new URL(ISSUER), PUBLIC_CLIENT_ID, undefined, client.None(), insecure);
  client.enableNonRepudiationChecks(publicConfig);
  const spa = await request({}, publicConfig);
  const spaTokens = await client.authorizationCodeGrant(publicConfig, await arrive(spa.url), spa.checks);
  assert.equal(spaTokens.claims().aud, PUBLIC_CLIENT_ID);
  const spaRotated = await client.refreshTokenGrant(publicConfig, spaTokens.refresh_token);
  assert.ok(spaRotated.access_token);
  assert.equal(await oauthError(client.tokenIntrospection(publicConfig, spaRotated.access_token)), 'invalid_client');

  // RP-initiated logout: back to the registered page with the state; signed out of Tenure too.
  const last = await request({ prompt: 'none' });
  const lastTokens = await client.authorizationCodeGrant(config, await arrive(last.url), last.checks);
  const bye = client.buildEndSessionUrl(config, {
    id_token_hint: lastTokens.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'see-you',
  });
  const landed = await arrive(bye);
  assert.equal(landed.origin + landed.pathname, POST_LOGOUT_URI);
  assert.equal(landed.searchParams.get('state'), 'see-you');
  assert.equal(await oauthError(client.refreshTokenGrant(config, lastTokens.refresh_token)), 'invalid_grant');
  const after = await request({ prompt: 'none' });
  const refused = await arrive(after.url);
  assert.equal(refused.searchParams.get('error'), 'login_required');
  assert.equal(refused.searchParams.get('state'), after.checks.expectedState);
  assert.equal(await oauthError(client.authorizationCodeGrant(config, refused, after.checks)), 'login_required');
  // Without a session, the request leads to Tenure's sign-in page again.
  const again = await request();
  await tab.goto(again.url.href);
  await tab.waitForSelector('#username');

  summary.passed = true;
} catch (error) {
  const where = shown ? `${shown.url()}\n${await shown.innerText('body').catch(() => '')}` : 'no page';
  console.error(`${error.stack}\n--- the page in front: ${where}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  servers.forEach((s) => s.close());
}
console.log(JSON.stringify(summary));
