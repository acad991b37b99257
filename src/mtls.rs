//! RFC 8705 certificate-bound access tokens: a token whose `cnf` claim carries `x5t#S256`
//! (the base64url SHA-256 of a DER client certificate) is accepted only from a client that
//! presented that certificate on its mutual-TLS connection.
//!
//! The TLS connection ends before the application sees the request, so whoever terminates it
//! hands the certificate on, and [`CertificateBinding`] says how:
//!
//! - [`CertificateBinding::from_extension`]: the application accepts TLS itself (e.g.
//!   tokio-rustls in a hyper server) and inserts the peer's leaf certificate into every
//!   request of the connection as a [`ClientCertificate`] extension.
//! - [`CertificateBinding::from_header`]: a reverse proxy terminates TLS and forwards the
//!   certificate in a header, e.g. nginx's
//!   `proxy_set_header X-Client-Cert $ssl_client_escaped_cert;` (URL-encoded PEM); plain PEM
//!   and base64 DER are read too.
//! - [`CertificateBinding::from_envoy_xfcc`]: Envoy's `x-forwarded-client-cert`, its `Hash`
//!   (hex SHA-256 of the DER) or its `Cert` (URL-encoded PEM).
//!
//! A header is only ever read when configured, and it is only as trustworthy as the proxy
//! that sets it: **the proxy must replace or remove the header the client sent** (nginx's
//! `proxy_set_header` replaces it; Envoy needs `forward_client_cert_details: SANITIZE_SET`),
//! and the application must be reachable through that proxy alone. Otherwise any client can
//! claim any certificate.
//!
//! Only the thumbprint is compared (RFC 8705 §3): validating the certificate (its chain, its
//! dates) is the TLS terminator's job.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, ConfigError, InvalidToken};

/// Padding optional, as forwarded certificates and thumbprints come both ways.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// Envoy's header.
const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// The RFC 8705 thumbprint of a DER certificate: its SHA-256, base64url without padding, the
/// `x5t#S256` an authorization server puts into a bound token's `cnf`.
///
/// ```
/// use tower_token_auth::mtls::certificate_thumbprint;
///
/// // Not a certificate, but any bytes hash alike.
/// assert_eq!(certificate_thumbprint(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
/// ```
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// The client certificate of the request's TLS connection (DER), put into the request
/// extensions by the application's own TLS acceptor and read by
/// [`CertificateBinding::from_extension`]. Only the leaf, the certificate the client proved
/// it holds the key of.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use tower_token_auth::mtls::ClientCertificate;
///
/// // Where the connection is accepted (e.g. tokio-rustls: `conn.peer_certificates()`,
/// // the first one), for every request that arrives on it:
/// fn tag<B>(mut req: Request<B>, leaf_der: &Bytes) -> Request<B> {
///     req.extensions_mut().insert(ClientCertificate(leaf_der.clone()));
///     req
/// }
/// # let _ = tag(Request::new(()), &Bytes::new());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub Bytes);

impl ClientCertificate {
    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// Its RFC 8705 thumbprint ([`certificate_thumbprint`]).
    pub fn thumbprint(&self) -> String {
        certificate_thumbprint(&self.0)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .field("len", &self.0.len())
            .finish()
    }
}

/// Where the client certificate of a request comes from, and the check of a certificate-bound
/// token (`cnf.x5t#S256`, RFC 8705 §3) against it. See the [module docs](self) for the
/// sources and what a forwarding proxy must do.
///
/// ```
/// use tower_token_auth::mtls::CertificateBinding;
///
/// // nginx: proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
/// let behind_nginx = CertificateBinding::from_header("X-Client-Cert")?;
/// // The application's own TLS acceptor inserts a `ClientCertificate`.
/// let own_tls = CertificateBinding::from_extension();
/// # let _ = (behind_nginx, own_tls);
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateBinding {
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Extension,
    Header(HeaderName),
    Xfcc(HeaderName),
}

/// Why a request's certificate does not confirm the token, for the log.
type Refusal = &'static str;

const NO_CERTIFICATE: Refusal = "no client certificate";

