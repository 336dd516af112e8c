//! Tests of the response-head parser, its framing decisions and the fields it passes on.

use super::*;

fn parse(text: &str) -> Result<ParseOutcome, HeadError> {
    parse_response_head(text.as_bytes(), false, 64 * 1024)
}

fn head(text: &str) -> ResponseHead {
    match parse(text) {
        Ok(ParseOutcome::Complete(h)) => h,
        other => panic!("not a complete head: {other:?}"),
    }
}

#[test]
fn framing_follows_the_rfc() {
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        (h.status, h.framing, h.keep_alive),
        (200, BodyFraming::Length(5), true)
    );
    assert_eq!(h.head_len, 38);
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
    let h = head("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
    let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (BodyFraming::Empty, true));
    let h = head("HTTP/1.1 304 Not Modified\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Empty);
    let h = head("HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Empty);
    let h = head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (BodyFraming::Empty, false));
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Empty);
    let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true, 1024);
    assert!(matches!(
        h,
        Ok(ParseOutcome::Complete(ResponseHead {
            framing: BodyFraming::Empty,
            ..
        }))
    ));
}

#[test]
fn connection_reuse() {
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(
        head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").keep_alive
    );
    let both = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        (both.framing, both.keep_alive),
        (BodyFraming::Chunked, false)
    );
}

#[test]
fn ambiguous_heads_are_refused() {
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    ] {
        assert!(
            matches!(parse(bad), Err(HeadError::Malformed(_))),
            "{bad:?}"
        );
    }
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(5));
}

/// Found by the `response_head` fuzz target: an empty `Transfer-Encoding` was ignored, so
/// the `Content-Length` beside it framed the body, where hyper reads until close (and
/// refuses it in HTTP/1.0); an empty element after `chunked` was skipped, where hyper does
/// not read the body as chunked.
#[test]
fn empty_transfer_codings_count() {
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
    for bad in [
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
    ] {
        assert!(
            matches!(parse(bad), Err(HeadError::Malformed(_))),
            "{bad:?}"
        );
    }
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
}

/// Found by the `response_head` fuzz target: an HTTP/1.0 `Connection: keep-alive` with
/// bytes past ASCII in the value kept the connection, where hyper closes it.
#[test]
fn keep_alive_needs_a_readable_connection_field() {
    let text = b"HTTP/1.0 200 OK\r\nConnection: keep-alive, x\xc1\r\nContent-Length: 0\r\n\r\n";
    let Ok(ParseOutcome::Complete(h)) = parse_response_head(text, false, 1024) else {
        panic!("not a complete head");
    };
    assert!(!h.keep_alive);
    let text = b"HTTP/1.1 200 OK\r\nConnection: close, x\xc1\r\nContent-Length: 0\r\n\r\n";
    let Ok(ParseOutcome::Complete(h)) = parse_response_head(text, false, 1024) else {
        panic!("not a complete head");
    };
    assert!(!h.keep_alive, "a close counts anyway");
}

/// Found by the `response_head` fuzz target: hyper cannot read a `Transfer-Encoding` value
/// with bytes past ASCII and reads the body until close, where the codec saw `chunked`.
#[test]
fn transfer_encoding_must_be_ascii() {
    let text = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gz\x9fip, chunked\r\n\r\n";
    assert_eq!(
        parse_response_head(text, false, 1024),
        Err(HeadError::Malformed("Transfer-Encoding is not ASCII"))
    );
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\tchunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
}

/// Found by the `response_head` fuzz target: hyper refuses a `Content-Length` above
/// `u64::MAX - 2`, which the codec took as a length.
#[test]
fn content_length_limit_is_hyper_s() {
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551613\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(u64::MAX - 2));
    for over in ["18446744073709551614", "18446744073709551615"] {
        let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {over}\r\n\r\n");
        assert_eq!(
            parse(&text),
            Err(HeadError::Malformed("bad Content-Length")),
            "{over}"
        );
    }
}

#[test]
fn partial_and_too_large() {
    assert_eq!(
        parse("HTTP/1.1 200 OK\r\nContent-Le"),
        Ok(ParseOutcome::Partial)
    );
    assert_eq!(parse(""), Ok(ParseOutcome::Partial));
    let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(100));
    assert_eq!(
        parse_response_head(long.as_bytes(), false, 64),
        Err(HeadError::TooLarge)
    );
    let many: String = (0..600).map(|i| format!("X-{i}: v\r\n")).collect();
    let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert_eq!(
        parse_response_head(text.as_bytes(), false, 1 << 20),
        Err(HeadError::TooManyFields)
    );
    let some: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let text = format!("HTTP/1.1 200 OK\r\n{some}Content-Length: 0\r\n\r\n");
    let h = match parse_response_head(text.as_bytes(), false, 1 << 20) {
        Ok(ParseOutcome::Complete(h)) => h,
        other => panic!("{other:?}"),
    };
    assert_eq!(h.fields.len(), 101);
}

#[test]
fn header_map_strips_hop_by_hop_and_shares_memory() {
    let text = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nContent-Length: 12\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-App: v\r\n\r\n";
    let bytes = Bytes::from(text);
    let h = head(text);
    let map = h.header_map(&bytes).expect("map");
    assert_eq!(map.get_all("set-cookie").iter().count(), 2);
    assert_eq!(map.get("x-app").map(HeaderValue::as_bytes), Some(&b"v"[..]));
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ] {
        assert!(map.get(gone).is_none(), "{gone}");
    }
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
    let map = head(text).header_map(&Bytes::from(text)).expect("map");
    assert_eq!(map.get_all("content-length").iter().count(), 1);
    assert_eq!(
        head(text).field(text.as_bytes(), "CONTENT-LENGTH"),
        Some(&b"3"[..])
    );
}

/// The fields a plain head passes on as bytes are those its header map holds, in the
/// head's order and the upstream's case; a head that is not plain gives none.
#[test]
fn client_fields_are_the_header_map_s() {
    let text = "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nX-App: v\r\nKeep-Alive: timeout=5\r\nTE: x\r\nTrailer: t\r\nUpgrade: u\r\nProxy-Connection: c\r\nProxy-Authenticate: p\r\nContent-Length: 12\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n";
    let h = head(text);
    assert!(h.plain);
    assert_eq!(h.content_length, Some(12));
    let passed: Vec<_> = h
        .client_fields(text.as_bytes())
        .expect("plain")
        .map(|f| (f.name, f.value))
        .collect();
    let expected: Vec<(&[u8], &[u8])> = vec![
        (b"X-App", b"v"),
        (b"Content-Length", b"12"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ];
    assert_eq!(passed, expected);
    let map = h.header_map(&Bytes::from(text)).expect("map");
    assert_eq!(map.len(), passed.len());
    for (name, value) in passed {
        let name = std::str::from_utf8(name)
            .expect("ascii")
            .to_ascii_lowercase();
        assert!(
            map.get_all(name.as_str())
                .iter()
                .any(|v| v.as_bytes() == value)
        );
    }
    // A chunked body's Content-Length is not passed on.
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n";
    let h = head(text);
    let passed: Vec<_> = h
        .client_fields(text.as_bytes())
        .expect("plain")
        .map(|f| (f.name, f.value))
        .collect();
    assert_eq!(passed, vec![(&b"X"[..], &b"y"[..])]);
    for not_plain in [
        "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
    ] {
        let h = head(not_plain);
        assert!(!h.plain, "{not_plain:?}");
        assert!(h.client_fields(not_plain.as_bytes()).is_none());
    }
}
