// Mints a token with jose's SignJWT and prints it with the public JWK Set to verify it with.
//
//   node tests/oidc/mint.mjs '{"alg":"ES256","kid":"k1","claims":{"sub":"alice","exp":2000000000}}'
//
// Input (one JSON argument): alg (RS256, PS256, ES256, ES384, EdDSA), kid (optional; the header
// then names it), claims (the payload, written as given: fractions and arrays stay), typ
// (optional header typ), jwk_alg (default true; false publishes the key without `alg`).
// Output (stdout, one JSON line): {"token": "...", "jwks": {"keys": [public JWK]}}.
import { SignJWT, importJWK } from 'jose';

import { generatePrivateJwk, publicJwk } from './keys.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
const { alg, kid, claims = {}, typ, jwk_alg: jwkAlg = true } = spec;
const privateJwk = generatePrivateJwk(alg, kid, { withAlg: true });
const key = await importJWK(privateJwk, alg);
const header = { alg };
if (kid !== undefined) header.kid = kid;
if (typ !== undefined) header.typ = typ;
const token = await new SignJWT(claims).setProtectedHeader(header).sign(key);
const published = publicJwk(privateJwk);
if (kid === undefined) delete published.kid;
if (!jwkAlg) delete published.alg;
process.stdout.write(`${JSON.stringify({ token, jwks: { keys: [published] } })}\n`);
