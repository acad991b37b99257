"""Mints a token with PyJWT and prints it with the public JWK Set to verify it with.

    python3 tests/oidc/mint_pyjwt.py '{"alg":"ES256","kid":"k1","claims":{"sub":"alice"},"ttl":600}'

Input (one JSON argument): alg (RS256, PS256, ES256, ES384, EdDSA), kid (optional), claims (the
payload as given), ttl (optional: sets iat and nbf to time.time() and exp to time.time() + ttl,
floats with fractions as a Python issuer writes them), typ (optional header typ), jwk_alg
(default true; false publishes the key without `alg`).
Output (stdout, one JSON line): {"token": "...", "jwks": {"keys": [public JWK]}}.
"""

import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def generate(alg):
    if alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key, RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        return key, ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
        return key, ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
        return key, OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    raise SystemExit(f"unknown alg {alg}")


def main():
    spec = json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")
    alg = spec["alg"]
    kid = spec.get("kid")
    claims = dict(spec.get("claims", {}))
    if "ttl" in spec:
        now = time.time()
        claims.setdefault("iat", now)
        claims.setdefault("nbf", now)
        claims.setdefault("exp", now + spec["ttl"])
    key, public = generate(alg)
    headers = {}
    if kid is not None:
        headers["kid"] = kid
        public["kid"] = kid
    if "typ" in spec:
        headers["typ"] = spec["typ"]
    public["use"] = "sig"
    if spec.get("jwk_alg", True):
        public["alg"] = alg
    token = jwt.encode(claims, key, algorithm=alg, headers=headers or None)
    print(json.dumps({"token": token, "jwks": {"keys": [public]}}))


if __name__ == "__main__":
    main()
