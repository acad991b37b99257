// node oidc-provider for tests/idp.rs: a certified OpenID provider issuing JWT access tokens
// (RFC 9068) to a client_credentials client, with RS256, PS256, ES256, ES384 and EdDSA keys.
//
//   PORT=8080 KEY_DIR=/tmp/keys node tests/oidc/provider.mjs
//
// Configuration (environment):
//   PORT            required; the issuer is http://127.0.0.1:PORT
//   KEY_DIR         required; keys are generated once per generation and kept there, so a
//                   restarted provider publishes and signs with the same keys
//   GENERATIONS     key generations published, e.g. "1,2" (default "1"); tokens are signed
//                   with the last one's keys unless the resource names a kid
//   RSA_NO_ALG      "1": RSA keys are published without `alg` (as Entra ID, Cognito, Ping do)
//   AUDIENCE        the access tokens' `aud` (default "api")
//   CLIENT_ID / CLIENT_SECRET   the client_credentials client (default tta-client / tta-secret)
//
// A token for algorithm ALG: POST /token with grant_type=client_credentials, client_secret_basic
// or client_secret_post, scope=read and resource=urn:tta:ALG[:SHAPE][:KID], where SHAPE (or "-")
// changes the claims the way other providers shape them:
//   scope-array  "scope": ["read", …]           scp-string  "scp": "read …" (Entra ID)
//   scp-array    "scp": ["read", …] (Okta)       fractional  exp/nbf/iat with fractions
// and KID picks the signing key (e.g. g1-rs256).
// resource=urn:tta:opaque[:TTL] gives an opaque access token (for introspection, RFC 7662),
// living TTL seconds (default 600). Introspection is on; resource servers authenticate to it as
// tta-client (client_secret_basic or _post), tta-rs-post (client_secret_post only, secret
// tta-rs-secret) or tta-rs-jwt (private_key_jwt with tests/keys/es256-public.jwk.json's key).
// DPoP (RFC 9449) is on: a token request with a DPoP proof gets a DPoP-bound token.
//
// Back-channel logout (tests/backchannel_logout.rs), only when BCL_URI is set:
//   BCL_URI         the relying party's backchannel_logout_uri; turns on
//                   features.backchannelLogout and devInteractions (any login, any password),
//                   and registers two authorization-code clients posting logout tokens there:
//                   tta-rp (secret tta-rp-secret, backchannel_logout_session_required: the
//                   token carries sid) and tta-rp-sub (secret tta-rp-sub-secret, sub only, posting to BCL_URI/sub),
//                   client_secret_post;
//                   both with redirect_uri http://127.0.0.1/cb. Outgoing requests skip
//                   oidc-provider's SSRF guard, which refuses loopback addresses.
//
// Relying parties logging users in (tests/sso_login.rs), only when LOGIN_CLIENTS is set:
//   LOGIN_CLIENTS   a JSON array of {client_id, client_secret, redirect_uri,
//                   post_logout_redirect_uri, backchannel_logout_uri}: authorization-code
//                   clients (client_secret_basic) with back-channel logout carrying sid; turns
//                   on devInteractions and backchannelLogout as BCL_URI does, and logs one line
//                   "authorization-request CLIENT_ID" per authorization request.
//
// Besides the provider's own routes (/.well-known/openid-configuration, /jwks, /token, …):
//   GET /test/jwks?extra=KIND[,KIND]  the provider's JWK Set plus unusable keys (keys.mjs
//                                     UNUSABLE_KINDS), as some providers publish them
//   GET /test/unusable?kind=KIND      the private half of an unusable key, when it has one that
//                                     signs (oct), to forge with
//   GET /test/health                  200 "ok"
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

import { ALGS, generationKeys, publicJwk, unusableJwk } from './keys.mjs';

const env = (name, fallback) => {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) throw new Error(`${name} must be set`);
    return fallback;
  }
  return value;
};

const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const keyDir = env('KEY_DIR');
const generations = env('GENERATIONS', '1').split(',').map((g) => g.trim()).filter(Boolean);
const rsaNoAlg = env('RSA_NO_ALG', '0') === '1';
const audience = env('AUDIENCE', 'api');
const clientId = env('CLIENT_ID', 'tta-client');
const clientSecret = env('CLIENT_SECRET', 'tta-secret');
const scopes = 'read write';
const bclUri = env('BCL_URI', '');
const loginClients = JSON.parse(env('LOGIN_CLIENTS', '[]'));
const interactive = Boolean(bclUri) || loginClients.length > 0;

// Newest generation first: oidc-provider signs ID tokens etc. with the first fitting key.
const privateKeys = generations
  .slice()
  .reverse()
  .flatMap((gen) => generationKeys(keyDir, gen))
  .map((jwk) => {
    if (rsaNoAlg && jwk.kty === 'RSA') {
      const { alg, ...rest } = jwk;
      return rest;
    }
    return jwk;
  });
const signingGen = generations[generations.length - 1];

const rsJwk = JSON.parse(
  fs.readFileSync(new URL('../keys/es256-public.jwk.json', import.meta.url), 'utf8'),
);

/** `urn:tta:opaque[:TTL]` → the TTL in seconds, or undefined. */
function parseOpaque(resource) {
  if (typeof resource !== 'string' || !/^urn:tta:opaque(:\d+)?$/.test(resource)) return undefined;
  const [, , , ttl = '600'] = resource.split(':');
  return Number(ttl);
}

