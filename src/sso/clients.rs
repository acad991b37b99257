//! Registered clients and their redirect URIs, matched exactly (RFC 9700 §4.1.3).
//!
//! A redirect URI in an authorization request is accepted only when it equals one of the
//! client's registered URIs byte for byte: no prefix match, no normalisation (case, trailing
//! `/`, percent-encoding, default ports), no wildcard. Registration refuses URIs that could not
//! be safe to redirect to: a fragment (RFC 6749 §3.1.2), userinfo (`user@host`, a classic
//! open-redirect disguise), and plain `http` to anything but a loopback host (`127.0.0.1`,
//! `[::1]`, `localhost`; RFC 8252 §7.3).
//!
//! ```
//! use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let clients = ClientRegistry::new().with_client(
//!     RegisteredClient::new("orders")?
//!         .redirect_uri("https://orders.example/callback")?
//!         .backchannel_logout_uri("https://orders.example/backchannel-logout")?,
//! )?;
//! assert!(clients.redirect_uri("orders", "https://orders.example/callback").is_ok());
//! assert!(clients.redirect_uri("orders", "https://orders.example/callback/").is_err());
//! assert!(clients.redirect_uri("orders", "https://ORDERS.example/callback").is_err());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use http::Uri;

use crate::error::ConfigError;

/// The longest `client_id` accepted.
const MAX_CLIENT_ID_LEN: usize = 255;
/// The longest registered URI.
const MAX_URI_LEN: usize = 2048;

/// A client of the authorization server: where it may be sent back to, and where it hears of
/// logouts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredClient {
    /// The client's identifier.
    pub client_id: String,
    /// Its redirect URIs, each matched exactly.
    pub redirect_uris: Vec<String>,
    /// Its OpenID Connect back-channel logout endpoint.
    pub backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must carry `sid` (`backchannel_logout_session_required`).
    pub backchannel_logout_session_required: bool,
    /// Where RP-initiated logout may send the browser afterwards
    /// (`post_logout_redirect_uris`, OpenID Connect RP-Initiated Logout 1.0 §3.1), each
    /// matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
}

impl RegisteredClient {
    /// A client with no redirect URI yet. `client_id` is 1 to 255 visible ASCII characters.
    pub fn new(client_id: impl Into<String>) -> Result<Self, ConfigError> {
        let client_id = client_id.into();
        if client_id.is_empty()
            || client_id.len() > MAX_CLIENT_ID_LEN
            || !client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::new(format!(
                "client_id {client_id:?} must be 1 to {MAX_CLIENT_ID_LEN} visible ASCII characters"
            )));
        }
        Ok(Self {
            client_id,
            redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: true,
            post_logout_redirect_uris: Vec::new(),
        })
    }

    /// Registers one more redirect URI, after [checking](check_redirect_uri) it.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Result<Self, ConfigError> {
        let uri = uri.into();
        check_redirect_uri(&uri)?;
        if !self.redirect_uris.contains(&uri) {
            self.redirect_uris.push(uri);
        }
        Ok(self)
    }

    /// Sets the back-channel logout URI (checked like a redirect URI; a query is allowed, a
    /// fragment is not, OpenID Connect Back-Channel Logout §2.2).
    pub fn backchannel_logout_uri(mut self, uri: impl Into<String>) -> Result<Self, ConfigError> {
        let uri = uri.into();
        check_redirect_uri(&uri)
            .map_err(|e| ConfigError::new(format!("backchannel_logout_uri: {e}")))?;
        self.backchannel_logout_uri = Some(uri);
        Ok(self)
    }

    /// Registers one more `post_logout_redirect_uri` (checked like a redirect URI): where the
    /// end-session endpoint may send the browser after an RP-initiated logout.
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Result<Self, ConfigError> {
        let uri = uri.into();
        check_redirect_uri(&uri)
            .map_err(|e| ConfigError::new(format!("post_logout_redirect_uri: {e}")))?;
        if !self.post_logout_redirect_uris.contains(&uri) {
            self.post_logout_redirect_uris.push(uri);
        }
        Ok(self)
    }

    /// Whether `uri` is one of the registered post-logout redirect URIs, byte for byte.
    pub fn allows_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris
            .iter()
            .any(|r| r.as_bytes() == uri.as_bytes())
    }

    /// Whether logout tokens for this client must carry `sid` (default `true`; this
    /// crate's tokens always do).
    pub fn backchannel_logout_session_required(mut self, required: bool) -> Self {
        self.backchannel_logout_session_required = required;
        self
    }

    /// Whether `uri` is one of the registered redirect URIs, byte for byte.
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| r.as_bytes() == uri.as_bytes())
    }
}

