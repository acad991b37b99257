//! [`DpopConfig`]: what a proof may be, and the check of one proof against one request.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::htu::{ExternalOrigin, request_url};
use super::proof::{Expected, Scratch, alg_name, check_claims, verify_signature};
use super::replay::replay_key;
use super::{
    MemoryReplayStore, ProofCheck, ReplayCheck, ReplayError, ReplayStore, VerifiedProof,
    access_token_hash,
};
use crate::{AuthError, AuthErrorKind, ConfigError, InvalidDpopProof};

/// The default cap on a proof's length, in bytes: 8 KiB, room for an 8192-bit RSA key.
pub const DEFAULT_MAX_PROOF_LEN: usize = 8 * 1024;

/// The algorithms [`DpopConfig::new`] accepts, in the order `algs="…"` announces them.
pub const DEFAULT_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// How DPoP proofs (RFC 9449) are checked: accepted algorithms, the `iat` window, where the
/// service is reached (for `htu`), and the replay store.
///
/// Cheap to clone (the replay store is shared between clones).
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::Algorithm;
/// use tower_token_auth::dpop::DpopConfig;
///
/// let config = DpopConfig::new()
///     .algorithms([Algorithm::ES256, Algorithm::EdDSA])?
///     .proof_lifetime(Duration::from_secs(30))
///     .clock_skew(Duration::from_secs(2))
///     // Behind a TLS-terminating proxy: the URL clients sign.
///     .external_origin("https://api.example.com")?;
/// # let _ = config;
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DpopConfig {
    algorithms: Vec<Algorithm>,
    past: Duration,
    future: Duration,
    max_proof_len: usize,
    origin: Option<ExternalOrigin>,
    store: Arc<dyn ReplayStore>,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopConfig {
    /// Secure defaults: the asymmetric algorithms of [`DEFAULT_ALGORITHMS`] (ES256, ES384,
    /// EdDSA, PS256, RS256); proofs issued from 60 s ago to 5 s ahead; proofs of at most
    /// [`DEFAULT_MAX_PROOF_LEN`] bytes; the request's own URL (see
    /// [`external_origin`](Self::external_origin)); a [`MemoryReplayStore`].
    pub fn new() -> Self {
        Self {
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            past: Duration::from_secs(60),
            future: Duration::from_secs(5),
            max_proof_len: DEFAULT_MAX_PROOF_LEN,
            origin: None,
            store: Arc::new(MemoryReplayStore::new()),
        }
    }

    /// The proof algorithms accepted. Symmetric ones (HS256, HS384, HS512) are refused, as RFC
    /// 9449 §4.2 requires (`none` cannot be named), and so is an empty list.
    ///
    /// ```
    /// use tower_token_auth::Algorithm;
    /// use tower_token_auth::dpop::DpopConfig;
    ///
    /// assert!(DpopConfig::new().algorithms([Algorithm::ES256]).is_ok());
    /// assert!(DpopConfig::new().algorithms([Algorithm::ES256, Algorithm::HS256]).is_err());
    /// assert!(DpopConfig::new().algorithms([]).is_err());
    /// ```
    pub fn algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let mut accepted = Vec::new();
        for alg in algorithms {
            let Some(name) = alg_name(alg) else {
                return Err(ConfigError::new(format!(
                    "{alg:?} is not supported for DPoP proofs"
                )));
            };
            if alg.family() == AlgorithmFamily::Hmac {
                return Err(ConfigError::new(format!(
                    "DPoP proofs must be signed with an asymmetric algorithm, not {name}"
                )));
            }
            if !accepted.contains(&alg) {
                accepted.push(alg);
            }
        }
        if accepted.is_empty() {
            return Err(ConfigError::new("DPoP needs at least one proof algorithm"));
        }
        self.algorithms = accepted;
        Ok(self)
    }

    /// How old a proof may be: its `iat` at most `past` before now (default 60 s; whole
    /// seconds). Replay records live this long, so a longer window costs replay store room.
    pub fn proof_lifetime(mut self, past: Duration) -> Self {
        self.past = past;
        self
    }

    /// How far ahead of this server's clock a client's may be: `iat` at most `future` after
    /// now (default 5 s; whole seconds).
    pub fn clock_skew(mut self, future: Duration) -> Self {
        self.future = future;
        self
    }

    /// The longest proof accepted, in bytes (default [`DEFAULT_MAX_PROOF_LEN`]); longer ones
    /// are refused before any decoding.
    pub fn max_proof_len(mut self, max: usize) -> Self {
        self.max_proof_len = max;
        self
    }

    /// Where accepted proofs are remembered (default: a [`MemoryReplayStore`] of this
    /// configuration and its clones). Give every instance of a service one shared store
    /// ([`RedisReplayStore`](super::RedisReplayStore)), or a proof replayed to another
    /// instance passes there.
    pub fn replay_store<R: ReplayStore>(self, store: R) -> Self {
        self.shared_replay_store(Arc::new(store))
    }

    /// [`replay_store`](Self::replay_store) with a store already shared, e.g. between the
    /// configurations of a resource server and a token endpoint in one process.
    pub fn shared_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.store = store;
        self
    }

    /// The scheme, host, port and path prefix clients reach this service at, for the `htu`
    /// comparison: e.g. `"https://api.example.com"` behind a TLS-terminating proxy, or
    /// `"https://example.com/api"` when the proxy also strips `/api` from the path. The
    /// request's URL is then this origin, the prefix, and the request's path; its `Host`
    /// header and absolute target are ignored.
    ///
    /// Without it the request's URL is its absolute target when it has one (HTTP/2, or a
    /// proxy's absolute-form request), else `https://` and its single `Host` header. A
    /// plain-HTTP service (local development) must set `"http://localhost:3000"` or the like.
    ///
    /// Fails for anything but an absolute `http`/`https` URL without userinfo, query or
    /// fragment.
    pub fn external_origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        self.origin = Some(ExternalOrigin::parse(origin)?);
        Ok(self)
    }

    /// The accepted proof algorithms, in order.
    pub fn accepted_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The accepted algorithms as `WWW-Authenticate: DPoP algs="…"` lists them (RFC 9449
    /// §7.1): space-separated JOSE names.
    pub(crate) fn algs_param(&self) -> String {
        // Every configured algorithm has a name (`algorithms` checks).
        let names: Vec<&str> = self
            .algorithms
            .iter()
            .filter_map(|a| alg_name(*a))
            .collect();
        names.join(" ")
    }

    /// Checks one proof (the value of the request's single `DPoP` header) for one request, as
    /// RFC 9449 §4.3 says, then records it in the replay store.
    ///
    /// `access_token` is the token the request presents, at a resource server: the proof
    /// must then carry `ath`, the hash of that token. At a token endpoint, pass `None`. The
    /// caller compares [`VerifiedProof::jkt`] with the token's `cnf.jkt`.
    ///
    /// Every refusal is an [`AuthError`] of kind
    /// [`InvalidDpopProof`](crate::AuthErrorKind::InvalidDpopProof) naming the reason (401),
    /// or [`ReplayCheckUnavailable`](crate::AuthErrorKind::ReplayCheckUnavailable) (503) when
    /// the replay store cannot answer. The answer is [`ProofCheck::Ready`] unless the replay
    /// store needs I/O.
    ///
    /// ```
    /// use http::{HeaderMap, Method, Uri};
    /// use tower_token_auth::dpop::DpopConfig;
    /// use tower_token_auth::testing::DpopKey;
    /// use tower_token_auth::{AuthErrorKind, InvalidDpopProof};
    ///
    /// # tokio_test_block_on(async {
    /// let config = DpopConfig::new().external_origin("https://api.example.com")?;
    /// let key = DpopKey::es256();
    /// let proof = key.proof("GET", "https://api.example.com/orders", Some("the-token"));
    /// let uri: Uri = "/orders?page=2".parse()?;
    ///
    /// let verified = config
    ///     .check(&proof, &Method::GET, &uri, &HeaderMap::new(), Some("the-token"))
    ///     .resolve()
    ///     .await?;
    /// assert_eq!(verified.jkt(), key.thumbprint());
    ///
    /// // The same proof again is a replay.
    /// let again = config
    ///     .check(&proof, &Method::GET, &uri, &HeaderMap::new(), Some("the-token"))
    ///     .resolve()
    ///     .await;
    /// assert_eq!(
    ///     again.unwrap_err().kind(),
    ///     &AuthErrorKind::InvalidDpopProof(InvalidDpopProof::Replayed)
    /// );
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn check(
        &self,
        proof: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        access_token: Option<&str>,
    ) -> ProofCheck {
        self.check_at(
            proof,
            method,
            uri,
            headers,
            access_token,
            crate::revocation::now_secs(),
        )
    }

    pub(crate) fn check_at(
        &self,
        proof: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        access_token: Option<&str>,
        now: u64,
    ) -> ProofCheck {
        let refused = |reason| ProofCheck::Ready(Err(invalid(reason)));
        let mut scratch = Scratch::default();
        let signed =
            match verify_signature(proof, &self.algorithms, self.max_proof_len, &mut scratch) {
                Ok(signed) => signed,
                Err(reason) => return refused(reason),
            };
        let past = self.past.as_secs();
        let expected = Expected {
            method: method.as_str(),
            url: request_url(self.origin.as_ref(), uri, headers),
            ath: access_token.map(access_token_hash),
            now,
            past,
            future: self.future.as_secs(),
        };
        let claims = match check_claims(&signed.claims, &expected) {
            Ok(claims) => claims,
            Err(reason) => return refused(reason),
        };
        let key = replay_key(&signed.jkt, &claims.jti);
        // The proof passes the `iat` check until `iat + past`: keep its record that long.
        let expires_at = claims.iat.saturating_add(past);
        let verified = VerifiedProof {
            jkt: signed.jkt,
            jti: claims.jti,
            iat: claims.iat,
            nonce: claims.nonce,
            algorithm: signed.alg,
            jwk: Box::new(signed.jwk),
        };
        match self.store.check_and_record(&key, expires_at) {
            ReplayCheck::Ready(seen) => ProofCheck::Ready(after_replay_check(seen, verified)),
            ReplayCheck::Pending(seen) => {
                ProofCheck::Pending(Box::pin(
                    async move { after_replay_check(seen.await, verified) },
                ))
            }
        }
    }
}

fn invalid(reason: InvalidDpopProof) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidDpopProof(reason))
}

fn after_replay_check(
    first_sight: Result<bool, ReplayError>,
    proof: VerifiedProof,
) -> Result<VerifiedProof, AuthError> {
    match first_sight {
        Ok(true) => Ok(proof),
        Ok(false) => Err(invalid(InvalidDpopProof::Replayed)),
        Err(error) => {
            tracing::warn!(
                target: "tower_token_auth",
                %error,
                "DPoP replay store cannot answer; refusing the proof"
            );
            Err(AuthError::new(AuthErrorKind::ReplayCheckUnavailable))
        }
    }
}
