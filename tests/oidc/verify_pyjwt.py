"""Verifies a token with PyJWT against a JWK Set, as a PyJWT resource server would.

    python3 tests/oidc/verify_pyjwt.py '{"token":"...","jwks":{"keys":[...]},"issuer":"...","audience":"..."}'

Input (one JSON argument): token, jwks, and optionally issuer, audience, algorithms (allow-list,
default: the chosen key's algorithm). The key is the one whose kid the token names (or the only
one). Output: the verified claims as JSON on stdout (exit 0), or the error on stderr (exit 1).
"""

import json
import sys

import jwt


def main():
    spec = json.loads(sys.argv[1])
    token = spec["token"]
    kid = jwt.get_unverified_header(token).get("kid")
    keys = jwt.PyJWKSet.from_dict(spec["jwks"]).keys
    matching = [k for k in keys if kid is None or k.key_id == kid]
    if len(matching) != 1:
        print(f"no single key for kid {kid!r}", file=sys.stderr)
        sys.exit(1)
    key = matching[0]
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=spec.get("algorithms") or [key.algorithm_name],
            issuer=spec.get("issuer"),
            audience=spec.get("audience"),
            options={"require": ["exp"]},
        )
    except jwt.PyJWTError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(claims))


if __name__ == "__main__":
    main()
