//! One `tower::Service` implementation for the crate's endpoint services, each of which is
//! `Clone` and answers with an inherent `handle(req)` method.

/// Implements `Service<Request<B>>` for `$ty` by cloning it and awaiting `handle(req)`; the
/// service is always ready. `read_body` requires `B: Body` (the endpoint reads the body);
/// `any_body` only `B: Send` (it reads the request head only).
macro_rules! handler_service {
    ($ty:ty, read_body) => {
        impl<B> tower_service::Service<http::Request<B>> for $ty
        where
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        {
            $crate::handler_service::handler_service!(@body);
        }
    };
    ($ty:ty, any_body) => {
        impl<B> tower_service::Service<http::Request<B>> for $ty
        where
            B: Send + 'static,
        {
            $crate::handler_service::handler_service!(@body);
        }
    };
    (@body) => {
        type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
        type Error = std::convert::Infallible;
        type Future = $crate::revocation::BoxFuture<
            'static,
            Result<Self::Response, std::convert::Infallible>,
        >;

        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move { Ok(this.handle(req).await) })
        }
    };
}
pub(crate) use handler_service;
