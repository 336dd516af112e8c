//! Checking the process-wide edge settings of a file: `listen.redirect_https`, `[tls]` (and
//! its agreement with `listen.https`), `[limits]` and `[log]`.

use toml::Spanned;

use crate::raw::{RawCert, RawLimits, RawListen, RawLog, RawTls};
use crate::rules;
use crate::types::{AccessFormat, CertConfig, LimitsConfig, LogConfig, LogFormat, TlsConfig};
use crate::validate::Checker;

impl Checker<'_, '_> {
    /// `listen.redirect_https`: only with an https listener to redirect to.
    pub(crate) fn redirect_https(&mut self, raw: &RawListen) -> bool {
        let Some(redirect) = &raw.redirect_https else {
            return false;
        };
        let https_written = raw
            .https
            .as_ref()
            .is_some_and(|https| !https.get_ref().is_empty())
            || self.removed("listen.https");
        if *redirect.get_ref() && !https_written {
            self.error(
                &redirect.span(),
                "listen.redirect_https",
                "there is no https listener to redirect to: add `https = [\"0.0.0.0:443\"]` \
                 (and a [[tls.certs]]) or set redirect_https = false",
            );
        }
        *redirect.get_ref()
    }

    /// `[tls]`: the certificates, present exactly when there are https listeners.
    pub(crate) fn tls(&mut self, raw: Option<&RawTls>, listen: &RawListen) -> TlsConfig {
        let raw_certs = raw.and_then(|tls| tls.certs.as_ref());
        let mut certs = Vec::new();
        for (i, item) in raw_certs
            .map(Spanned::get_ref)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = self.item("tls.certs", i);
            if let Some(cert) = self.cert(&path, item) {
                certs.push(cert);
            }
        }
        let certs_written = raw_certs.is_some_and(|certs| !certs.get_ref().is_empty());
        let https = listen
            .https
            .as_ref()
            .filter(|https| !https.get_ref().is_empty());
        match (https, raw_certs) {
            (Some(https), _) if !certs_written && !self.removed("tls") => self.error(
                &https.span(),
                "listen.https",
                "https listeners need a certificate: add a [[tls.certs]] table with `cert` and \
                 `key` (PEM files)",
            ),
            (None, Some(raw_certs)) if certs_written && !self.removed("listen.https") => self
                .error(
                    &raw_certs.span(),
                    "tls.certs",
                    "certificates are given but there is no https listener to use them: add \
                     `https = [\"0.0.0.0:443\"]` to [listen], or remove the [[tls.certs]]",
                ),
            _ => {}
        }
        TlsConfig { certs }
    }

    /// One `[[tls.certs]]`: `cert` and `key`, both required and non-empty. The files are not
    /// read here (the proxy loads them); relative paths are resolved against the file's
    /// directory.
    fn cert(&mut self, path: &str, item: &Spanned<RawCert>) -> Option<CertConfig> {
        let raw = item.get_ref();
        let mut file = |field: &Option<Spanned<String>>, key: &str, example: &str| {
            let key_path = format!("{path}.{key}");
            match field {
                Some(value) => self
                    .check(
                        &value.span(),
                        &key_path,
                        rules::non_empty_path(value.get_ref()),
                    )
                    .map(|()| self.resolve(value.get_ref())),
                None => {
                    if !self.removed(&key_path) {
                        self.error(
                            &item.span(),
                            path,
                            format!("a certificate needs `{key}`, e.g. {key} = \"{example}\""),
                        );
                    }
                    None
                }
            }
        };
        let cert = file(&raw.cert, "cert", "/etc/switchyard/site.crt");
        let key = file(&raw.key, "key", "/etc/switchyard/site.key");
        Some(CertConfig {
            cert: cert?,
            key: key?,
        })
    }

    /// `[limits]`.
    pub(crate) fn limits(&mut self, raw: &RawLimits) -> LimitsConfig {
        let d = LimitsConfig::default();
        let max_body = self.size(
            raw.max_body.as_ref(),
            "limits.max_body",
            d.max_body,
            (0, u64::MAX),
        );
        let max_header_bytes = self
            .size(
                raw.max_header_bytes.as_ref(),
                "limits.max_header_bytes",
                d.max_header_bytes as u64,
                (rules::MIN_HEADER_BYTES, usize::MAX as u64),
            )
            .and_then(|bytes| usize::try_from(bytes).ok());
        let header_timeout = self.duration(
            raw.header_timeout.as_ref(),
            "limits.header_timeout",
            d.header_timeout,
            true,
        );
        let keepalive_timeout = self.duration(
            raw.keepalive_timeout.as_ref(),
            "limits.keepalive_timeout",
            d.keepalive_timeout,
            true,
        );
        let body_timeout = self.duration(
            raw.body_timeout.as_ref(),
            "limits.body_timeout",
            d.body_timeout,
            true,
        );
        let send_timeout = self.duration(
            raw.send_timeout.as_ref(),
            "limits.send_timeout",
            d.send_timeout,
            true,
        );
        let max_headers = self.int(
            raw.max_headers.as_ref(),
            "limits.max_headers",
            rules::MAX_HEADERS,
            d.max_headers,
        );
        let max_connections = self.int(
            raw.max_connections.as_ref(),
            "limits.max_connections",
            rules::MAX_CONNECTIONS,
            d.max_connections,
        );
        LimitsConfig {
            max_body: max_body.unwrap_or(d.max_body),
            max_header_bytes: max_header_bytes.unwrap_or(d.max_header_bytes),
            header_timeout: header_timeout.unwrap_or(d.header_timeout),
            keepalive_timeout: keepalive_timeout.unwrap_or(d.keepalive_timeout),
            body_timeout: body_timeout.unwrap_or(d.body_timeout),
            send_timeout: send_timeout.unwrap_or(d.send_timeout),
            max_headers: max_headers.unwrap_or(d.max_headers),
            max_connections: max_connections.unwrap_or(d.max_connections),
        }
    }

    /// `[log]`.
    pub(crate) fn log(&mut self, raw: Option<&RawLog>) -> LogConfig {
        let d = LogConfig::default();
        let Some(raw) = raw else {
            return d;
        };
        let format = raw.format.as_ref().map_or(d.format, |format| {
            let parsed = match format.get_ref().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!(
                    "unknown log format \"{other}\"; use \"text\" or \"json\""
                )),
            };
            self.check(&format.span(), "log.format", parsed)
                .unwrap_or_default()
        });
        let access_format = raw.access_format.as_ref().and_then(|format| {
            let parsed = match format.get_ref().as_str() {
                "text" => Ok(AccessFormat::Text),
                "json" => Ok(AccessFormat::Json),
                "combined" => Ok(AccessFormat::Combined),
                other => Err(format!(
                    "unknown access-log format \"{other}\"; use \"text\", \"json\" or \"combined\""
                )),
            };
            self.check(&format.span(), "log.access_format", parsed)
        });
        let access_file = raw.access_file.as_ref().and_then(|file| {
            let path = file.get_ref();
            let checked = if path.is_empty() {
                Err(
                    "the path is empty; leave `access_file` out to log to standard output"
                        .to_string(),
                )
            } else {
                Ok(std::path::PathBuf::from(path))
            };
            self.check(&file.span(), "log.access_file", checked)
        });
        LogConfig {
            format,
            access: raw.access.as_ref().map_or(d.access, |on| *on.get_ref()),
            access_format,
            access_file,
        }
    }
}
