//! The built-in transport: the crate's HTTPS client (feature `http-client`).

use std::fmt;

use super::{
    IntrospectionRequest, IntrospectionResponse, IntrospectionTransport, MAX_RESPONSE_BYTES,
};
use crate::error::ConfigError;
use crate::keys::http::HttpClient;
use crate::keys::remote::BoxError;
use crate::revocation::BoxFuture;

/// Sends introspection requests with the crate's built-in HTTPS client (hyper + rustls, the
/// limits of [`keys::http`](crate::keys::http): connect timeout 5 s, total 10 s; answers over
/// [`MAX_RESPONSE_BYTES`] are refused). Redirects are not followed: the request carries the
/// token and the client's credentials.
#[derive(Clone)]
pub struct HttpTransport {
    client: HttpClient,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport").finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport with its own connection pool.
    pub fn new() -> Result<Self, ConfigError> {
        Ok(Self::with_client(HttpClient::new()?))
    }

    pub(crate) fn with_client(mut client: HttpClient) -> Self {
        client.set_max_body(MAX_RESPONSE_BYTES);
        Self { client }
    }
}

impl IntrospectionTransport for HttpTransport {
    fn send(
        &self,
        request: IntrospectionRequest,
    ) -> BoxFuture<'static, Result<IntrospectionResponse, BoxError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let fetched = client
                .post_form(
                    &request.url,
                    "introspection endpoint",
                    request.headers,
                    request.body,
                )
                .await?;
            Ok(IntrospectionResponse::new(fetched.status, fetched.body))
        })
    }
}
