// DPoP proofs (RFC 9449) made with jose, the third-party judge of tests/dpop_proof.rs, and jose's
// verdict on proofs made by tower-token-auth's testing::DpopKey.
//
//   node tests/oidc/dpop_proof.mjs '{"alg":"ES256","proofs":[{"htm":"GET","htu":"https://a.example/x"}]}'
//
// Make (input `alg` and `proofs`): one new key of `alg` (RS256, PS256, ES256, ES384, EdDSA), and
// one proof per entry of `proofs`, each with:
//   htm, htu            the request (required)
//   access_token        sets `ath` to its base64url SHA-256
//   ath                 sets `ath` as given (wins over access_token)
//   iat_offset          seconds added to now for `iat` (default 0)
//   jti                 default: 16 random bytes, base64url
//   typ                 header typ (default "dpop+jwt")
//   tamper              "private_jwk" (the header's jwk has the private members), "other_key"
//                       (signed by a second key of the same alg, the first key's jwk in the
//                       header), "hs256" (alg HS256, an HMAC with a random secret), "none"
//                       (alg none, no signature)
//   private_jwk         (top level) the key of an earlier output, to sign with it again
// Output: {"jkt": calculateJwkThumbprint of the public key, "jwk": the public key,
// "private_jwk": the key, "proofs": [...]}.
//
// Verify (input `verify`: a list of {proof, htm, htu, access_token?}): jwtVerify with EmbeddedJWK
// and typ dpop+jwt as node oidc-provider does, then htm, htu and ath. Output: {"results":
// [{"ok": true, "jkt", "payload"} or {"ok": false, "error"}]}.
import * as crypto from 'node:crypto';

import { EmbeddedJWK, SignJWT, calculateJwkThumbprint, importJWK, jwtVerify } from 'jose';

import { generatePrivateJwk, publicJwk } from './keys.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');

const b64url = (data) => Buffer.from(data).toString('base64url');
const sha256 = (text) => crypto.createHash('sha256').update(text).digest('base64url');

async function make({ alg, proofs = [], private_jwk: given }) {
  // `private_jwk` (from an earlier output) makes more proofs with the same key.
  const privateJwk = given ?? generatePrivateJwk(alg, undefined);
  delete privateJwk.kid;
  const jwk = publicJwk(privateJwk);
  const key = await importJWK(privateJwk, alg);
  let otherKey;
  const out = [];
  for (const spec of proofs) {
    const { htm, htu, access_token: accessToken, iat_offset: offset = 0, typ = 'dpop+jwt', tamper } = spec;
    const claims = { htm, htu };
    if (spec.ath !== undefined) claims.ath = spec.ath;
    else if (accessToken !== undefined) claims.ath = sha256(accessToken);
    const iat = Math.floor(Date.now() / 1000) + offset;
    const jti = spec.jti ?? b64url(crypto.randomBytes(16));
    const header = { alg, typ, jwk };
    let signingKey = key;
    switch (tamper) {
      case undefined:
      case null:
        break;
      case 'private_jwk':
        header.jwk = privateJwk;
        break;
      case 'other_key':
        otherKey ??= await importJWK(generatePrivateJwk(alg, undefined), alg);
        signingKey = otherKey;
        break;
      case 'hs256':
        header.alg = 'HS256';
        signingKey = crypto.randomBytes(32);
        break;
      case 'none': {
        const payload = { ...claims, iat, jti };
        out.push(`${b64url(JSON.stringify({ ...header, alg: 'none' }))}.${b64url(JSON.stringify(payload))}.`);
        continue;
      }
      default:
        throw new Error(`unknown tamper ${tamper}`);
    }
    const proof = await new SignJWT(claims)
      .setProtectedHeader(header)
      .setIssuedAt(iat)
      .setJti(jti)
      .sign(signingKey);
    out.push(proof);
  }
  return { jkt: await calculateJwkThumbprint(jwk, 'sha256'), jwk, private_jwk: privateJwk, proofs: out };
}

async function verify(list) {
  const results = [];
  for (const { proof, htm, htu, access_token: accessToken } of list) {
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'],
        maxTokenAge: 60,
      });
      if (payload.htm !== htm) throw new Error('htm mismatch');
      if (payload.htu !== htu) throw new Error('htu mismatch');
      if (typeof payload.jti !== 'string' || !payload.jti) throw new Error('no jti');
      if (accessToken !== undefined && payload.ath !== sha256(accessToken)) throw new Error('ath mismatch');
      results.push({ ok: true, jkt: await calculateJwkThumbprint(protectedHeader.jwk, 'sha256'), payload });
    } catch (e) {
      results.push({ ok: false, error: `${e.code ?? e.name}: ${e.message}` });
    }
  }
  return { results };
}

const output = input.verify ? await verify(input.verify) : await make(input);
process.stdout.write(`${JSON.stringify(output)}\n`);
