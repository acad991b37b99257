//! RFC 8705 certificate-bound tokens behind a real nginx terminating mutual TLS
//! (docs/nginx/mtls.conf), which forwards the client certificate as
//! `X-Client-Cert: $ssl_client_escaped_cert`. openssl makes a CA, nginx's certificate and two
//! client certificates; curl is the client.
//!
//! The binding is checked by `JwtAuthLayer::with_certificate_binding` with
//! `CertificateBinding::from_header("X-Client-Cert")`: a token with `cnf.x5t#S256` needs that
//! certificate, an unbound token needs none.
//!
//! Needs `nginx` (with `libnginx-mod-http-js`, which the harness loads), `openssl` and `curl`.

mod support;

#[path = "support/nginx.rs"]
mod nginx;

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tower_token_auth::mtls::CertificateBinding;
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{Claims, JwtAuthLayer};

use nginx::Nginx;

/// A temp dir with `ca`, `server`, `client1` and `client2` (`<name>.pem`, `<name>.key`), the
/// server's for 127.0.0.1, both clients' signed by the CA. Removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tta-mtls-{}-{}",
            std::process::id(),
            support::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        pki.openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=tta test CA",
                ],
            ]
            .concat(),
        );
        std::fs::write(pki.dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        std::fs::write(pki.dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn, ext) in [
            ("server", "127.0.0.1", "server.ext"),
            ("client1", "client one", "client.ext"),
            ("client2", "client two", "client.ext"),
        ] {
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            let subj = format!("/CN={cn}");
            pki.openssl(
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &subj],
                ]
                .concat(),
            );
            pki.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &pem,
            ]);
        }
        pki
    }

    fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running openssl: {e}; install the `openssl` package"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// The certificate's x5t#S256, by openssl: SHA-256 of the DER, base64url.
    fn thumbprint(&self, name: &str) -> String {
        let der = self.openssl(&["x509", "-in", &format!("{name}.pem"), "-outform", "der"]);
        let path = self.dir.join(format!("{name}.der"));
        std::fs::write(&path, der).unwrap();
        let digest = self.openssl(&["dgst", "-sha256", "-binary", &path.display().to_string()]);
        assert_eq!(digest.len(), 32);
        URL_SAFE_NO_PAD.encode(digest)
    }

    /// The certificate as nginx's `$ssl_client_escaped_cert` writes it (space, line break,
    /// `+`, `/` and `=` escaped).
    fn escaped_pem(&self, name: &str) -> String {
        let pem = std::fs::read_to_string(self.dir.join(format!("{name}.pem"))).unwrap();
        pem.replace('\n', "%0A")
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The app: `/me` answers the subject and the X-Client-Cert it got, behind `JwtAuthLayer`
/// with the certificate binding.
async fn start_app(keys: &TestKeys) -> std::net::SocketAddr {
    let binding = CertificateBinding::from_header("X-Client-Cert").unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|claims: Claims, headers: http::HeaderMap| async move {
                let forwarded = headers.get("x-client-cert").is_some();
                format!(
                    "{} forwarded={forwarded}",
                    claims.sub.as_deref().unwrap_or("")
                )
            }),
        )
        .route_layer(JwtAuthLayer::new(keys.verifier()).with_certificate_binding(binding));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What curl got: status, `WWW-Authenticate`, body.
#[derive(Debug)]
struct Got {
    status: u16,
    www_authenticate: String,
    body: String,
}

/// `GET https://127.0.0.1:<port>/me` with curl, trusting the test CA, presenting `client`'s
/// certificate (if any), with `headers`.
async fn curl(pki: &Pki, nginx: &Nginx, client: Option<&str>, headers: &[String]) -> Got {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(pki.path("ca.pem"));
    if let Some(name) = client {
        cmd.arg("--cert")
            .arg(pki.path(&format!("{name}.pem")))
            .arg("--key")
            .arg(pki.path(&format!("{name}.key")));
    }
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(format!("https://{}/me", nginx.addr));
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("running curl: {e}; install the `curl` package"));
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers and body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let www_authenticate = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("www-authenticate")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Got {
        status,
        www_authenticate,
        body: body.to_owned(),
    }
}

fn assert_mismatch(got: &Got, case: &str) {
    assert_eq!(got.status, 401, "{case}: {got:?}");
    assert_eq!(
        got.www_authenticate,
        r#"Bearer error="invalid_token", error_description="token bound to another client certificate""#,
        "{case}: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_through_nginx() {
    let pki = Pki::new();
    let keys = TestKeys::hs256();
    let app = start_app(&keys).await;
    let upstream = app.to_string();
    let nginx = Nginx::start(
        "mtls.conf",
        &[
            ("__SERVER_CERT__", &pki.path("server.pem")),
            ("__SERVER_KEY__", &pki.path("server.key")),
            ("__CLIENT_CA__", &pki.path("ca.pem")),
            ("__UPSTREAM__", &upstream),
        ],
    );

    let bound = |name: &str| {
        let cnf = json!({"cnf": {"x5t#S256": pki.thumbprint(name)}});
        let token = keys
            .issuer()
            .issue_with("alice", "read", &cnf)
            .unwrap()
            .token;
        format!("Authorization: Bearer {token}")
    };
    let to_client1 = bound("client1");
    let to_client2 = bound("client2");
    let unbound = format!("Authorization: Bearer {}", keys.mint("bob", "read"));

    // The certificate the token is bound to: nginx's escaped PEM read as that certificate.
    let got = curl(
        &pki,
        &nginx,
        Some("client1"),
        std::slice::from_ref(&to_client1),
    )
    .await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, "alice forwarded=true"),
        "{got:?}"
    );
    let got = curl(
        &pki,
        &nginx,
        Some("client2"),
        std::slice::from_ref(&to_client2),
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");

    // Another certificate of the same CA, or none.
    let got = curl(
        &pki,
        &nginx,
        Some("client2"),
        std::slice::from_ref(&to_client1),
    )
    .await;
    assert_mismatch(&got, "client2 with client1's token");
    let got = curl(&pki, &nginx, None, std::slice::from_ref(&to_client1)).await;
    assert_mismatch(&got, "no certificate");

    // The client's own X-Client-Cert never reaches the application: nginx replaces it with
    // the real one, or drops it when there is none.
    let forged = |name: &str| format!("X-Client-Cert: {}", pki.escaped_pem(name));
    // (It would pass, were it let through.)
    let mut as_sent = http::HeaderMap::new();
    as_sent.insert("x-client-cert", pki.escaped_pem("client1").parse().unwrap());
    let binding = CertificateBinding::from_header("X-Client-Cert").unwrap();
    let x5t = pki.thumbprint("client1");
    assert!(
        binding
            .check(&as_sent, &http::Extensions::new(), &x5t)
            .is_ok()
    );
    let got = curl(&pki, &nginx, None, &[to_client1.clone(), forged("client1")]).await;
    assert_mismatch(&got, "no certificate, forged header");
    let got = curl(
        &pki,
        &nginx,
        Some("client2"),
        &[to_client1.clone(), forged("client1")],
    )
    .await;
    assert_mismatch(&got, "client2, header forged as client1");

    // Unbound tokens need no certificate, and the client's header is still dropped.
    let got = curl(&pki, &nginx, None, &[unbound.clone(), forged("client1")]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, "bob forwarded=false"),
        "{got:?}"
    );
    let got = curl(
        &pki,
        &nginx,
        Some("client1"),
        std::slice::from_ref(&unbound),
    )
    .await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, "bob forwarded=true"),
        "{got:?}"
    );
}
