//! `x-request-id` on every answer: the caller's own when it sent one, else a new random
//! v4 UUID, so whoever calls can quote the id of any answer.
//!
//! One layer that stamps the answer: tower-http's pair (`SetRequestId` and
//! `PropagateRequestId`) also writes the id into the request's headers and extensions,
//! allocations on every request that nothing here reads.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Adds [`HEADER`] to every answer of the wrapped service that does not carry one yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id = request.headers().get(&HEADER).cloned().or_else(new_id);
        RequestIdFuture {
            inner: self.inner.call(request),
            id,
        }
    }
}

/// A v4 UUID, as tower-http's `MakeRequestUuid` makes, without its system call per
/// request ([`crate::trace::random_uuid`]).
/// (Always `Some`: hex digits and hyphens are valid in a header value.)
fn new_id() -> Option<HeaderValue> {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = crate::trace::random_uuid()
        .hyphenated()
        .encode_lower(&mut buffer);
    HeaderValue::from_str(id).ok()
}

pin_project_lite::pin_project! {
    /// The wrapped service's answer, with the id added.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            // An answer that already names an id keeps it.
            response.headers_mut().entry(HEADER).or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;

    async fn answer(request: Request<()>, preset: Option<&'static str>) -> Response<()> {
        let inner = tower::service_fn(move |_: Request<()>| async move {
            let mut response = Response::new(());
            if let Some(id) = preset {
                response
                    .headers_mut()
                    .insert(HEADER, HeaderValue::from_static(id));
            }
            Ok::<_, Infallible>(response)
        });
        RequestIdLayer.layer(inner).oneshot(request).await.unwrap()
    }

    fn id_of(response: &Response<()>) -> &str {
        response.headers()[&HEADER].to_str().unwrap()
    }

    #[tokio::test]
    async fn the_callers_id_comes_back() {
        let request = Request::builder()
            .header("x-request-id", "abc-123")
            .body(())
            .unwrap();
        assert_eq!(id_of(&answer(request, None).await), "abc-123");
    }

    #[tokio::test]
    async fn without_one_each_answer_gets_a_new_v4_uuid() {
        let first = answer(Request::new(()), None).await;
        let second = answer(Request::new(()), None).await;
        let (a, b) = (id_of(&first), id_of(&second));
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(id, parsed.hyphenated().to_string());
        }
    }

    #[tokio::test]
    async fn an_answer_that_names_its_own_id_keeps_it() {
        let request = Request::builder()
            .header("x-request-id", "theirs")
            .body(())
            .unwrap();
        let response = answer(request, Some("handler-set")).await;
        assert_eq!(id_of(&response), "handler-set");
        assert_eq!(response.headers().get_all(&HEADER).iter().count(), 1);
    }
}
