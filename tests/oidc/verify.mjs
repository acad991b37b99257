// Verifies a token with jose's jwtVerify against a JWK Set, the way a jose-based resource server
// would (createLocalJWKSet: key by kid, skips keys it cannot use).
//
//   node tests/oidc/verify.mjs '{"token":"...","jwks":{"keys":[...]},"issuer":"...","audience":"..."}'
//
// Input (one JSON argument): token, jwks, and optionally issuer, audience, algorithms (allow-list),
// typ. Output: the verified payload as JSON on stdout (exit 0), or the error on stderr (exit 1).
import { createLocalJWKSet, jwtVerify } from 'jose';

const { token, jwks, issuer, audience, algorithms, typ } = JSON.parse(process.argv[2] ?? '{}');
try {
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer,
    audience,
    algorithms,
    typ,
  });
  process.stdout.write(`${JSON.stringify({ header: protectedHeader, payload })}\n`);
} catch (e) {
  process.stderr.write(`${e.code ?? e.name}: ${e.message}\n`);
  process.exit(1);
}
