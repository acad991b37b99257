//! The sending side of OpenID Connect Back-Channel Logout 1.0 (feature `http-client`): when
//! an SSO session ends, every client it signed in to is told, server to server.
//!
//! [`BackchannelLogoutSender::send_logout`] mints one logout token per client (§2.4: `typ`
//! `logout+jwt`, `iss`, `aud` = the client, `iat`, `exp`, `jti`, `sub`, `sid`, the
//! back-channel logout event, never a `nonce`), signed by the [`SigningKeyRing`], and POSTs it
//! as `logout_token=` to the client's `backchannel_logout_uri` (§2.5), all clients at once.
//! Each POST is bounded by a timeout; a transport failure, timeout or 5xx answer is retried
//! (bounded, with backoff), a 4xx is not (the client refused the token). The
//! [`LogoutReport`] says who was told and who was not; redirects are never followed.
//!
//! ```no_run
//! use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
//! use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
//! use tower_token_auth::sso::logout_sender::BackchannelLogoutSender;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = SigningKeyRing::new(RingKey::generate_ed25519()?);
//! let clients = ClientRegistry::new().with_client(
//!     RegisteredClient::new("orders")?
//!         .redirect_uri("https://orders.example/cb")?
//!         .backchannel_logout_uri("https://orders.example/backchannel-logout")?,
//! )?;
//! let sender = BackchannelLogoutSender::new("https://auth.example", ring)?;
//! let report = sender.send_logout(clients.iter(), "alice", "sid-1").await;
//! for (client, why) in &report.failed {
//!     tracing::warn!(%client, %why, "back-channel logout not delivered");
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, Uri};
use serde_json::json;

use super::clients::RegisteredClient;
use super::key_ring::SigningKeyRing;
use crate::error::ConfigError;
use crate::issuer::random_id;
use crate::keys::http::HttpClient;
use crate::keys::url::check_url;
use crate::revocation::now_secs;

/// The event a logout token carries (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Mints a logout token for `client_id`: `sub` and `sid` of the session that ended, valid
/// `ttl` from now, signed with the ring's current key.
pub fn logout_token(
    ring: &SigningKeyRing,
    issuer: &str,
    client_id: &str,
    sub: &str,
    sid: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let iat = now_secs();
    let claims = json!({
        "iss": issuer,
        "aud": client_id,
        "iat": iat,
        "exp": iat.saturating_add(ttl.as_secs()),
        "jti": random_id::<16>(),
        "sub": sub,
        "sid": sid,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    });
    ring.signing_key().sign(&claims, Some("logout+jwt"))
}

/// Who heard of a logout; see [`BackchannelLogoutSender::send_logout`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutReport {
    /// Clients that answered 2xx.
    pub delivered: Vec<String>,
    /// Clients that were not told, with why (their answer or the transport error).
    pub failed: Vec<(String, String)>,
    /// Clients without a `backchannel_logout_uri`.
    pub skipped: Vec<String>,
}

impl LogoutReport {
    /// Whether every client with a back-channel logout URI was told.
    pub fn all_delivered(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Sends back-channel logout tokens; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct BackchannelLogoutSender {
    issuer: String,
    ring: SigningKeyRing,
    client: HttpClient,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    token_ttl: Duration,
}

impl fmt::Debug for BackchannelLogoutSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogoutSender")
            .field("issuer", &self.issuer)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("token_ttl", &self.token_ttl)
            .finish_non_exhaustive()
    }
}

/// What one attempt gave: done, worth retrying, or final.
enum Attempt {
    Delivered,
    Retry(String),
    Refused(String),
}

impl BackchannelLogoutSender {
    /// A sender for tokens of `issuer` signed by `ring`: 5-second timeout per POST, 2 retries
    /// (first after 250 ms, doubling), tokens valid 2 minutes.
    pub fn new(issuer: impl Into<String>, ring: SigningKeyRing) -> Result<Self, ConfigError> {
        Ok(Self {
            issuer: issuer.into(),
            ring,
            client: HttpClient::new()?,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(250),
            token_ttl: Duration::from_secs(120),
        })
    }

    /// The timeout of each POST (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after a failed POST (default 2), the first after `backoff` (default 250 ms),
    /// each next one after twice as long.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// How long each logout token is valid (default 2 minutes).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Tells every client in `clients` with a `backchannel_logout_uri` that session `sid` of
    /// `sub` ended; all at once, each with its own token. Never fails as a whole: the report
    /// lists who was not told.
    pub async fn send_logout<'a, I>(&self, clients: I, sub: &str, sid: &str) -> LogoutReport
    where
        I: IntoIterator<Item = &'a RegisteredClient>,
    {
        let mut report = LogoutReport::default();
        let mut tasks = tokio::task::JoinSet::new();
        for client in clients {
            let Some(uri) = client.backchannel_logout_uri.clone() else {
                report.skipped.push(client.client_id.clone());
                continue;
            };
            let (this, id) = (self.clone(), client.client_id.clone());
            let (sub, sid) = (sub.to_owned(), sid.to_owned());
            tasks.spawn(async move {
                let outcome = this.deliver(&id, &uri, &sub, &sid).await;
                (id, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, Ok(()))) => report.delivered.push(id),
                Ok((id, Err(why))) => report.failed.push((id, why)),
                // A panicking task is a bug; it is reported with no client name.
                Err(e) => report.failed.push((String::new(), e.to_string())),
            }
        }
        report.delivered.sort();
        report.failed.sort();
        report
    }

    async fn deliver(
        &self,
        client_id: &str,
        uri: &str,
        sub: &str,
        sid: &str,
    ) -> Result<(), String> {
        let url = check_url(uri).map_err(|e| e.to_string())?;
        let mut backoff = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            // A fresh token per attempt: its `jti` is new, so a receiver's replay check does
            // not refuse a retry of a POST that reached it.
            let token = logout_token(
                &self.ring,
                &self.issuer,
                client_id,
                sub,
                sid,
                self.token_ttl,
            )
            .map_err(|e| format!("could not sign the logout token: {e}"))?;
            match self.post(&url, &token).await {
                Attempt::Delivered => {
                    tracing::info!(client_id, sid, attempt, "back-channel logout delivered");
                    return Ok(());
                }
                Attempt::Refused(why) => {
                    tracing::warn!(client_id, sid, %why, "back-channel logout refused");
                    return Err(why);
                }
                Attempt::Retry(why) => {
                    tracing::info!(client_id, sid, attempt, %why, "back-channel logout failed");
                    last = why;
                }
            }
        }
        Err(last)
    }

    async fn post(&self, url: &Uri, token: &str) -> Attempt {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", token)
            .finish();
        let sent =
            self.client
                .post_form(url, "back-channel logout endpoint", HeaderMap::new(), body);
        match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => Attempt::Retry(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => Attempt::Retry(e.to_string()),
            Ok(Ok(res)) if res.status.is_success() => Attempt::Delivered,
            Ok(Ok(res)) if res.status.is_server_error() => {
                Attempt::Retry(format!("answered {}", res.status.as_u16()))
            }
            Ok(Ok(res)) => Attempt::Refused(format!("answered {}", res.status.as_u16())),
        }
    }
}
