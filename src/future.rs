//! The response future of [`JwtAuth`](crate::JwtAuth).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::authentication::Authentication;
use crate::body::AuthBody;
use crate::error::{AuthError, ErrorResponder};
use crate::revocation::BoxFuture;

/// An authentication step that needs I/O (a remote revocation check, or a key refetch): what
/// goes into the request, or why it is refused.
pub(crate) type PendingCheck = BoxFuture<'static, Result<Authentication, AuthError>>;

pin_project! {
    /// Response future of [`JwtAuth`](crate::JwtAuth).
    ///
    /// A request is rejected without touching the inner service, waits for a remote
    /// revocation check, or runs the inner service.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        Rejected {
            response: Option<Response<Bytes>>,
        },
        Checking {
            check: PendingCheck,
            request: Option<Request<B>>,
            inner: Option<S>,
            responder: Arc<dyn ErrorResponder>,
        },
        Calling {
            #[pin]
            future: F,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn checking(
        check: PendingCheck,
        request: Request<B>,
        inner: S,
        responder: Arc<dyn ErrorResponder>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                request: Some(request),
                inner: Some(inner),
                responder,
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(AuthBody::full)));
                }
                StateProj::Checking {
                    check,
                    request,
                    inner,
                    responder,
                } => {
                    let error = match ready!(check.as_mut().poll(cx)) {
                        Ok(authentication) => match (inner.take(), request.take()) {
                            (Some(mut inner), Some(mut request)) => {
                                request.extensions_mut().insert(authentication);
                                let future = inner.call(request);
                                state.set(State::Calling { future });
                                continue;
                            }
                            _ => panic!("ResponseFuture polled after completion"),
                        },
                        Err(e) => {
                            crate::error::log_rejection(&e);
                            e
                        }
                    };
                    let response = responder.respond(&error);
                    state.set(State::Rejected {
                        response: Some(response),
                    });
                }
                StateProj::Calling { future } => {
                    return future
                        .poll(cx)
                        .map(|r| r.map(|res| res.map(AuthBody::inner)));
                }
            }
        }
    }
}