const SHAPES = new Set(['-', 'scope-array', 'scp-string', 'scp-array', 'fractional']);

/** `urn:tta:ALG[:SHAPE][:KID]` → { alg, shape, kid }, or undefined. */
function parseResource(resource) {
  if (typeof resource !== 'string' || !resource.startsWith('urn:tta:')) return undefined;
  const [alg, shape = '-', kid] = resource.slice('urn:tta:'.length).split(':');
  if (!Object.hasOwn(ALGS, alg) || !SHAPES.has(shape)) return undefined;
  return { alg, shape, kid: kid ?? `g${signingGen}-${alg.toLowerCase()}` };
}

const rpClients = bclUri
  ? [
    ['tta-rp', 'tta-rp-secret', true],
    ['tta-rp-sub', 'tta-rp-sub-secret', false],
  ].map(([id, secret, sessionRequired]) => ({
    client_id: id,
    client_secret: secret,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/cb'],
    backchannel_logout_uri: sessionRequired ? bclUri : `${bclUri}/sub`,
    backchannel_logout_session_required: sessionRequired,
  }))
  : [];

const loginClientMetadata = loginClients.map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: [c.redirect_uri],
  post_logout_redirect_uris: [c.post_logout_redirect_uri],
  backchannel_logout_uri: c.backchannel_logout_uri,
  backchannel_logout_session_required: true,
}));

const provider = new Provider(issuer, {
  ...(interactive
    ? {
      // The RP listens on 127.0.0.1, which oidc-provider's SSRF guard (its dispatcher) refuses.
      fetch: (url, options) => {
        const { dispatcher, ...rest } = options;
        return globalThis.fetch(url, rest);
      },
    }
    : {}),
  clients: [
    ...rpClients,
    ...loginClientMetadata,
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: scopes,
    },
    {
      client_id: 'tta-rs-post',
      client_secret: 'tta-rs-secret',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: scopes,
    },
    {
      client_id: 'tta-rs-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...rsJwk, alg: 'ES256', use: 'sig' }] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: scopes,
    },
  ],
  jwks: { keys: privateKeys },
  scopes: scopes.split(' '),
  // The resource server's accessTokenTTL (urn:tta:opaque:TTL), else 600 s.
  ttl: { ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600 },
  features: {
    devInteractions: { enabled: interactive },
    backchannelLogout: { enabled: interactive },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const opaqueTtl = parseOpaque(resourceIndicator);
        if (opaqueTtl !== undefined) {
          return { scope: scopes, audience, accessTokenTTL: opaqueTtl, accessTokenFormat: 'opaque' };
        }
        const parsed = parseResource(resourceIndicator);
        if (!parsed) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return {
          scope: scopes,
          audience,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: parsed.alg, kid: parsed.kid } },
        };
      },
    },
  },
  formats: {
    customizers: {
      // Claim shapes of other providers, chosen by the resource indicator's SHAPE.
      async jwt(ctx, _token, jwt) {
        const parsed = parseResource(ctx?.oidc?.params?.resource);
        if (!parsed) return;
        const { payload } = jwt;
        const list = payload.scope ? payload.scope.split(' ') : [];
        switch (parsed.shape) {
          case 'scope-array':
            payload.scope = list;
            break;
          case 'scp-string':
            delete payload.scope;
            payload.scp = list.join(' ');
            break;
          case 'scp-array':
            delete payload.scope;
            payload.scp = list;
            break;
          case 'fractional':
            // What Python's time.time() makes: NumericDate with a fraction (RFC 7519 §2).
            payload.iat -= 0.25;
            payload.nbf = payload.iat;
            payload.exp += 0.75;
            break;
          default:
        }
      },
    },
  },
});

// Keep the test's log readable: one line per server error.
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
provider.on('backchannel.error', (_ctx, err, client) => console.error('backchannel.error', client.clientId, err.message));
provider.on('backchannel.success', (_ctx, client) => console.log('backchannel.success', client.clientId));

if (loginClients.length > 0) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth') console.log('authorization-request', ctx.query.client_id);
    await next();
  });
}

const providerCallback = provider.callback();
const publicKeys = privateKeys.map(publicJwk);

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// The oct key /test/jwks?extra=oct publishes, fixed for this process so a test can forge with it.
const octKey = unusableJwk('oct');

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  switch (url.pathname) {
    case '/test/health':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    case '/test/unusable':
      if (url.searchParams.get('kind') === 'oct') sendJson(res, 200, octKey);
      else sendJson(res, 404, { error: 'only kind=oct has a key to forge with' });
      return;
    case '/test/jwks':
      try {
        const extra = (url.searchParams.get('extra') ?? '').split(',').filter(Boolean);
        const keys = extra.map((kind) => (kind === 'oct' ? octKey : unusableJwk(kind)));
        sendJson(res, 200, { keys: [...publicKeys, ...keys] });
      } catch (e) {
        sendJson(res, 400, { error: String(e.message) });
      }
      return;
    default:
      providerCallback(req, res);
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} generations=${generations.join(',')} rsa_no_alg=${rsaNoAlg} kids=${publicKeys.map((k) => k.kid).join(',')}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