impl CertificateBinding {
    /// The certificate is the [`ClientCertificate`] in the request extensions, set by the
    /// application's TLS acceptor. No header is read.
    pub fn from_extension() -> Self {
        Self {
            source: Source::Extension,
        }
    }

    /// The certificate comes in header `name`, set by a trusted TLS-terminating proxy that
    /// replaces whatever the client sent under that name. The value may be URL-encoded (nginx
    /// `$ssl_client_escaped_cert`, AWS ALB), PEM (the first `CERTIFICATE` block is the
    /// client's; line breaks may be spaces) or base64 DER (standard or URL-safe alphabet,
    /// padding optional). An absent or empty header means no certificate; the header twice is
    /// refused.
    ///
    /// Fails when `name` is not a valid header name.
    pub fn from_header(name: &str) -> Result<Self, ConfigError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(format!("{name:?} is not a header name")))?;
        Ok(Self {
            source: Source::Header(name),
        })
    }

    /// The certificate is described by Envoy's `x-forwarded-client-cert`: its `Hash` (hex
    /// SHA-256 of the DER), else its `Cert` (URL-encoded PEM); with both, they must agree.
    /// Envoy must run with `forward_client_cert_details: SANITIZE_SET` (the client's header
    /// replaced); a header with several elements (`APPEND_FORWARD` through several proxies)
    /// is refused, since which element is the client's depends on the deployment.
    pub fn from_envoy_xfcc() -> Self {
        Self {
            source: Source::Xfcc(XFCC),
        }
    }

    /// `Ok` when the request's client certificate (from `headers` or `extensions`, as
    /// configured) has the thumbprint `expected_x5t_s256`, the token's `cnf.x5t#S256`.
    /// Otherwise a 401 `invalid_token` error ([`InvalidToken::CertificateMismatch`]): no
    /// certificate, another certificate, a forwarded value that does not parse, or a
    /// thumbprint that is not a base64url SHA-256. Which one is logged (`tracing`, debug),
    /// not sent. The thumbprints are compared in constant time.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{HeaderMap, Extensions};
    /// use tower_token_auth::mtls::{CertificateBinding, ClientCertificate, certificate_thumbprint};
    ///
    /// let der = Bytes::from_static(b"\x30\x03\x02\x01\x00"); // stands in for a certificate
    /// let mut extensions = Extensions::new();
    /// extensions.insert(ClientCertificate(der.clone()));
    ///
    /// let binding = CertificateBinding::from_extension();
    /// let bound_to = certificate_thumbprint(&der);
    /// assert!(binding.check(&HeaderMap::new(), &extensions, &bound_to).is_ok());
    /// assert!(binding.check(&HeaderMap::new(), &Extensions::new(), &bound_to).is_err());
    /// ```
    pub fn check(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        expected_x5t_s256: &str,
    ) -> Result<(), AuthError> {
        let outcome = decode_thumbprint(expected_x5t_s256).and_then(|expected| {
            let presented = self.presented(headers, extensions)?;
            if bool::from(presented.ct_eq(&expected)) {
                Ok(())
            } else {
                Err("client certificate is not the one the token is bound to")
            }
        });
        outcome.map_err(|reason| {
            tracing::debug!(target: "tower_token_auth", reason, "certificate-bound token refused");
            AuthError::invalid_token(InvalidToken::CertificateMismatch)
        })
    }

    /// The SHA-256 of the request's client certificate.
    fn presented(&self, headers: &HeaderMap, extensions: &Extensions) -> Result<[u8; 32], Refusal> {
        match &self.source {
            Source::Extension => extensions
                .get::<ClientCertificate>()
                .map(|c| Sha256::digest(&c.0).into())
                .ok_or(NO_CERTIFICATE),
            Source::Header(name) => {
                let der = decode_forwarded(one_header(headers, name)?)?;
                Ok(Sha256::digest(der).into())
            }
            Source::Xfcc(name) => xfcc_digest(one_header(headers, name)?),
        }
    }
}

