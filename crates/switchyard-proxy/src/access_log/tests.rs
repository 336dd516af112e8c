//! The access log's line formats, escapes and clock.

use super::line::{escaped, hex_escaped};
use super::*;
use http::{HeaderValue, Method};

fn sample<'a>(id: &'a HeaderValue, method: &'a Method) -> RequestLog<'a> {
    RequestLog {
        client: "127.0.0.1:4000",
        method,
        version: http::Version::HTTP_11,
        path: "/a\"b\\c\u{1}",
        query: Some("x=1&y=\"2\""),
        status: 200,
        service: Some("app"),
        pool: Some("green"),
        upstream: Some("127.0.0.1:5000".parse().expect("addr")),
        attempts: 2,
        bytes_in: Some(5),
        bytes_out: None,
        duration: Duration::from_micros(1_076_962),
        at: Instant::now(),
        request_id: id.to_str().ok(),
        error: None,
        referer: None,
        user_agent: Some(b"curl/8.1 \"x\""),
    }
}

#[test]
fn line_times_follow_the_monotonic_clock_from_a_recent_reading_and_read_it_again_later() {
    let t0 = Instant::now();
    let mut p = Pending {
        buf: Vec::new(),
        second: u64::MAX,
        stamp: [b'0'; 19],
        local: [b'0'; 26],
        clock: Some((t0, Duration::from_secs(1_000))),
    };
    let ms = Duration::from_millis;
    // Within a second of the reading, either side: the reading plus (or minus) the gap.
    assert_eq!(
        p.since_epoch(t0 + ms(300)),
        Duration::from_secs(1_000) + ms(300)
    );
    if let Some(before) = t0.checked_sub(ms(200)) {
        assert_eq!(p.since_epoch(before), Duration::from_secs(1_000) - ms(200));
    }
    // Further away: the system clock is read again (a real date, not the fake reading).
    let later = p.since_epoch(t0 + ms(5_000));
    assert!(later > Duration::from_secs(1_700_000_000), "{later:?}");
    let Some((read_at, wall)) = p.clock else {
        panic!("a new reading is kept");
    };
    assert!(read_at >= t0);
    assert_eq!(later, wall + (t0 + ms(5_000) - read_at));
}

#[test]
fn json_lines_parse_and_escape_client_strings() {
    let id = HeaderValue::from_static("abc");
    let method = Method::GET;
    let mut buf = Vec::new();
    let stamp = *b"2026-12-03T23:18:41";
    keyed_line::<true>(&mut buf, &stamp, 42, &sample(&id, &method));
    assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
    let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
    assert_eq!(v["timestamp"], "2026-12-03T23:18:41.000042Z");
    assert_eq!(v["target"], "switchyard::access");
    let f = &v["fields"];
    assert_eq!(f["path"], "/a\"b\\c\u{1}");
    assert_eq!(f["query"], "x=1&y=\"2\"");
    assert_eq!(f["status"], 200);
    assert_eq!(f["attempts"], 2);
    assert_eq!(f["bytes_out"], 0);
    assert_eq!(f["duration_ms"], 1076.962);
    assert_eq!(f["upstream"], "127.0.0.1:5000");
    assert_eq!(f["error"], "-");
}

#[test]
fn text_lines_are_one_line_with_quoted_strings() {
    let id = HeaderValue::from_static("abc");
    let method = Method::POST;
    let mut buf = Vec::new();
    keyed_line::<false>(&mut buf, b"2026-12-03T23:18:41", 7, &sample(&id, &method));
    let line = String::from_utf8(buf).expect("utf-8");
    assert_eq!(
        line,
        "2026-12-03T23:18:41.000007Z  INFO switchyard::access: client=127.0.0.1:4000 method=POST path=\"/a\\\"b\\\\c\\u0001\" query=\"x=1&y=\\\"2\\\"\" status=200 service=\"app\" colour=\"green\" upstream=127.0.0.1:5000 attempts=2 bytes_in=5 bytes_out=0 duration_ms=1076.962 request_id=\"abc\" error=\"-\"\n"
    );
}

#[test]
fn stamps_are_rfc3339_and_common_log_seconds() {
    let (iso, local) = stamps(Duration::from_secs(1_764_803_921));
    assert_eq!(&iso, b"2025-12-03T23:18:41");
    assert_eq!(&local, b"03/Dec/2025:23:18:41 +0000");
    let (iso, local) = stamps(Duration::ZERO);
    assert_eq!(&iso, b"1970-01-01T00:00:00");
    assert_eq!(&local, b"01/Jan/1970:00:00:00 +0000");
}

