//! [`OidcClient`]: the relying party's registration at one OpenID provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use zeroize::Zeroizing;

use crate::keys::Discovery;
use crate::keys::http::{HttpClient, check_url};
use crate::source::AccessCookie;
use crate::{ConfigError, Verifier};

/// The shortest secret accepted for signing the login-state cookie, in bytes.
pub const MIN_STATE_SECRET_LEN: usize = 32;

/// The default name of the login-state cookie.
pub const DEFAULT_STATE_COOKIE: &str = "oidc_login";

/// The largest token-endpoint answer read, in bytes.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// A relying party's configuration at one OpenID provider (OpenID Connect Core 1.0, the
/// authorization code flow with PKCE): the provider's endpoints, the client's registration,
/// how its ID tokens are verified and how the login-state cookie is signed. Cheap to clone;
/// shared by [`OidcLoginLayer`](super::OidcLoginLayer), [`OidcCallback`](super::OidcCallback)
/// and [`OidcLogout`](super::OidcLogout).
///
/// Built from the provider's discovery document ([`Discovery`]), which must name an
/// `authorization_endpoint` and a `token_endpoint`. The ID-token verifier must pin the
/// provider's issuer and this client's `client_id` as audience, over the provider's keys
/// (e.g. [`Discovery::remote_jwks`]).
///
/// ```no_run
/// use tower_token_auth::keys::Discovery;
/// use tower_token_auth::sso::OidcClient;
/// use tower_token_auth::{KeySet, Verifier};
///
/// # async fn run(state_secret: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
/// let op = Discovery::fetch("https://login.example").await?;
/// let id_tokens = Verifier::builder(KeySet::new())
///     .issuer(op.issuer())
///     .audience("orders-web")
///     .build_with_jwks(op.remote_jwks()?)
///     .await?;
/// let client = OidcClient::new(&op, "orders-web", "https://orders.example/callback", id_tokens, &state_secret)?
///     .client_secret("s3cret")
///     .scopes(["email"])
///     .post_logout_redirect_uri("https://orders.example/")?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct OidcClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: Uri,
    pub(crate) token_endpoint: Uri,
    pub(crate) end_session_endpoint: Option<Uri>,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Zeroizing<String>>,
    pub(crate) redirect_uri: String,
    /// `scheme://authority` of the redirect URI: this service's origin, for CSRF checks.
    pub(crate) origin: String,
    pub(crate) callback_path: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) verifier: Verifier,
    pub(crate) state_key: Zeroizing<Vec<u8>>,
    pub(crate) state_cookie: AccessCookie,
    pub(crate) secure_cookie: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) post_logout_redirect_uri: Option<String>,
    pub(crate) session_scope: String,
    pub(crate) granted_scope: bool,
    pub(crate) http: HttpClient,
}