/// Whether `host` (as written in the URI) is a loopback host plain `http` may use.
fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// Checks a URI for registration: absolute `https` (or `http` to `127.0.0.1`, `[::1]`,
/// `localhost`), lowercase scheme, a host, no userinfo, no fragment, visible ASCII only, at
/// most 2048 bytes.
///
/// ```
/// use tower_token_auth::sso::clients::check_redirect_uri;
///
/// assert!(check_redirect_uri("https://app.example/cb?x=1").is_ok());
/// assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
/// assert!(check_redirect_uri("http://app.example/cb").is_err());
/// assert!(check_redirect_uri("https://app.example/cb#frag").is_err());
/// assert!(check_redirect_uri("https://user@app.example/cb").is_err());
/// ```
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let refuse = |why: &str| Err(ConfigError::new(format!("redirect URI {uri:?} {why}")));
    if uri.len() > MAX_URI_LEN {
        return refuse("is too long");
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return refuse("has spaces, control or non-ASCII characters");
    }
    if uri.contains('#') {
        return refuse("has a fragment");
    }
    let (scheme, rest) = match uri.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => ("http", rest),
        _ => return refuse("is not an absolute https URI (lowercase scheme)"),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("has userinfo");
    }
    if authority.contains('\\') || rest.starts_with('/') {
        return refuse("has no usable host");
    }
    let parsed: Uri = match uri.parse() {
        Ok(parsed) => parsed,
        Err(_) => return refuse("is not a URI"),
    };
    let Some(host) = parsed
        .authority()
        .map(|a| a.host())
        .filter(|h| !h.is_empty())
    else {
        return refuse("has no host");
    };
    if scheme == "http" && !is_loopback(host) {
        return refuse("uses http to a host that is not loopback (127.0.0.1, [::1], localhost)");
    }
    Ok(())
}

/// Why a redirect URI was not accepted for a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// No client has this `client_id`. Show an error page; redirect nowhere.
    #[error("unknown client")]
    UnknownClient,
    /// The URI is not one of the client's, byte for byte. Show an error page; redirect
    /// nowhere (RFC 6749 §4.1.2.1).
    #[error("redirect_uri is not registered for this client")]
    UnregisteredRedirectUri,
}

/// The registered clients, by `client_id`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientRegistry {
    clients: BTreeMap<String, RegisteredClient>,
}

impl fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clients.values()).finish()
    }
}

impl ClientRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a client. Fails on a duplicate `client_id` or a client without redirect URI.
    pub fn with_client(mut self, client: RegisteredClient) -> Result<Self, ConfigError> {
        self.insert(client)?;
        Ok(self)
    }

    /// A registry from a one-line list (an environment variable, a flag):
    /// `client_id=redirect_uri[;backchannel_logout_uri=URI][;post_logout_redirect_uri=URI]`,
    /// entries separated by commas, blank entries skipped. Every URI is checked as by the
    /// builders; an unknown setting, a malformed entry or a duplicate client fails.
    ///
    /// ```
    /// use tower_token_auth::sso::clients::ClientRegistry;
    ///
    /// let clients = ClientRegistry::from_spec(
    ///     "orders=https://orders.example/cb;post_logout_redirect_uri=https://orders.example/bye",
    /// )?;
    /// assert!(clients.get("orders").is_some());
    /// assert!(ClientRegistry::from_spec("orders").is_err());
    /// # Ok::<(), tower_token_auth::ConfigError>(())
    /// ```
    pub fn from_spec(spec: &str) -> Result<Self, ConfigError> {
        let mut registry = Self::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.split(';').map(|part| part.split_once('='));
            let Some(Some((id, uri))) = parts.next() else {
                let why = format!("client entry {entry:?} is not client_id=redirect_uri");
                return Err(ConfigError::new(why));
            };
            let mut client = RegisteredClient::new(id)?.redirect_uri(uri)?;
            for part in parts {
                client = match part {
                    Some(("backchannel_logout_uri", uri)) => client.backchannel_logout_uri(uri)?,
                    Some(("post_logout_redirect_uri", uri)) => {
                        client.post_logout_redirect_uri(uri)?
                    }
                    _ => {
                        let why = format!("client entry {entry:?}: unknown setting");
                        return Err(ConfigError::new(why));
                    }
                };
            }
            registry.insert(client)?;
        }
        Ok(registry)
    }

    /// Adds a client in place; see [`with_client`](Self::with_client).
    pub fn insert(&mut self, client: RegisteredClient) -> Result<(), ConfigError> {
        if client.redirect_uris.is_empty() {
            return Err(ConfigError::new(format!(
                "client {} has no redirect URI",
                client.client_id
            )));
        }
        if self.clients.contains_key(&client.client_id) {
            return Err(ConfigError::new(format!(
                "client {} registered twice",
                client.client_id
            )));
        }
        self.clients.insert(client.client_id.clone(), client);
        Ok(())
    }

    /// The client with this `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    /// The client, if `redirect_uri` is one of its registered URIs, byte for byte: the check
    /// of an authorization request, before anything is sent to that URI.
    pub fn redirect_uri(
        &self,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<&RegisteredClient, RedirectError> {
        let client = self.get(client_id).ok_or(RedirectError::UnknownClient)?;
        if client.allows_redirect_uri(redirect_uri) {
            Ok(client)
        } else {
            Err(RedirectError::UnregisteredRedirectUri)
        }
    }

    /// The clients, by `client_id`.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredClient> {
        self.clients.values()
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}
