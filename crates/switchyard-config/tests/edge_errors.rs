//! Every problem with the edge settings (https, TLS, limits, log, admin history, response
//! headers, compression, rate limits, static files) is reported with its line and column.

mod common;

use common::{APP, check, errors, one};

use switchyard_config::parse_str;

/// A valid https setup to add problems to (lines 1-5, then APP on lines 6-9).
const TLS: &str = "[listen]\nhttps = [\"0.0.0.0:8443\"]\n[[tls.certs]]\ncert = \"a.crt\"\n\
                   key = \"a.key\"\n";

#[test]
fn the_valid_bases_are_valid() {
    assert!(parse_str(APP, "t").is_ok());
    assert!(parse_str(&format!("{TLS}{APP}"), "t").is_ok());
}

#[test]
fn bad_https_listener() {
    one(
        &format!(
            "{APP}[listen]\nhttps = [\"0.0.0.0:443\", \"example.com:443\"]\n\
             [[tls.certs]]\ncert = \"c\"\nkey = \"k\"\n"
        ),
        6,
        25,
        &[
            "listen.https[1]",
            "bad address \"example.com:443\"",
            "IP:PORT",
        ],
    );
}

#[test]
fn https_listener_clashing_with_http_and_admin() {
    let text = format!(
        "[listen]\nhttp = [\"0.0.0.0:8443\"]\nhttps = [\"127.0.0.1:8443\", \"127.0.0.1:9901\"]\n\
         [[tls.certs]]\ncert = \"a.crt\"\nkey = \"a.key\"\n{APP}"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    check(
        &errors[0],
        3,
        10,
        &["listen.https[0]", "overlaps 0.0.0.0:8443 (listen.http[0])"],
    );
    check(
        &errors[1],
        3,
        28,
        &[
            "listen.https[1]",
            "duplicate listener 127.0.0.1:9901",
            "admin.listen (default)",
        ],
    );
    // The same https address twice.
    one(
        &format!(
            "[listen]\nhttps = [\"[::]:443\", \"[::]:443\"]\n[[tls.certs]]\ncert = \"c\"\n\
             key = \"k\"\n{APP}"
        ),
        2,
        22,
        &["listen.https[1]", "duplicate listener [::]:443"],
    );
}

#[test]
fn the_default_http_listener_is_checked_too() {
    one(
        &format!("{APP}[admin]\nlisten = \"127.0.0.1:8080\"\n"),
        6,
        10,
        &[
            "admin.listen",
            "overlaps 0.0.0.0:8080 (listen.http (default))",
        ],
    );
}

#[test]
fn redirect_without_https() {
    one(
        &format!("{APP}[listen]\nhttp = [\"0.0.0.0:80\"]\nredirect_https = true\n"),
        7,
        18,
        &["listen.redirect_https", "no https listener to redirect to"],
    );
}

#[test]
fn no_client_listener_at_all() {
    one(
        &format!("{APP}[listen]\nhttp = []\nhttps = []\n"),
        6,
        8,
        &["listen.http", "no client listener", "`https`"],
    );
}

#[test]
fn https_without_certificates() {
    one(
        &format!("{APP}[listen]\nhttps = [\"0.0.0.0:443\"]\n"),
        6,
        9,
        &["listen.https", "need a certificate", "[[tls.certs]]"],
    );
    one(
        &format!("{APP}[listen]\nhttps = [\"0.0.0.0:443\"]\n[tls]\ncerts = []\n"),
        6,
        9,
        &["listen.https", "need a certificate"],
    );
}

#[test]
fn certificates_without_https() {
    one(
        &format!("{APP}\n[[tls.certs]]\ncert = \"a.crt\"\nkey = \"a.key\"\n"),
        6,
        1,
        &["tls.certs", "no https listener to use them"],
    );
}

#[test]
fn incomplete_certificates() {
    let text = format!(
        "{TLS}[[tls.certs]]\ncert = \"b.crt\"\n[[tls.certs]]\ncert = \"\"\nkey = \"c.key\"\n\
         [[tls.certs]]\nkey = \"d.key\"\ncrt = \"d.crt\"\n{APP}"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    check(
        &errors[0],
        6,
        1,
        &["tls.certs[1]", "a certificate needs `key`"],
    );
    check(
        &errors[1],
        9,
        8,
        &["tls.certs[2].cert", "the path is empty"],
    );
    // An unknown key is taken out (and reported); the missing `cert` is then reported too.
    check(
        &errors[2],
        11,
        1,
        &["tls.certs[3]", "a certificate needs `cert`"],
    );
    check(
        &errors[3],
        13,
        1,
        &[
            "unknown key `crt` in table `tls.certs[3]`",
            "did you mean `cert`?",
        ],
    );
}

#[test]
fn limits_out_of_range() {
    let text =
        format!("{APP}[limits]\nmax_headers = 0\nmax_connections = 0\n[admin]\nhistory = 100001\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    check(
        &errors[0],
        6,
        15,
        &["limits.max_headers", "between 1 and 1000, got 0"],
    );
    check(
        &errors[1],
        7,
        19,
        &["limits.max_connections", "at least 1, got 0"],
    );
    check(
        &errors[2],
        9,
        11,
        &["admin.history", "between 1 and 100000, got 100001"],
    );
    one(
        &format!("{APP}[limits]\nmax_headers = 1001\n"),
        6,
        15,
        &["between 1 and 1000, got 1001"],
    );
}

#[test]
fn bad_log_settings() {
    let errors = errors(&format!("{APP}[log]\nformat = \"xml\"\naccess = \"yes\"\n"));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    check(
        &errors[0],
        6,
        10,
        &[
            "log.format",
            "unknown log format \"xml\"",
            "\"text\" or \"json\"",
        ],
    );
    check(
        &errors[1],
        7,
        10,
        &["log.access", "wrong type", "expected a boolean"],
    );
}

#[test]
fn bad_access_format() {
    let errors = errors(&format!("{APP}[log]\naccess_format = \"common\"\n"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    check(
        &errors[0],
        6,
        17,
        &[
            "log.access_format",
            "unknown access-log format \"common\"",
            "\"text\", \"json\" or \"combined\"",
        ],
    );
}

#[test]
fn bad_upgraded_drain_timeout() {
    one(
        "[services.app]\nactive = \"green\"\nupgraded_drain_timeout = 30\n\
         pools.green = [\"127.0.0.1:5000\"]\n",
        3,
        26,
        &[
            "services.app.upgraded_drain_timeout",
            "found integer `30`",
            "\"250ms\"",
        ],
    );
    one(
        "[services.app]\nactive = \"green\"\nupgraded_drain_timeout = \"soon\"\n\
         pools.green = [\"127.0.0.1:5000\"]\n",
        3,
        26,
        &[
            "services.app.upgraded_drain_timeout",
            "bad duration \"soon\"",
        ],
    );
}

#[test]
fn bad_response_headers() {
    let text = format!(
        "{APP}[services.app.response_headers]\n\"X-Frame-Options\" = \"DENY\"\n\
         \"Bad Name\" = \"x\"\n\"Content-Length\" = \"0\"\n\"X-Evil\" = \"a\\r\\nSet-Cookie: x\"\n\
         \"x-frame-options\" = \"SAMEORIGIN\"\n\"X-Number\" = 1\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    check(
        &errors[0],
        7,
        1,
        &[
            "services.app.response_headers.Bad Name",
            "bad header name \"Bad Name\"",
        ],
    );
    check(
        &errors[1],
        8,
        1,
        &["response_headers.Content-Length", "cannot be set"],
    );
    check(
        &errors[2],
        9,
        12,
        &[
            "response_headers.X-Evil",
            "bad header value",
            "'\\r' is not allowed",
        ],
    );
    check(
        &errors[3],
        10,
        1,
        &[
            "response_headers.x-frame-options",
            "already set as \"X-Frame-Options\"",
            "case-insensitive",
        ],
    );
    check(
        &errors[4],
        11,
        14,
        &[
            "services.app.response_headers.X-Number",
            "wrong type",
            "expected a string",
        ],
    );
}

#[test]
fn bad_compression() {
    let text = format!(
        "{APP}[services.app.compression]\nenabled = true\ngzip = false\nbrotli = false\n\
         min_size = \"1k\"\ntypes = [\"text/html\", \"Text/CSS\", \"text/html\", \"*/*\"]\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    check(
        &errors[0],
        6,
        11,
        &[
            "services.app.compression.enabled",
            "both `gzip` and `brotli` are off",
        ],
    );
    check(
        &errors[1],
        10,
        23,
        &[
            "compression.types[1]",
            "bad content type \"Text/CSS\"",
            "lower case",
        ],
    );
    check(
        &errors[2],
        10,
        35,
        &["compression.types[2]", "\"text/html\" is listed twice"],
    );
    check(
        &errors[3],
        10,
        48,
        &["compression.types[3]", "only allowed as the subtype"],
    );
    one(
        &format!("{APP}[services.app.compression]\nenabled = true\ntypes = []\n"),
        7,
        9,
        &[
            "services.app.compression.types",
            "nothing would be compressed",
        ],
    );
    one(
        &format!("{APP}[services.app.compression]\nmin_size = 1024\n"),
        6,
        12,
        &["compression.min_size", "found integer `1024`", "\"64KiB\""],
    );
    // Turned off, an empty list and no encoding are allowed.
    let off =
        format!("{APP}[services.app.compression]\ngzip = false\nbrotli = false\ntypes = []\n");
    assert!(parse_str(&off, "t").is_ok());
}

#[test]
fn bad_rate_limits() {
    let text = format!(
        "{APP}[[services.app.rate_limits]]\npath_prefix = \"/login/\"\nrate = \"10/s\"\n\
         [[services.app.rate_limits]]\npath_prefix = \"/login\"\nrate = \"10 per second\"\n\
         [[services.app.rate_limits]]\nburst = 100001\n\
         [[services.app.rate_limits]]\npath_prefix = \"login\"\nrate = 10\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    check(
        &errors[0],
        9,
        15,
        &[
            "services.app.rate_limits[1]",
            "already has a rate limit for path prefix \"/login\"",
        ],
    );
    check(
        &errors[1],
        10,
        8,
        &[
            "rate_limits[1].rate",
            "bad rate \"10 per second\"",
            "\"10/s\"",
        ],
    );
    check(
        &errors[2],
        11,
        1,
        &["rate_limits[2]", "a rate limit needs `rate`"],
    );
    check(
        &errors[3],
        12,
        9,
        &["rate_limits[2].burst", "between 0 and 100000, got 100001"],
    );
    check(
        &errors[4],
        14,
        15,
        &["rate_limits[3].path_prefix", "must start with `/`"],
    );
    check(
        &errors[5],
        15,
        8,
        &["rate_limits[3].rate", "wrong type", "\"30/m\""],
    );
}

#[test]
fn two_rate_limits_for_every_path() {
    one(
        &format!(
            "{APP}[[services.app.rate_limits]]\nrate = \"1/s\"\n\
             [[services.app.rate_limits]]\npath_prefix = \"/\"\nrate = \"2/s\"\n"
        ),
        8,
        15,
        &[
            "rate_limits[1]",
            "already has a rate limit for path prefix every path",
        ],
    );
}

#[test]
fn prefixes_must_lie_within_the_service() {
    let text = "[services.app]\npath_prefix = \"/app\"\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n\
                [[services.app.static]]\npath_prefix = \"/static\"\ndir = \"/srv\"\n\
                [[services.app.rate_limits]]\npath_prefix = \"/application\"\nrate = \"1/s\"\n\
                [[services.app.static]]\npath_prefix = \"/app/static\"\ndir = \"/srv\"\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    check(
        &errors[0],
        6,
        15,
        &[
            "services.app.static[0].path_prefix",
            "\"/static\" is outside the service's path_prefix \"/app\"",
        ],
    );
    check(
        &errors[1],
        9,
        15,
        &["rate_limits[0].path_prefix", "\"/application\" is outside"],
    );
}

#[test]
fn bad_static_entries() {
    let text = format!(
        "{APP}[[services.app.static]]\npath_prefix = \"/static\"\ndir = \"/srv/static\"\n\
         [[services.app.static]]\npath_prefix = \"/static/\"\ndir = \"/srv/other\"\n\
         [[services.app.static]]\ndir = \"\"\ncache_control = \"\"\nindex = \"../index.html\"\n\
         [[services.app.static]]\npath_prefix = \"/\"\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    check(
        &errors[0],
        9,
        15,
        &[
            "services.app.static[1]",
            "already has a static entry for path prefix \"/static\"",
        ],
    );
    check(
        &errors[1],
        11,
        1,
        &["static[2]", "a static entry needs `path_prefix`"],
    );
    check(&errors[2], 12, 7, &["static[2].dir", "the path is empty"]);
    check(
        &errors[3],
        13,
        17,
        &["static[2].cache_control", "it is empty"],
    );
    check(
        &errors[4],
        14,
        9,
        &["static[2].index", "bad index file \"../index.html\""],
    );
    check(
        &errors[5],
        15,
        1,
        &["static[3]", "a static entry needs `dir`"],
    );
}

#[test]
fn unknown_keys_in_the_new_tables() {
    let text = format!(
        "{TLS}[log]\nlevel = \"info\"\n{APP}[[services.app.static]]\npath_prefix = \"/s\"\n\
         dir = \"/srv\"\nexpires = \"1h\"\n[services.app.compression]\ngzip_types = []\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    check(
        &errors[0],
        7,
        1,
        &[
            "unknown key `level` in table `log`",
            "allowed keys: format, access",
        ],
    );
    check(
        &errors[1],
        15,
        1,
        &[
            "unknown key `expires` in table `services.app.static[0]`",
            "path_prefix, dir, cache_control, index",
        ],
    );
    check(
        &errors[2],
        17,
        1,
        &[
            "unknown key `gzip_types`",
            "enabled, gzip, brotli, min_size, types",
        ],
    );
}
