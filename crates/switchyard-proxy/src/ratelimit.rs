//! The answer to a request over a per-client rate limit: 429 with `Retry-After`.
//!
//! The limiters themselves (`[[services.NAME.rate_limits]]`, nginx `limit_req … nodelay`) are
//! token buckets in `switchyard_core::ratelimit`, carried by each service of the snapshot: the
//! request path checks the service it was routed to, with no look-up by name.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;

/// The 429 answer: `Retry-After` in whole seconds, rounded up, at least 1.
pub(crate) fn too_many_requests(retry_after: Duration) -> Response<ProxyBody> {
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    let mut resp = Response::new(ProxyBody::full(format!(
        "Too Many Requests: rate limit exceeded; retry in {secs} s\n"
    )));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let secs = |d: Duration| {
            too_many_requests(d).headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert_eq!(secs(Duration::ZERO), "1");
        assert_eq!(secs(ms(1)), "1");
        assert_eq!(secs(ms(1000)), "1");
        assert_eq!(secs(ms(1001)), "2");
        assert_eq!(secs(ms(2500)), "3");
        assert_eq!(secs(Duration::from_secs(60)), "60");
    }

    #[tokio::test]
    async fn the_429_answer_is_short_plain_text() {
        let resp = too_many_requests(ms(1500));
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            body,
            "Too Many Requests: rate limit exceeded; retry in 2 s\n"
        );
    }
}