/// The one value of header `name`, trimmed; absent or empty is no certificate.
fn one_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Refusal> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(NO_CERTIFICATE)?;
    if values.next().is_some() {
        return Err("certificate header sent more than once");
    }
    let value = value
        .to_str()
        .map_err(|_| "certificate header is not visible ASCII")?
        .trim();
    if value.is_empty() {
        return Err(NO_CERTIFICATE);
    }
    Ok(value)
}

/// The 32 bytes of a base64url SHA-256 thumbprint.
fn decode_thumbprint(x5t_s256: &str) -> Result<[u8; 32], Refusal> {
    BASE64URL
        .decode(x5t_s256)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("token's x5t#S256 is not a base64url SHA-256")
}

/// The DER certificate in a forwarded value: URL-encoded or not, PEM or base64 DER.
fn decode_forwarded(value: &str) -> Result<Vec<u8>, Refusal> {
    let decoded = percent_decode(value.as_bytes())?;
    let text = std::str::from_utf8(&decoded).map_err(|_| "forwarded certificate is not text")?;
    let base64: String = match text.find(PEM_BEGIN) {
        Some(at) => {
            let body = &text[at + PEM_BEGIN.len()..];
            let end = body
                .find(PEM_END)
                .ok_or("PEM certificate without its END line")?;
            body[..end]
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect()
        }
        None if text.contains("-----") => return Err("PEM block that is not a CERTIFICATE"),
        None => text.chars().filter(|c| !c.is_ascii_whitespace()).collect(),
    };
    let der = BASE64
        .decode(&base64)
        .or_else(|_| BASE64URL.decode(&base64))
        .map_err(|_| "forwarded certificate is not base64")?;
    check_der_sequence(&der)?;
    Ok(der)
}

/// `%XX` escapes decoded; everything else (`+` included: it is base64) kept as it is.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(|&h| hex_digit(h));
            let lo = bytes.next().and_then(|&l| hex_digit(l));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err("bad percent-encoding in the certificate header"),
            }
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A DER SEQUENCE spanning exactly `der`: the shape of a certificate, so that truncated or
/// padded values are refused rather than hashed.
fn check_der_sequence(der: &[u8]) -> Result<(), Refusal> {
    const NOT_DER: Refusal = "forwarded certificate is not a DER SEQUENCE";
    let [0x30, first, rest @ ..] = der else {
        return Err(NOT_DER);
    };
    let (len, content) = match *first {
        n @ 0..=0x7f => (usize::from(n), rest),
        n @ 0x81..=0x84 => {
            let k = usize::from(n & 0x7f);
            let (len, content) = rest.split_at_checked(k).ok_or(NOT_DER)?;
            (len.iter().fold(0, |a, &b| a << 8 | usize::from(b)), content)
        }
        _ => return Err(NOT_DER),
    };
    if len == content.len() {
        Ok(())
    } else {
        Err("forwarded certificate's DER length is not its size")
    }
}

/// The certificate digest an `x-forwarded-client-cert` value describes.
fn xfcc_digest(value: &str) -> Result<[u8; 32], Refusal> {
    let elements = split_unquoted(value, b',')?;
    let [element] = elements.as_slice() else {
        return Err("x-forwarded-client-cert has several elements");
    };
    let (mut hash, mut cert) = (None, None);
    for pair in split_unquoted(element, b';')? {
        let (key, raw) = pair
            .split_once('=')
            .ok_or("x-forwarded-client-cert pair without `=`")?;
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "hash" => &mut hash,
            "cert" => &mut cert,
            _ => continue,
        };
        if slot.replace(unquote(raw.trim())?).is_some() {
            return Err("x-forwarded-client-cert repeats Hash or Cert");
        }
    }
    let from_hash = hash
        .map(|h| decode_hex32(&h).ok_or("x-forwarded-client-cert Hash is not a hex SHA-256"))
        .transpose()?;
    let from_cert = cert
        .map(|c| decode_forwarded(&c).map(|der| <[u8; 32]>::from(Sha256::digest(der))))
        .transpose()?;
    match (from_hash, from_cert) {
        (Some(h), Some(c)) if h != c => Err("x-forwarded-client-cert Hash and Cert disagree"),
        (Some(digest), _) | (None, Some(digest)) => Ok(digest),
        (None, None) => Err("x-forwarded-client-cert has neither Hash nor Cert"),
    }
}

