//! The answer of the services that publish a JSON document (protected resource metadata,
//! provider metadata, a JWK Set).

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

/// `GET`: 200 with `body()` as `application/json` and `cache_control`; `HEAD`: the same
/// without the body; any other method: 405 with `Allow: GET, HEAD`. Always `nosniff`.
pub(crate) fn json_document_response(
    method: &Method,
    body: impl FnOnce() -> Bytes,
    cache_control: HeaderValue,
) -> Response<Full<Bytes>> {
    let mut res = if method == Method::GET || method == Method::HEAD {
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body()
        };
        let mut res = Response::new(Full::new(body));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, cache_control);
        res
    } else {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        res
    };
    res.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    res
}
