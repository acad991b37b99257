//! Claim shapes real tokens carry (issue #12 item 4), through [`Verifier::verify`]: fractional
//! NumericDates, `scope` as a string or an array, `scp` by configuration, `aud` string or
//! array. One table; each row a payload, a verifier option and what must come out.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use tower_token_auth::{
    Algorithm, AuthErrorKind, InvalidToken, KeySet, NoCustomClaims, Verifier, VerifyingKey,
};

const SECRET: &[u8] = b"claims-test-secret-of-32-bytes!!";
const LEEWAY: u64 = 30;

fn token(claims: &Value) -> String {
    // Building a key installs jsonwebtoken's crypto provider first.
    let _ = VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap();
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn verifier(scope_claim: Option<&str>, require: &[&str]) -> Verifier {
    let keys = KeySet::new()
        .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .unwrap();
    let mut builder = Verifier::builder(keys)
        .audience("api")
        .leeway(Duration::from_secs(LEEWAY))
        .verified_token_cache(1 << 16);
    if !require.is_empty() {
        builder = builder.require_claims(require.iter().copied());
    }
    if let Some(name) = scope_claim {
        builder = builder.scope_claim(name);
    }
    builder.build().unwrap()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One row: what it shows, the payload, the scope claim configured, the claims required, and
/// the outcome.
type Row = (
    &'static str,
    Value,
    Option<&'static str>,
    &'static [&'static str],
    Want,
);

enum Want {
    /// Verified, with these scopes (space-separated).
    Scopes(Option<&'static str>),
    /// Refused for this reason.
    Refused(InvalidToken),
    /// Refused as an invalid claim whose logged reason names this claim.
    BadClaim(&'static str),
}

#[test]
fn claim_shapes() {
    let t = now();
    let exp = t + 600.0;
    let rows: Vec<Row> = vec![
        // NumericDates with fractions (Python's time.time()).
        (
            "float exp/nbf/iat",
            json!({"aud": "api", "exp": exp + 0.5, "nbf": t - 0.25, "iat": t - 0.25}),
            None,
            &[],
            Want::Scopes(None),
        ),
        (
            "float exp past the leeway",
            json!({"aud": "api", "exp": t - LEEWAY as f64 - 5.5}),
            None,
            &[],
            Want::Refused(InvalidToken::Expired),
        ),
        (
            // jsonwebtoken alone rounds this exp to the nearest second and lets it pass; the
            // token expired 0.4 s ago (beyond the leeway).
            "float exp within a second past the leeway",
            json!({"aud": "api", "exp": t.floor() - LEEWAY as f64 - 0.4}),
            None,
            &[],
            Want::Refused(InvalidToken::Expired),
        ),
        (
            "float nbf beyond the leeway",
            json!({"aud": "api", "exp": exp, "nbf": t + LEEWAY as f64 + 5.5}),
            None,
            &[],
            Want::Refused(InvalidToken::NotYetValid),
        ),
        (
            "float iat in the future",
            json!({"aud": "api", "exp": exp, "iat": t + LEEWAY as f64 + 5.5}),
            None,
            &[],
            Want::Refused(InvalidToken::IssuedInFuture),
        ),
        (
            "string exp",
            json!({"aud": "api", "exp": format!("{}", exp as u64)}),
            None,
            &[],
            Want::BadClaim("exp"),
        ),
        (
            "negative iat",
            json!({"aud": "api", "exp": exp, "iat": -1}),
            None,
            &[],
            Want::BadClaim("iat"),
        ),
        (
            "float iat required",
            json!({"aud": "api", "exp": exp, "iat": t}),
            None,
            &["exp", "iat"],
            Want::Scopes(None),
        ),
        // scope: string or array.
        (
            "scope string",
            json!({"aud": "api", "exp": exp, "scope": "read write"}),
            None,
            &[],
            Want::Scopes(Some("read write")),
        ),
        (
            "scope array",
            json!({"aud": "api", "exp": exp, "scope": ["read", "write"]}),
            None,
            &[],
            Want::Scopes(Some("read write")),
        ),
        (
            "scope array element with a space",
            json!({"aud": "api", "exp": exp, "scope": ["read write"]}),
            None,
            &[],
            Want::BadClaim("scope"),
        ),
        (
            "scope number",
            json!({"aud": "api", "exp": exp, "scope": 7}),
            None,
            &[],
            Want::BadClaim("scope"),
        ),
        // scp, by configuration only.
        (
            "scp ignored by default",
            json!({"aud": "api", "exp": exp, "scp": "read"}),
            None,
            &[],
            Want::Scopes(None),
        ),
        (
            "scp string (Entra ID)",
            json!({"aud": "api", "exp": exp, "scp": "read write"}),
            Some("scp"),
            &[],
            Want::Scopes(Some("read write")),
        ),
        (
            "scp array (Okta)",
            json!({"aud": "api", "exp": exp, "scp": ["read", "write"]}),
            Some("scp"),
            &[],
            Want::Scopes(Some("read write")),
        ),
        (
            "scope ignored when reading scp",
            json!({"aud": "api", "exp": exp, "scope": "admin"}),
            Some("scp"),
            &[],
            Want::Scopes(None),
        ),
        (
            "scp required and absent",
            json!({"aud": "api", "exp": exp, "scope": "admin"}),
            Some("scp"),
            &["exp", "scope"],
            Want::Refused(InvalidToken::MissingClaim("scp".into())),
        ),
        (
            "scp of another shape",
            json!({"aud": "api", "exp": exp, "scp": {"read": true}}),
            Some("scp"),
            &[],
            Want::BadClaim("scp"),
        ),
        (
            "`scope_claim(\"scope\")` is the default",
            json!({"aud": "api", "exp": exp, "scope": ["read"]}),
            Some("scope"),
            &[],
            Want::Scopes(Some("read")),
        ),
        // aud: string or array (unchanged).
        (
            "aud array",
            json!({"aud": ["web", "api"], "exp": exp}),
            None,
            &[],
            Want::Scopes(None),
        ),
        (
            "aud of another service",
            json!({"aud": ["web"], "exp": exp}),
            None,
            &[],
            Want::Refused(InvalidToken::WrongAudience),
        ),
    ];
    for (name, claims, scope_claim, require, want) in rows {
        let verifier = verifier(scope_claim, require);
        let token = token(&claims);
        // Twice: the second answer comes from the verified-token cache and must agree.
        for round in ["fresh", "cached"] {
            let got = verifier.verify::<NoCustomClaims>(&token);
            match (&want, got) {
                (Want::Scopes(scopes), Ok(c)) => {
                    assert_eq!(c.scope.as_deref(), *scopes, "{name} ({round})");
                    if let Some(scopes) = scopes {
                        assert!(c.require_scope(scopes).is_ok(), "{name}");
                        assert!(c.require_scope("admin").is_err(), "{name}");
                    }
                }
                (Want::Refused(reason), Err(e)) => assert_eq!(
                    e.kind(),
                    &AuthErrorKind::InvalidToken(reason.clone()),
                    "{name} ({round})"
                ),
                (Want::BadClaim(claim), Err(e)) => {
                    let AuthErrorKind::InvalidToken(InvalidToken::InvalidClaim(why)) = e.kind()
                    else {
                        panic!("{name} ({round}): {e:?}");
                    };
                    assert!(
                        why.contains(claim),
                        "{name}: the log names `{claim}`: {why}"
                    );
                    assert_eq!(e.description(), "missing or invalid claim", "{name}");
                }
                (_, got) => panic!("{name} ({round}): {claims} gave {got:?}"),
            }
        }
    }
}

#[test]
fn scope_claim_names_are_checked() {
    let keys = || {
        KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .unwrap()
    };
    for bad in ["", "sub", "exp", "aud", "amr", "sid"] {
        assert!(
            Verifier::builder(keys()).scope_claim(bad).build().is_err(),
            "scope_claim({bad:?})"
        );
    }
    for good in ["scp", "scope", "permissions"] {
        assert!(Verifier::builder(keys()).scope_claim(good).build().is_ok());
    }
}