/// `value` split at `sep` outside double quotes (inside them, `\` escapes the next byte).
fn split_unquoted(value: &str, sep: u8) -> Result<Vec<&str>, Refusal> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("x-forwarded-client-cert has an unterminated quote");
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// A value as given, or the inside of a quoted one with its escapes undone.
fn unquote(value: &str) -> Result<String, Refusal> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or("x-forwarded-client-cert value with text after its quote")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    Ok(out)
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthErrorKind;

    // Self-signed P-256 certificates made with `openssl req -x509`; their thumbprints and
    // hex digests computed by openssl (`openssl x509 -outform der | openssl dgst -sha256`).
    const CERT_1: &str = include_str!("../tests/keys/client-cert-1.pem");
    const CERT_2: &str = include_str!("../tests/keys/client-cert-2.pem");
    const X5T_1: &str = "HsCskxZCZk5HFhjkcus4P8OD274WTrrpWoHubIWFcCQ";
    const X5T_2: &str = "6x_IN9ODTXPN0CYm1OADLH0IXz7CowuVTz8UU08fsF8";
    const HEX_1: &str = "1ec0ac931642664e471618e472eb383fc383dbbe164ebae95a81ee6c85857024";
    const HEX_2: &str = "eb1fc837d3834d73cdd02626d4e0032c7d085f3ec2a30b954f3f14534f1fb05f";

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    /// As nginx's `$ssl_client_escaped_cert` (`ngx_escape_uri`, component mode): the PEM
    /// with line breaks and URI delimiters escaped.
    fn nginx_escaped(pem: &str) -> String {
        let mut out = String::new();
        for b in pem.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// `%2B` → `%2b`: escapes are case-insensitive.
    fn lower_hex_escapes(escaped: &str) -> String {
        let mut out = String::new();
        let mut rest = escaped;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at + 1]);
            out.push_str(&rest[at + 1..at + 3].to_ascii_lowercase());
            rest = &rest[at + 3..];
        }
        out + rest
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn refused(result: Result<(), AuthError>) -> bool {
        match result {
            Ok(()) => false,
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    &AuthErrorKind::InvalidToken(InvalidToken::CertificateMismatch)
                );
                assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
                true
            }
        }
    }

    #[test]
    fn thumbprints_agree_with_openssl() {
        assert_eq!(certificate_thumbprint(&der(CERT_1)), X5T_1);
        assert_eq!(certificate_thumbprint(&der(CERT_2)), X5T_2);
        assert_eq!(ClientCertificate(der(CERT_1).into()).thumbprint(), X5T_1);
        assert!(format!("{:?}", ClientCertificate(der(CERT_1).into())).contains(X5T_1));
    }

    #[test]
    fn extension() {
        let binding = CertificateBinding::from_extension();
        let mut ext = Extensions::new();
        ext.insert(ClientCertificate(der(CERT_1).into()));
        let none = HeaderMap::new();
        assert!(binding.check(&none, &ext, X5T_1).is_ok());
        assert!(refused(binding.check(&none, &ext, X5T_2)));
        assert!(refused(binding.check(&none, &Extensions::new(), X5T_1)));
        // A header is not read unless configured, whatever it says.
        let forwarded = headers("x-client-cert", &[&nginx_escaped(CERT_1)]);
        assert!(refused(binding.check(
            &forwarded,
            &Extensions::new(),
            X5T_1
        )));
        let xfcc = headers("x-forwarded-client-cert", &[&format!("Hash={HEX_1}")]);
        assert!(refused(binding.check(&xfcc, &Extensions::new(), X5T_1)));
    }

    #[test]
    fn forwarded_header_forms() {
        let binding = CertificateBinding::from_header("X-Client-Cert").unwrap();
        let der_1 = der(CERT_1);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der_1);
        let b64url = URL_SAFE_NO_PAD.encode(&der_1);
        let one_line_pem = CERT_1.trim().replace('\n', " "); // Apache-style
        let partly_escaped = CERT_1.trim().replace('\n', "%0A"); // only line breaks escaped
        let chain = nginx_escaped(&format!("{CERT_1}{CERT_2}")); // the client's comes first
        let accepted = [
            nginx_escaped(CERT_1),
            lower_hex_escapes(&nginx_escaped(CERT_1)),
            partly_escaped,
            one_line_pem,
            b64.clone(),
            b64.trim_end_matches('=').to_owned(),
            b64url,
            format!("  {b64}  "),
            nginx_escaped(&b64),
            chain,
        ];
        for value in &accepted {
            let h = headers("x-client-cert", &[value]);
            assert!(
                binding.check(&h, &Extensions::new(), X5T_1).is_ok(),
                "{value}"
            );
            assert!(
                refused(binding.check(&h, &Extensions::new(), X5T_2)),
                "{value}"
            );
        }

        let truncated = base64::engine::general_purpose::STANDARD.encode(&der_1[..der_1.len() - 1]);
        let padded = base64::engine::general_purpose::STANDARD.encode([&der_1[..], b"\0"].concat());
        const LENGTH: Refusal = "forwarded certificate's DER length is not its size";
        // (value, why): a refusal before any comparison, or "" for another certificate.
        let refused_values = [
            ("", NO_CERTIFICATE),
            ("   ", NO_CERTIFICATE),
            ("not a certificate", "forwarded certificate is not base64"),
            ("%ZZ", "bad percent-encoding in the certificate header"),
            ("%4", "bad percent-encoding in the certificate header"),
            ("%FF%FE", "forwarded certificate is not text"),
            (&truncated, LENGTH),
            (&padded, LENGTH),
            (
                "-----BEGIN CERTIFICATE----- MIIB",
                "PEM certificate without its END line",
            ),
            (
                "-----BEGIN PUBLIC KEY----- MFkw -----END PUBLIC KEY-----",
                "PEM block that is not a CERTIFICATE",
            ),
            ("MAMCAQA=", ""), // a DER SEQUENCE, but another one
        ];
        for (value, why) in refused_values {
            let h = headers("x-client-cert", &[value]);
            let presented = binding.presented(&h, &Extensions::new());
            assert_eq!(presented.err().unwrap_or(""), why, "{value:?}");
            assert!(
                refused(binding.check(&h, &Extensions::new(), X5T_1)),
                "{value:?}"
            );
        }
        // Absent, twice, or in another header.
        let good = nginx_escaped(CERT_1);
        for h in [
            HeaderMap::new(),
            headers("x-client-cert", &[&good, &good]),
            headers("x-ssl-cert", &[&good]),
        ] {
            assert!(
                refused(binding.check(&h, &Extensions::new(), X5T_1)),
                "{h:?}"
            );
        }
        // The extension is not read when a header is configured.
        let mut ext = Extensions::new();
        ext.insert(ClientCertificate(der_1.into()));
        assert!(refused(binding.check(&HeaderMap::new(), &ext, X5T_1)));
    }

    #[test]
    fn token_thumbprints() {
        let binding = CertificateBinding::from_extension();
        let mut ext = Extensions::new();
        ext.insert(ClientCertificate(der(CERT_1).into()));
        let none = HeaderMap::new();
        assert!(binding.check(&none, &ext, &format!("{X5T_1}=")).is_ok());
        for bad in [
            "",
            "x",
            &X5T_1[1..],
            &format!("{X5T_1}AA"),
            HEX_1,
            "HsCskxZCZk5HFhjkcus4P8OD274WTrrpWoHubIWFcC+",
        ] {
            assert!(refused(binding.check(&none, &ext, bad)), "{bad}");
        }
    }

    #[test]
    fn envoy_xfcc() {
        let binding = CertificateBinding::from_envoy_xfcc();
        let cert = nginx_escaped(CERT_1);
        let accepted = [
            format!("Hash={HEX_1}"),
            format!("Hash={}", HEX_1.to_uppercase()),
            format!(
                r#"By=spiffe://cluster.local/ns/default/sa/api;Hash={HEX_1};Subject="CN=a, O=\"b;c\"";URI=spiffe://cluster.local/ns/x/sa/y"#
            ),
            format!(r#"hash="{HEX_1}""#),
            format!("Cert=\"{cert}\""),
            format!("Hash={HEX_1};Cert=\"{cert}\";Chain=\"{cert}\""),
            format!(" Hash = {HEX_1} "),
        ];
        for value in &accepted {
            let h = headers("x-forwarded-client-cert", &[value]);
            assert!(
                binding.check(&h, &Extensions::new(), X5T_1).is_ok(),
                "{value}"
            );
            assert!(
                refused(binding.check(&h, &Extensions::new(), X5T_2)),
                "{value}"
            );
        }
        const NOT_HEX: Refusal = "x-forwarded-client-cert Hash is not a hex SHA-256";
        const SEVERAL: Refusal = "x-forwarded-client-cert has several elements";
        // (value, why): a refusal before any comparison, or "" for another certificate.
        let refused_values = [
            (format!("Hash={HEX_2}"), ""),
            (format!("Hash={}", &HEX_1[2..]), NOT_HEX),
            (format!("Hash={HEX_1}0"), NOT_HEX),
            (format!("Hash=zz{}", &HEX_1[2..]), NOT_HEX),
            (
                format!("Hash={HEX_1};Hash={HEX_1}"),
                "x-forwarded-client-cert repeats Hash or Cert",
            ),
            (
                format!("Hash={HEX_2};Cert=\"{cert}\""),
                "x-forwarded-client-cert Hash and Cert disagree",
            ),
            (format!("Hash={HEX_1},Hash={HEX_1}"), SEVERAL),
            (
                format!("By=spiffe://a;Hash={HEX_1},By=spiffe://b;Hash={HEX_2}"),
                SEVERAL,
            ),
            (
                "Subject=\"CN=a\";URI=spiffe://x".to_owned(),
                "x-forwarded-client-cert has neither Hash nor Cert",
            ),
            (
                format!("Hash={HEX_1};Subject=\"CN=a"),
                "x-forwarded-client-cert has an unterminated quote",
            ),
            (
                format!("Hash=\"{HEX_1}\"x"),
                "x-forwarded-client-cert value with text after its quote",
            ),
            (
                format!("Hash{HEX_1}"),
                "x-forwarded-client-cert pair without `=`",
            ),
            (
                "Cert=\"not%20a%20certificate\"".to_owned(),
                "forwarded certificate is not base64",
            ),
        ];
        for (value, why) in &refused_values {
            let h = headers("x-forwarded-client-cert", &[value]);
            let presented = binding.presented(&h, &Extensions::new());
            assert_eq!(presented.err().unwrap_or(""), *why, "{value}");
            assert!(
                refused(binding.check(&h, &Extensions::new(), X5T_1)),
                "{value}"
            );
        }
    }

    #[test]
    fn configuration() {
        assert!(CertificateBinding::from_header("").is_err());
        assert!(CertificateBinding::from_header("x client cert").is_err());
        assert!(CertificateBinding::from_header("x-client-cert\n").is_err());
        assert_eq!(
            CertificateBinding::from_header("X-Client-Cert").unwrap(),
            CertificateBinding::from_header("x-client-cert").unwrap()
        );
    }

    #[test]
    fn der_shape() {
        assert!(check_der_sequence(&[0x30, 0x00]).is_ok());
        assert!(check_der_sequence(&[0x30, 0x81, 0x01, 0x05]).is_ok());
        assert!(check_der_sequence(&[0x30, 0x80]).is_err()); // indefinite length
        assert!(check_der_sequence(&[0x30, 0x85, 0, 0, 0, 0, 0]).is_err());
        assert!(check_der_sequence(&[0x30, 0x82, 0x01]).is_err());
        assert!(check_der_sequence(&[0x31, 0x00]).is_err());
        assert!(check_der_sequence(&[]).is_err());
    }
}
