//! The rules of the edge settings (TLS, limits, log, admin history, response headers,
//! compression, rate limits, static files), shared by the file checks and `Config::validate`.

use super::IntRule;

/// `admin.history`.
pub(crate) const HISTORY: IntRule = IntRule {
    min: 1,
    max: 100_000,
};
/// `limits.max_headers`.
pub(crate) const MAX_HEADERS: IntRule = IntRule { min: 1, max: 1000 };
/// `limits.max_connections`.
pub(crate) const MAX_CONNECTIONS: IntRule = IntRule {
    min: 1,
    max: i64::MAX,
};
/// `rate_limits[].burst`.
pub(crate) const BURST: IntRule = IntRule {
    min: 0,
    max: 100_000,
};

/// Headers a service may not set on its responses: they frame the message or belong to one
/// connection, so a fixed value would break responses (`content-encoding` is compression's).
const RESERVED_HEADERS: [&str; 9] = [
    "connection",
    "content-encoding",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A `tchar` of RFC 9110: what header names and MIME type parts are made of.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A response header name: a non-empty token, not a reserved header.
pub(crate) fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(format!(
            "bad header name \"{name}\": use letters, digits and !#$%&'*+-.^_`|~ only, \
             e.g. \"X-Frame-Options\""
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "header \"{name}\" cannot be set: it frames the response or belongs to one \
             connection, and a fixed value would break responses"
        ));
    }
    Ok(())
}

/// A header value: visible ASCII, spaces and tabs (no line breaks, no control characters).
pub(crate) fn header_value(value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|&c| !(c == ' ' || c == '\t' || c.is_ascii_graphic()))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "bad header value {value:?}: {c:?} is not allowed; use visible ASCII characters, \
             spaces and tabs only"
        )),
    }
}

/// An entry of `compression.types`: lower-case `type/subtype` or `type/*`.
pub(crate) fn mime_type(text: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "bad content type \"{text}\": {why}; write a lower-case type such as \
             \"application/json\", or \"text/*\" for every text type"
        )
    };
    let Some((kind, subtype)) = text.split_once('/') else {
        return Err(bad("the `/` is missing"));
    };
    if text.contains(';') {
        return Err(bad(
            "parameters such as `; charset` are ignored when matching",
        ));
    }
    if text.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("it must be lower case"));
    }
    if kind == "*" {
        return Err(bad(
            "`*` is only allowed as the subtype (already-compressed types such as images \
             and archives would be compressed again)",
        ));
    }
    let token = |part: &str| !part.is_empty() && part.chars().all(is_tchar) && !part.contains('*');
    if !token(kind) || !(subtype == "*" || token(subtype)) {
        return Err(bad("not a type/subtype pair"));
    }
    Ok(())
}

/// Responses cannot be compressed with no encoding offered, or for no content type.
pub(crate) fn compression(gzip: bool, brotli: bool, no_types: bool) -> Result<(), String> {
    if !gzip && !brotli {
        Err("compression is enabled but both `gzip` and `brotli` are off".to_string())
    } else if no_types {
        Err("compression is enabled but `types` is empty, so nothing would be compressed".into())
    } else {
        Ok(())
    }
}

/// `static[].path_prefix`: as a service's `path_prefix`, but `/` (the whole site) stays `/`.
pub(crate) fn static_prefix(text: &str) -> Result<String, String> {
    Ok(super::path_prefix(text)?.unwrap_or_else(|| "/".to_string()))
}

/// A static or rate-limit `prefix` must lie within the service's own `path_prefix`, or the
/// service would never see the requests it names.
pub(crate) fn within_service(prefix: &str, service: Option<&str>) -> Result<(), String> {
    let Some(service) = service else {
        return Ok(());
    };
    let inside = prefix
        .strip_prefix(service)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if inside {
        Ok(())
    } else {
        Err(format!(
            "path prefix \"{prefix}\" is outside the service's path_prefix \"{service}\", so no \
             request for it reaches this service (prefixes are whole request paths)"
        ))
    }
}

/// A rate in requests per second.
pub(crate) fn rate(rate: f64) -> Result<(), String> {
    if rate > 0.0 && rate.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "must be more than 0 requests per second, got {rate}"
        ))
    }
}

/// `static[].index`: a file name inside the requested directory.
pub(crate) fn index_file(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        Err(format!(
            "bad index file \"{name}\": write a file name such as \"index.html\", without `/`"
        ))
    } else {
        Ok(())
    }
}

/// `tls.certs[].cert`, `.key` and `static[].dir`: a path that is not empty.
pub(crate) fn non_empty_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the path is empty".to_string())
    } else {
        Ok(())
    }
}

/// For each item (in order) equal to an earlier one: its index and the earlier one's.
pub(crate) fn repeats<T: PartialEq>(items: &[T]) -> Vec<(usize, usize)> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            items[..i]
                .iter()
                .position(|earlier| earlier == item)
                .map(|earlier| (i, earlier))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_values() {
        assert_eq!(header_name("Strict-Transport-Security"), Ok(()));
        assert_eq!(header_name("x_y.z~1"), Ok(()));
        for bad in ["", "X Frame", "X:Y", "Ünicode", "a\r\nb"] {
            assert!(header_name(bad).is_err(), "{bad}");
        }
        let reserved = header_name("Content-Length").expect_err("reserved");
        assert!(reserved.contains("cannot be set"), "{reserved}");
        assert_eq!(header_value("max-age=31536000; includeSubDomains"), Ok(()));
        assert_eq!(header_value("a\tb"), Ok(()));
        assert_eq!(header_value(""), Ok(()));
        for bad in ["a\r\nb", "a\nb", "é", "\u{7f}"] {
            assert!(header_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mime_types() {
        for ok in [
            "text/html",
            "text/*",
            "image/svg+xml",
            "application/vnd.api+json",
        ] {
            assert_eq!(mime_type(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("text", "`/` is missing"),
            ("Text/HTML", "lower case"),
            ("text/html; charset=utf-8", "parameters"),
            ("*/*", "only allowed as the subtype"),
            ("text/", "not a type/subtype"),
            ("te xt/html", "not a type/subtype"),
            ("text/ht*", "not a type/subtype"),
        ] {
            let err = mime_type(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(static_prefix("/"), Ok("/".to_string()));
        assert_eq!(static_prefix("/static/"), Ok("/static".to_string()));
        assert!(static_prefix("static").is_err());
        assert_eq!(within_service("/api/static", Some("/api")), Ok(()));
        assert_eq!(within_service("/api", Some("/api")), Ok(()));
        assert_eq!(within_service("/", None), Ok(()));
        assert!(within_service("/apis", Some("/api")).is_err());
        assert!(within_service("/", Some("/api")).is_err());
    }

    #[test]
    fn small_rules() {
        assert!(index_file("index.html").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(index_file(bad).is_err(), "{bad}");
        }
        assert!(rate(0.0).is_err());
        assert!(rate(f64::INFINITY).is_err());
        assert!(rate(f64::NAN).is_err());
        assert!(compression(false, false, false).is_err());
        assert!(compression(true, false, true).is_err());
        assert_eq!(repeats(&[1, 2, 1, 3, 2]), [(2, 0), (4, 1)]);
    }
}
