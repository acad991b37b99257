// A certified OpenID Connect relying party, node openid-client v6, against an OpenID Provider
// (tests/sso_openid_client.rs drives examples/sso_auth with it). Every call discovers the
// provider again (plain http on 127.0.0.1: allowInsecureRequests) and is stateless: what one
// step needs of the previous one travels in the JSON.
//
//   node tests/oidc/openid_client.mjs '{"op":"authorize","issuer":"http://127.0.0.1:4000",...}'
//
// Ops (input → output, JSON on stdout; an error: its code and message on stderr, exit 1):
// - authorize {issuer, client_id, redirect_uri, scope} → {url, code_verifier, state, nonce}:
//   the authorization URL with PKCE S256, state and nonce.
// - callback {issuer, client_id, callback_url, code_verifier, state, nonce,
//   post_logout_redirect_uri} → the code exchanged by openid-client (which checks the ID
//   token: iss, aud, azp, exp, iat, nonce…), at_hash recomputed, both tokens verified by jose
//   through the discovered jwks_uri, {id_claims, id_header, access_claims, access_header,
//   at_hash_ok, scope, refresh_token, end_session_url}.
// - refresh {issuer, client_id, refresh_token, audience} → {access_claims, refresh_token,
//   has_id_token}, or {error} when the provider refused the grant.
// - verify {issuer, token, audience, typ} → {header, payload}: jose through discovery.
import * as client from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createHash } from 'node:crypto';

const input = JSON.parse(process.argv[2] ?? '{}');

async function discover() {
  return client.discovery(new URL(input.issuer), input.client_id ?? 'unused', undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
}

async function verify(config, token, audience, typ) {
  const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: config.serverMetadata().issuer,
    audience,
    typ,
  });
  return { header: protectedHeader, payload };
}

// OpenID Connect Core §3.1.3.6: the left half of the hash of the access token, with the hash
// of the ID token's alg (SHA-512 for EdDSA, as openid-client computes c_hash).
function atHash(accessToken, alg) {
  const hash = { ES256: 'sha256', RS256: 'sha256', PS256: 'sha256', ES384: 'sha384', EdDSA: 'sha512' }[alg];
  const digest = createHash(hash).update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

async function run() {
  const config = await discover();
  switch (input.op) {
    case 'authorize': {
      const code_verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: input.redirect_uri,
        scope: input.scope,
        code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, code_verifier, state, nonce, metadata: config.serverMetadata() };
    }
    case 'callback': {
      const tokens = await client.authorizationCodeGrant(config, new URL(input.callback_url), {
        pkceCodeVerifier: input.code_verifier,
        expectedState: input.state,
        expectedNonce: input.nonce,
        idTokenExpected: true,
      });
      const idHeader = decodeProtectedHeader(tokens.id_token);
      const id = await verify(config, tokens.id_token, input.client_id, 'JWT');
      const access = await verify(config, tokens.access_token, input.client_id, 'at+jwt');
      const end_session_url = client.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: input.post_logout_redirect_uri,
        state: 'signed-out-state',
      });
      return {
        id_claims: tokens.claims(),
        id_header: idHeader,
        id_verified: id.payload,
        access_claims: access.payload,
        access_header: access.header,
        at_hash_ok: tokens.claims().at_hash === atHash(tokens.access_token, idHeader.alg),
        token_type: tokens.token_type,
        expires_in: tokens.expiresIn(),
        scope: tokens.scope,
        refresh_token: tokens.refresh_token,
        end_session_url: end_session_url.href,
      };
    }
    case 'refresh': {
      try {
        const tokens = await client.refreshTokenGrant(config, input.refresh_token);
        const access = await verify(config, tokens.access_token, input.audience, 'at+jwt');
        return {
          access_claims: access.payload,
          refresh_token: tokens.refresh_token,
          has_id_token: tokens.id_token !== undefined,
        };
      } catch (e) {
        if (e instanceof client.ResponseBodyError) {
          return { error: e.error, status: e.status };
        }
        throw e;
      }
    }
    case 'verify':
      return verify(config, input.token, input.audience, input.typ);
    default:
      throw new Error(`unknown op ${input.op}`);
  }
}

try {
  process.stdout.write(`${JSON.stringify(await run())}\n`);
} catch (e) {
  process.stderr.write(`${e.code ?? e.name}: ${e.message}${e.cause ? ` (${JSON.stringify(e.cause)})` : ''}\n`);
  process.exit(1);
}