#[test]
fn combined_lines_are_nginx_combined() {
    let id = HeaderValue::from_static("abc");
    let method = Method::POST;
    let mut log = sample(&id, &method);
    let mut buf = Vec::new();
    combined_line(&mut buf, b"03/Dec/2026:23:18:41 +0000", &log);
    // The address without its port, the time in brackets, the request line with the query,
    // 0 body bytes when not known, `-` for a missing field, nginx's escapes.
    assert_eq!(
        String::from_utf8(buf).expect("utf-8"),
        "127.0.0.1 - - [03/Dec/2026:23:18:41 +0000] \"POST /a\\x22b\\x5Cc\\x01?x=1&y=\\x222\\x22 HTTP/1.1\" 200 0 \"-\" \"curl/8.1 \\x22x\\x22\"\n"
    );
    log.client = "[::1]:8080";
    log.path = "/";
    log.query = None;
    log.version = http::Version::HTTP_2;
    log.bytes_out = Some(1234);
    log.referer = Some(b"https://shop.test/\xc3\xa9");
    log.user_agent = Some(b"");
    let mut buf = Vec::new();
    combined_line(&mut buf, b"03/Dec/2026:23:18:41 +0000", &log);
    assert_eq!(
        String::from_utf8(buf).expect("utf-8"),
        "::1 - - [03/Dec/2026:23:18:41 +0000] \"POST / HTTP/2.0\" 200 1234 \"https://shop.test/\\xC3\\xA9\" \"-\"\n"
    );
}

#[test]
fn combined_escapes_are_nginx_escapes_for_every_byte() {
    for b in 0u8..=255 {
        let mut buf = Vec::new();
        hex_escaped(&mut buf, &[b'a', b, b'b']);
        let plain = (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\';
        let expected = if plain {
            vec![b'a', b, b'b']
        } else {
            format!("a\\x{b:02X}b").into_bytes()
        };
        assert_eq!(buf, expected, "{b:#x}");
    }
}

#[test]
fn long_strings_are_escaped_wherever_the_byte_falls() {
    // Past the eight-byte words: every escaped byte, and multi-byte UTF-8, at every offset
    // of a 24-byte string.
    let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', '\u{7f}'];
    for special in specials {
        for at in 0..24 {
            let mut s: String = "é-/path?q=1&ключ=ü".chars().cycle().take(24).collect();
            s.insert(
                s.char_indices().nth(at).map_or(s.len(), |(i, _)| i),
                special,
            );
            let mut buf = Vec::new();
            escaped(&mut buf, &s);
            let text = String::from_utf8(buf).expect("utf-8");
            // No raw control byte is left; quotes and backslashes are checked by reading
            // the text back as a JSON string, which they would break or change.
            assert!(
                !text.bytes().any(|b| b < 0x20 || b == 0x7f),
                "{special:?} at {at}: {text:?}"
            );
            let back: String = serde_json::from_str(&format!("\"{text}\"")).expect("json");
            assert_eq!(back, s, "{special:?} at {at}");
        }
    }
    let mut buf = Vec::new();
    escaped(&mut buf, "0123456789abcdef0123456789abcdef");
    assert_eq!(buf, b"0123456789abcdef0123456789abcdef");
}

#[test]
fn every_byte_that_needs_it_is_escaped_and_no_other() {
    for b in 0u8..=127 {
        let s = format!("a{}b", char::from(b));
        let mut buf = Vec::new();
        escaped(&mut buf, &s);
        let text = String::from_utf8(buf).expect("utf-8");
        let plain = !(b < 0x20 || b == 0x7f || b == b'"' || b == b'\\');
        assert_eq!(text == s, plain, "{b:#x}: {text:?}");
        // Whatever was escaped reads back as the same string in JSON.
        let back: String = serde_json::from_str(&format!("\"{text}\"")).expect("json");
        assert_eq!(back, s, "{b:#x}");
    }
}

#[test]
fn a_file_is_written_by_the_request_path_once_64_kib_are_buffered_and_the_rest_at_close() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("access.log");
    let log = AccessLog::start(AccessFormat::Text, AccessSink::File(path.clone()))
        .expect("the file opens");
    let id = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
    let method = Method::GET;
    let line = sample(&id, &method);
    let file_len = || std::fs::metadata(&path).map_or(0, |m| m.len());
    // Below 64 KiB the request path writes nothing; the writer thread's first turn comes
    // 100 ms after the start, long after these few hundred appends (were it to come first,
    // the file would hold less than 64 KiB and the test would fail, not pass).
    let mut lines = 0;
    loop {
        log.write(&line);
        lines += 1;
        let written = file_len();
        if written > 0 {
            // The call that passed 64 KiB wrote every line buffered, itself: the file holds
            // just enough lines to pass 64 KiB, the last of them this call's.
            let text = std::fs::read_to_string(&path).expect("the file reads");
            assert_eq!(text.lines().count(), lines);
            let line_len = written / lines as u64;
            assert_eq!(written % lines as u64, 0, "lines of one length");
            assert!(
                written >= WAKE_AT as u64,
                "{written} bytes after {lines} lines"
            );
            assert!(
                written - line_len < WAKE_AT as u64,
                "{written} bytes after {lines} lines"
            );
            assert!(
                text.lines()
                    .all(|l| l.contains("request_id=\"0123456789abcdef"))
            );
            break;
        }
        assert!(lines < 10 * WAKE_AT, "nothing written after {lines} lines");
    }
    // What is buffered after that goes out when the log closes.
    log.write(&line);
    log.write(&line);
    log.close();
    let text = std::fs::read_to_string(&path).expect("the file reads");
    assert_eq!(text.lines().count(), lines + 2);
}
