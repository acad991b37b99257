// Key generation shared by provider.mjs and mint.mjs: private JWKs from node:crypto, and the
// unusable keys a real provider may publish beside its good ones.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The algorithms the provider and mint.mjs sign with, and the key each needs. */
export const ALGS = {
  RS256: { type: 'rsa', options: { modulusLength: 2048 } },
  PS256: { type: 'rsa', options: { modulusLength: 2048 } },
  ES256: { type: 'ec', options: { namedCurve: 'P-256' } },
  ES384: { type: 'ec', options: { namedCurve: 'P-384' } },
  EdDSA: { type: 'ed25519', options: {} },
};

/** A new private JWK for `alg`, with `kid`, `use: sig` and (unless `withAlg` is false) `alg`. */
export function generatePrivateJwk(alg, kid, { withAlg = true } = {}) {
  const spec = ALGS[alg];
  if (!spec) throw new Error(`unknown alg ${alg}; one of ${Object.keys(ALGS).join(', ')}`);
  const { privateKey } = crypto.generateKeyPairSync(spec.type, spec.options);
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
  if (withAlg) jwk.alg = alg;
  return jwk;
}

/** The public half of a private JWK (drops the private members, keeps kid/use/alg). */
export function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, ...pub } = jwk;
  return pub;
}

/**
 * Keys of generation `gen`, one per algorithm, kept in `dir/gen-<gen>.json` so a restarted
 * provider signs and publishes the same keys (rotation tests restart it with more generations).
 * Kids are `g<gen>-<alg>` in lower case, e.g. `g1-rs256`.
 */
export function generationKeys(dir, gen) {
  const file = path.join(dir, `gen-${gen}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const keys = Object.keys(ALGS).map((alg) => generatePrivateJwk(alg, `g${gen}-${alg.toLowerCase()}`));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(keys));
  return keys;
}

function randomB64(bytes) {
  return crypto.randomBytes(bytes).toString('base64url');
}

/**
 * Public keys a verifier cannot use, as real providers publish them beside usable ones.
 * `kind` is one of UNUSABLE_KINDS.
 */
export function unusableJwk(kind) {
  switch (kind) {
    case 'p521': {
      const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' });
      return { ...publicKey.export({ format: 'jwk' }), kid: 'x-p521', use: 'sig', alg: 'ES512' };
    }
    case 'ed448': {
      const { publicKey } = crypto.generateKeyPairSync('ed448');
      return { ...publicKey.export({ format: 'jwk' }), kid: 'x-ed448', use: 'sig' };
    }
    case 'akp':
      // ML-DSA-44 (draft-ietf-cose-dilithium): 1312-byte public key. Node 20 cannot make one;
      // the shape is what matters to a JWK Set parser.
      return { kty: 'AKP', kid: 'x-akp', use: 'sig', alg: 'ML-DSA-44', pub: randomB64(1312) };
    case 'rsa-oaep': {
      // An encryption key published without `use`: only its `alg` says it does not sign.
      const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      return { ...publicKey.export({ format: 'jwk' }), kid: 'x-rsa-oaep', alg: 'RSA-OAEP' };
    }
    case 'rsa-enc': {
      const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      return { ...publicKey.export({ format: 'jwk' }), kid: 'x-rsa-enc', use: 'enc', alg: 'RSA-OAEP' };
    }
    case 'ed25519-alg': {
      // RFC 9864's fully-specified `Ed25519` algorithm name, which oidc-provider also signs with.
      const { publicKey } = crypto.generateKeyPairSync('ed25519');
      return { ...publicKey.export({ format: 'jwk' }), kid: 'x-ed25519-alg', use: 'sig', alg: 'Ed25519' };
    }
    case 'oct':
      return { kty: 'oct', kid: 'x-oct', use: 'sig', alg: 'HS256', k: randomB64(32) };
    default:
      throw new Error(`unknown unusable key kind ${kind}; one of ${UNUSABLE_KINDS.join(', ')}`);
  }
}

/** Every kind `unusableJwk` makes. */
export const UNUSABLE_KINDS = ['p521', 'ed448', 'akp', 'rsa-oaep', 'rsa-enc', 'ed25519-alg', 'oct'];
