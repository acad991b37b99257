//! The provider's side of OpenID Connect RP-Initiated Logout 1.0 (the
//! `end_session_endpoint`): which session an `id_token_hint` names, and where the browser
//! may be sent afterwards.
//!
//! A hint counts only when it verifies (this provider's ID token: signature, issuer, `typ`)
//! and its audience holds the request's `client_id`; otherwise the provider asks the user
//! (a GET alone must not sign anyone out on a third party's say-so). The browser goes back
//! only to a `post_logout_redirect_uri` registered for the client, byte for byte.

use std::collections::HashMap;

use crate::NoCustomClaims;
use crate::Verifier;
use crate::sso::clients::ClientRegistry;

/// The `(sub, sid)` of the session the request's `id_token_hint` names, verified with
/// `id_tokens` (the provider's ID tokens) and issued to the request's `client_id`; `None`
/// for a missing, invalid or another client's hint, or one without `sub` and `sid`.
pub fn hinted_session(
    id_tokens: &Verifier,
    params: &HashMap<String, String>,
) -> Option<(String, String)> {
    let hint = params.get("id_token_hint")?;
    let claims = id_tokens.verify::<NoCustomClaims>(hint).ok()?;
    let client = params.get("client_id").map_or("", String::as_str);
    if !claims.aud.as_ref().is_some_and(|a| a.contains(client)) {
        return None;
    }
    claims.sub.clone().zip(claims.sid.clone())
}

/// Where to send the browser after the logout: the request's `post_logout_redirect_uri` when
/// it is registered for its `client_id`, with the request's `state` (if any) added to its
/// query; `None` otherwise (show a signed-out page).
pub fn post_logout_redirect(
    clients: &ClientRegistry,
    params: &HashMap<String, String>,
) -> Option<String> {
    let client = clients.get(params.get("client_id")?)?;
    let uri = params.get("post_logout_redirect_uri")?;
    if !client.allows_post_logout_redirect_uri(uri) {
        return None;
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(state) = params.get("state").filter(|s| !s.is_empty()) {
        query.append_pair("state", state);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    Some(format!("{uri}{sep}{}", query.finish()))
}
