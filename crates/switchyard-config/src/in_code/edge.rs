//! `Config::validate` for the edge settings: https listeners and certificates, limits, the
//! admin history, and each service's response headers, compression, rate limits and static
//! files.

use super::Problems;
use crate::rules;
use crate::types::{Config, ServiceConfig};

impl Config {
    /// The process-wide edge settings.
    pub(super) fn check_edge(&self, problems: &mut Problems) {
        let listen = &self.listen;
        if listen.redirect_https && listen.https.is_empty() {
            problems.push(
                "listen.redirect_https",
                "there is no https listener to redirect to",
            );
        }
        if !listen.https.is_empty() && self.tls.certs.is_empty() {
            problems.push(
                "listen.https",
                "https listeners need a certificate: tls.certs is empty",
            );
        }
        if listen.https.is_empty() && !self.tls.certs.is_empty() {
            problems.push(
                "tls.certs",
                "certificates are given but there is no https listener to use them",
            );
        }
        for (i, cert) in self.tls.certs.iter().enumerate() {
            for (key, path) in [("cert", &cert.cert), ("key", &cert.key)] {
                if path.as_os_str().is_empty() {
                    problems.push(&format!("tls.certs[{i}].{key}"), "the path is empty");
                }
            }
        }
        let limits = &self.limits;
        problems.int(
            "limits.max_headers",
            rules::MAX_HEADERS,
            limits.max_headers as u64,
        );
        problems.int(
            "limits.max_connections",
            rules::MAX_CONNECTIONS,
            limits.max_connections as u64,
        );
        problems.int("admin.history", rules::HISTORY, self.admin.history as u64);
    }
}

/// One service's edge options; `base` is `services.NAME`.
pub(super) fn check_service_edge(problems: &mut Problems, base: &str, service: &ServiceConfig) {
    let mut names: Vec<String> = Vec::new();
    for (i, (name, value)) in service.response_headers.iter().enumerate() {
        let path = format!("{base}.response_headers[{i}]");
        problems.result(&path, rules::header_name(name));
        problems.result(&path, rules::header_value(value));
        let lower = name.to_ascii_lowercase();
        if names.contains(&lower) {
            problems.push(&path, format!("header \"{name}\" is set twice"));
        }
        names.push(lower);
    }

    let compression = &service.compression;
    let types_path = format!("{base}.compression.types");
    for (i, kind) in compression.types.iter().enumerate() {
        problems.result(&format!("{types_path}[{i}]"), rules::mime_type(kind));
    }
    for (i, _) in rules::repeats(&compression.types) {
        let why = format!("\"{}\" is listed twice", compression.types[i]);
        problems.push(&format!("{types_path}[{i}]"), why);
    }
    if compression.enabled {
        let check = rules::compression(
            compression.gzip,
            compression.brotli,
            compression.types.is_empty(),
        );
        problems.result(&format!("{base}.compression"), check);
    }

    let prefix = service.path_prefix.as_deref();
    for (i, limit) in service.rate_limits.iter().enumerate() {
        let path = format!("{base}.rate_limits[{i}]");
        if let Some(own) = &limit.path_prefix {
            let hint = "not in normal form: no trailing `/`, and None rather than \"/\"";
            normal_prefix(problems, &path, rules::path_prefix(own), Some(own), hint);
            problems.result(
                &format!("{path}.path_prefix"),
                rules::within_service(own, prefix),
            );
        }
        problems.result(&format!("{path}.rate"), rules::rate(limit.rate));
        problems.int(
            &format!("{path}.burst"),
            rules::BURST,
            u64::from(limit.burst),
        );
    }
    let limit_prefixes: Vec<_> = service.rate_limits.iter().map(|l| &l.path_prefix).collect();
    for (i, _) in rules::repeats(&limit_prefixes) {
        problems.push(
            &format!("{base}.rate_limits[{i}]"),
            "this service already has a rate limit for this path prefix",
        );
    }

    for (i, files) in service.static_files.iter().enumerate() {
        let path = format!("{base}.static[{i}]");
        let own = &files.path_prefix;
        let normal = rules::static_prefix(own).map(Some);
        let hint = "not in normal form: no trailing `/` (except for \"/\" itself)";
        normal_prefix(problems, &path, normal, Some(own), hint);
        problems.result(
            &format!("{path}.path_prefix"),
            rules::within_service(own, prefix),
        );
        if files.dir.as_os_str().is_empty() {
            problems.push(&format!("{path}.dir"), "the path is empty");
        }
        if let Some(value) = &files.cache_control {
            let check = if value.is_empty() {
                Err("it is empty; use None to send none".to_string())
            } else {
                rules::header_value(value)
            };
            problems.result(&format!("{path}.cache_control"), check);
        }
        if let Some(index) = &files.index {
            problems.result(&format!("{path}.index"), rules::index_file(index));
        }
    }
    let static_prefixes: Vec<_> = service
        .static_files
        .iter()
        .map(|s| &s.path_prefix)
        .collect();
    for (i, _) in rules::repeats(&static_prefixes) {
        problems.push(
            &format!("{base}.static[{i}]"),
            "this service already has a static entry for this path prefix",
        );
    }
}

/// A path prefix must be what the file's normalisation would have made of it.
fn normal_prefix(
    problems: &mut Problems,
    path: &str,
    normal: Result<Option<String>, String>,
    own: Option<&String>,
    hint: &str,
) {
    if normal.as_ref().map(Option::as_ref) != Ok(own) {
        let why = normal.err().unwrap_or_else(|| hint.to_string());
        problems.push(&format!("{path}.path_prefix"), why);
    }
}
