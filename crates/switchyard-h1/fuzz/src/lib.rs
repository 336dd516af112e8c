//! The differential checks behind the fuzz targets: each feeds the same bytes to one of
//! Switchyard's HTTP/1 parsers and to hyper (over an in-memory duplex), and panics when they
//! disagree in a way that is not one of the deliberate differences listed in its module.
//!
//! - [`response`]: `switchyard_h1::parse_response_head` (and the body it frames) against
//!   hyper's HTTP/1 client;
//! - [`chunked`]: `switchyard_h1::ChunkedDecoder` against hyper's client, itself fed in
//!   pieces, and against the proxy's chunked tracker;
//! - [`request`]: the proxy's request-head judge and chunked tracker
//!   (`switchyard-proxy/src/framing/{head,chunked}.rs`), and the head reading of its HTTP/1
//!   server side (`switchyard-proxy/src/server/h1/head.rs`), against hyper's HTTP/1 server.
//!
//! The proxy's three files are compiled here as they are, with `#[path]`: they depend on
//! nothing but `switchyard_h1`, `httparse`, `http` and `bytes`, so the fuzz build needs neither
//! the proxy crate nor its other dependencies.

#![forbid(unsafe_code)]

pub mod chunked;
mod decode;
mod peer;
pub mod request;
pub mod response;

/// The proxy's request-head judge, compiled from its own source.
#[allow(dead_code)]
#[path = "../../../switchyard-proxy/src/framing/head.rs"]
mod judge;

/// The head reading of the proxy's HTTP/1 server side, compiled from its own source.
#[allow(dead_code)]
#[path = "../../../switchyard-proxy/src/server/h1/head.rs"]
mod server_head;

/// The proxy's chunked tracker, compiled from its own source.
#[allow(dead_code)]
#[path = "../../../switchyard-proxy/src/framing/chunked.rs"]
mod tracker;

#[cfg(test)]
mod tests {
    /// The harness reaches hyper: a run where hyper refused everything would check nothing.
    #[test]
    fn hyper_answers_through_the_duplex() {
        let a = crate::peer::fetch(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\nA: b\r\n\r\n",
            512,
        )
        .expect("hyper reads the response");
        assert_eq!((a.status.as_u16(), &a.body.data[..]), (200, &b"hello"[..]));
        let trailers = a.body.end.expect("a clean end").expect("trailers");
        assert_eq!(trailers.get("a").map(|v| v.as_bytes()), Some(&b"b"[..]));
        let seen = crate::peer::serve(
            b"GET / HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
              GET /y HTTP/1.0\r\n\r\nGET /z HTTP/1.1\r\n\r\n",
            100,
        );
        let paths: Vec<_> = seen.iter().map(|s| s.uri.path()).collect();
        assert_eq!(
            paths,
            ["/", "/x", "/y"],
            "HTTP/1.0 without keep-alive ends it"
        );
        assert_eq!(seen[1].body.data, b"abc");
    }
}

#[cfg(test)]
mod long_inputs {
    //! Inputs longer than a fuzz run's length limit: the 16 KiB extension limit, where hyper
    //! fails the body at the 16384th extension byte.

    #[test]
    fn extension_limit_is_hyper_s() {
        for ext in [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1] {
            let mut input = vec![0, 0];
            input.extend_from_slice(format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(ext)).as_bytes());
            crate::chunked::check(&input);
        }
    }
}