impl fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("OidcClient")
            .field("issuer", &i.issuer)
            .field("authorization_endpoint", &i.authorization_endpoint)
            .field("token_endpoint", &i.token_endpoint)
            .field("end_session_endpoint", &i.end_session_endpoint)
            .field("client_id", &i.client_id)
            .field(
                "client_secret",
                &i.client_secret.as_ref().map(|_| "REDACTED"),
            )
            .field("redirect_uri", &i.redirect_uri)
            .field("scopes", &i.scopes)
            .field("state_key", &"REDACTED")
            .field("state_cookie", &i.state_cookie)
            .field("max_age", &i.max_age)
            .field("post_logout_redirect_uri", &i.post_logout_redirect_uri)
            .field("session_scope", &i.session_scope)
            .field("granted_scope", &i.granted_scope)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// A client `client_id` of the provider described by `provider`, whose callback
    /// ([`OidcCallback`](super::OidcCallback)) is at `redirect_uri` (absolute, exactly as
    /// registered; `https`, or `http` on a loopback host), verifying ID tokens with
    /// `id_token_verifier` and signing its login-state cookie with `state_secret` (at least
    /// [`MIN_STATE_SECRET_LEN`] random bytes; the same on every instance).
    ///
    /// Defaults: a public client (no secret; see [`client_secret`](Self::client_secret)),
    /// scope `openid`, no `max_age`, a `Secure` login-state cookie named
    /// [`DEFAULT_STATE_COOKIE`] on the callback's path, local sessions with an empty scope.
    ///
    /// Fails when the metadata has no authorization or token endpoint, when the redirect URI
    /// is not an absolute URL this crate may use, when the verifier does not pin an issuer
    /// and an audience, or when the secret is too short.
    pub fn new(
        provider: &Discovery,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
        id_token_verifier: Verifier,
        state_secret: &[u8],
    ) -> Result<Self, ConfigError> {
        let client_id = client_id.into();
        let redirect_uri = redirect_uri.into();
        if client_id.is_empty() {
            return Err(ConfigError::new("the client_id is empty"));
        }
        let authorization_endpoint =
            provider.authorization_endpoint().cloned().ok_or_else(|| {
                ConfigError::new("the provider's metadata has no authorization_endpoint")
            })?;
        let token_endpoint = provider
            .token_endpoint()
            .cloned()
            .ok_or_else(|| ConfigError::new("the provider's metadata has no token_endpoint"))?;
        let callback = check_url(&redirect_uri)?;
        if callback.query().is_some() || redirect_uri.contains('#') {
            return Err(ConfigError::new(
                "the redirect URI must have no query or fragment",
            ));
        }
        let (Some(scheme), Some(authority)) = (callback.scheme_str(), callback.authority()) else {
            return Err(ConfigError::new("the redirect URI must be an absolute URL"));
        };
        let origin = format!("{scheme}://{authority}");
        if !id_token_verifier.pins_issuer_and_audience() {
            return Err(ConfigError::new(
                "the ID-token verifier needs the provider's issuer and the client_id as audience",
            ));
        }
        if state_secret.len() < MIN_STATE_SECRET_LEN {
            return Err(ConfigError::new(format!(
                "the login-state secret must be at least {MIN_STATE_SECRET_LEN} bytes"
            )));
        }
        let mut http = HttpClient::new()?;
        http.set_max_body(MAX_TOKEN_ANSWER);
        let state_cookie = AccessCookie::new(DEFAULT_STATE_COOKIE).path(callback.path());
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: provider.issuer().to_owned(),
                authorization_endpoint,
                token_endpoint,
                end_session_endpoint: provider.end_session_endpoint().cloned(),
                client_id,
                client_secret: None,
                redirect_uri,
                origin,
                callback_path: callback.path().to_owned(),
                scopes: vec!["openid".to_owned()],
                verifier: id_token_verifier,
                state_key: Zeroizing::new(state_secret.to_vec()),
                state_cookie,
                secure_cookie: true,
                max_age: None,
                post_logout_redirect_uri: None,
                session_scope: String::new(),
                granted_scope: false,
                http,
            }),
        })
    }

    fn edit(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// A confidential client: authenticate at the token endpoint with this secret
    /// (`client_secret_basic`, RFC 6749 §2.3.1).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.edit().client_secret = Some(Zeroizing::new(secret.into()));
        self
    }

    /// Scopes asked for besides `openid` (which is always asked for).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = vec!["openid".to_owned()];
        for s in scopes {
            let s = s.into();
            if !s.is_empty() && !all.contains(&s) {
                all.push(s);
            }
        }
        self.edit().scopes = all;
        self
    }

    /// Send `max_age` (OpenID Connect Core §3.1.2.1): the provider re-authenticates a user
    /// who signed in longer ago, and the ID token's `auth_time` is then required and checked.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.edit().max_age = Some(max_age);
        self
    }

    /// Where the provider sends the browser after an RP-initiated logout
    /// ([`OidcLogout`](super::OidcLogout)); must be registered at the provider. Absolute,
    /// `https` or `http` on a loopback host.
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Result<Self, ConfigError> {
        let uri = uri.into();
        check_url(&uri)?;
        self.edit().post_logout_redirect_uri = Some(uri);
        Ok(self)
    }

    /// The scope of the local session's access tokens (default empty): what the service's
    /// own `RequireScopeLayer`s see.
    pub fn session_scope(mut self, scope: impl Into<String>) -> Self {
        self.edit().session_scope = scope.into();
        self
    }

    /// The local session's scope is the scope the provider granted: the `scope` of its token
    /// response (RFC 6749 §5.1; at most 1024 bytes of RFC 6749 §3.3 scope tokens, else the
    /// login is refused with 401), or the [`session_scope`](Self::session_scope) when the
    /// answer has none. For providers that grant each user the services they may use: the
    /// service's own `RequireScopeLayer` then checks the provider's decision.
    pub fn session_scope_from_grant(mut self) -> Self {
        self.edit().granted_scope = true;
        self
    }

    /// The login-state cookie's name (default [`DEFAULT_STATE_COOKIE`]); give every service
    /// on one host its own.
    pub fn state_cookie_name(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let path = self.callback_path().to_owned();
        let cookie = AccessCookie::new(name)
            .path(path)
            .secure(self.inner.secure_cookie);
        cookie.validate()?;
        self.edit().state_cookie = cookie;
        Ok(self)
    }

    /// Turns `Secure` off on the login-state cookie, for plain-HTTP localhost tests only.
    pub fn insecure_http(mut self) -> Self {
        let cookie = self.inner.state_cookie.clone().secure(false);
        let inner = self.edit();
        inner.state_cookie = cookie;
        inner.secure_cookie = false;
        self
    }

    /// The provider's issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `client_id`.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The redirect URI, where [`OidcCallback`](super::OidcCallback) is mounted.
    pub fn redirect_uri(&self) -> &str {
        &self.inner.redirect_uri
    }

    /// The path of the redirect URI.
    pub fn callback_path(&self) -> &str {
        &self.inner.callback_path
    }

    /// The login-state cookie's settings.
    pub fn state_cookie(&self) -> &AccessCookie {
        &self.inner.state_cookie
    }
}
