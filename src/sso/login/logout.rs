//! [`OidcLogout`]: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use super::client::OidcClient;
use super::page::{page, redirect, with_query};
use crate::claims::NoCustomClaims;
use crate::endpoint::TokenCookies;
use crate::lifecycle::TokenLifecycle;
use crate::source::TokenSource;

/// `POST /logout`: ends the local session and sends the browser to the provider to end the
/// single sign-on session there (a tower service; mount it with `route_service`).
///
/// - Only `POST` (405 otherwise), and only from this service's own pages: a request whose
///   `Sec-Fetch-Site` is not `same-origin` or `none`, or, without that header, whose
///   `Origin` is not the redirect URI's origin, is refused with 403 (the crate's cookie-mode
///   CSRF stance, as the quickstart's; requests with neither header are not from a browser
///   and pass).
/// - The local session ends: the access cookie's session ([`TokenLifecycle::logout`]: its
///   refresh family and every access token of it) and the refresh cookie's family
///   ([`TokenLifecycle::revoke`]). A store that cannot answer gives 503 with `Retry-After`
///   and keeps the cookies, so the user can retry.
/// - Both cookies are cleared and the answer is 303 to the provider's
///   `end_session_endpoint` with `client_id` and the configured
///   [`post_logout_redirect_uri`](OidcClient::post_logout_redirect_uri). The ID token is not
///   kept after the login, so no `id_token_hint` is sent: the provider may ask the user to
///   confirm. Without an `end_session_endpoint`, 303 to the post-logout URI (or `/`).
#[derive(Debug, Clone)]
pub struct OidcLogout {
    client: OidcClient,
    lifecycle: TokenLifecycle,
    cookies: TokenCookies,
}

impl OidcLogout {
    /// The logout of `client`'s local sessions, kept by `lifecycle` in `cookies`.
    pub fn new(client: OidcClient, lifecycle: TokenLifecycle, cookies: TokenCookies) -> Self {
        Self {
            client,
            lifecycle,
            cookies,
        }
    }

    /// Whether a browser sent the request from this service's origin.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            return site == "same-origin" || site == "none";
        }
        match headers.get(header::ORIGIN) {
            Some(origin) => origin.as_bytes() == self.client.inner.origin.as_bytes(),
            None => true,
        }
    }

    /// Handles one request: what the [`Service`](tower_service::Service) implementation runs.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let (parts, _body) = req.into_parts();
        if parts.method != Method::POST {
            let mut res = page(StatusCode::METHOD_NOT_ALLOWED, "Sign-out", "Use POST.");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return res;
        }
        if !self.same_origin(&parts.headers) {
            tracing::info!(target: "tower_token_auth", "cross-site logout refused");
            return page(
                StatusCode::FORBIDDEN,
                "Sign-out refused",
                "Cross-site request refused.",
            );
        }
        if let Err(e) = self.end_local_session(&parts.headers).await {
            tracing::warn!(target: "tower_token_auth", error = %e, "logout: ending the local session failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out failed",
                "Signing out is not possible right now. Try again in a moment.",
            );
        }
        let client = &self.client.inner;
        let location = match &client.end_session_endpoint {
            Some(endpoint) => {
                let mut params = vec![("client_id", client.client_id.as_str())];
                if let Some(uri) = &client.post_logout_redirect_uri {
                    params.push(("post_logout_redirect_uri", uri.as_str()));
                }
                with_query(&endpoint.to_string(), &params)
            }
            None => client
                .post_logout_redirect_uri
                .clone()
                .unwrap_or_else(|| "/".to_owned()),
        };
        let mut res = redirect(StatusCode::SEE_OTHER, &location)
            .unwrap_or_else(|| page(StatusCode::OK, "Signed out", "You are signed out."));
        for cookie in self.cookies.clear() {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
        res
    }

    async fn end_local_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<(), crate::lifecycle::LifecycleError> {
        let access = crate::source::extract(
            headers,
            &[TokenSource::Cookie(self.cookies.access().name().to_owned())],
            crate::DEFAULT_MAX_TOKEN_LEN,
        )
        .ok()
        .flatten()
        .and_then(|token| self.lifecycle.verify_access::<NoCustomClaims>(token));
        if let Some(claims) = access {
            self.lifecycle.logout(&claims).await?;
        }
        if let Some(refresh) = self.cookies.refresh_from(headers) {
            self.lifecycle
                .revoke(&refresh, Some("refresh_token"))
                .await?;
        }
        Ok(())
    }
}

crate::handler_service::handler_service!(OidcLogout, any_body);
