//! Checking the edge options of one `[services.NAME]`: `upgraded_drain_timeout`,
//! `response_headers`, `compression`, `rate_limits` and `static`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::raw::{RawCompression, RawRateLimit, RawService, RawStatic};
use crate::rules;
use crate::types::{CompressionConfig, RateLimitConfig, ServiceConfig, StaticConfig};
use crate::units::parse_rate;
use crate::validate::Checker;

/// `[services.NAME.response_headers]` as read: names to values.
type RawHeaders = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

impl Checker<'_, '_> {
    /// Fills in the edge options of `service` (whose routing keys are already checked).
    pub(crate) fn service_edge(
        &mut self,
        base: &str,
        raw: &RawService,
        service: &mut ServiceConfig,
    ) {
        let prefix = service.path_prefix.clone();
        service.upgraded_drain_timeout = raw.upgraded_drain_timeout.as_ref().and_then(|timeout| {
            let path = format!("{base}.upgraded_drain_timeout");
            self.duration(Some(timeout), &path, Duration::ZERO, false)
        });
        if let Some(generate) = &raw.generate_request_id {
            service.generate_request_id = *generate.get_ref();
        }
        service.response_headers = self.response_headers(base, raw.response_headers.as_ref());
        service.compression = self.compression(
            base,
            raw.compression
                .as_ref()
                .unwrap_or(&RawCompression::default()),
        );
        let mut seen = Vec::new();
        for (i, item) in raw.rate_limits.iter().flatten().enumerate() {
            let path = self.item(&format!("{base}.rate_limits"), i);
            if let Some(limit) = self.rate_limit(&path, item, prefix.as_deref(), &mut seen) {
                service.rate_limits.push(limit);
            }
        }
        let mut seen = Vec::new();
        for (i, item) in raw.static_files.iter().flatten().enumerate() {
            let path = self.item(&format!("{base}.static"), i);
            if let Some(files) = self.static_files(&path, item, prefix.as_deref(), &mut seen) {
                service.static_files.push(files);
            }
        }
    }

    fn response_headers(&mut self, base: &str, raw: Option<&RawHeaders>) -> Vec<(String, String)> {
        let mut entries: Vec<_> = raw.map_or_else(Vec::new, |map| map.get_ref().iter().collect());
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut seen: Vec<&str> = Vec::new();
        let mut headers = Vec::new();
        for (name, value) in entries {
            let path = format!("{base}.response_headers.{}", name.get_ref());
            let name_ok = self.check(&name.span(), &path, rules::header_name(name.get_ref()));
            if name_ok.is_some() {
                let text = name.get_ref().as_str();
                if let Some(earlier) = seen.iter().find(|s| s.eq_ignore_ascii_case(text)) {
                    let why = format!(
                        "header \"{text}\" is already set as \"{earlier}\" (header names are \
                         case-insensitive)"
                    );
                    self.error(&name.span(), &path, why);
                    continue;
                }
                seen.push(text);
            }
            let value_ok = self.check(&value.span(), &path, rules::header_value(value.get_ref()));
            if name_ok.is_some() && value_ok.is_some() {
                headers.push((name.get_ref().clone(), value.get_ref().clone()));
            }
        }
        headers
    }

    fn compression(&mut self, base: &str, raw: &RawCompression) -> CompressionConfig {
        let d = CompressionConfig::default();
        let p = |key: &str| format!("{base}.compression.{key}");
        let flag = |field: &Option<Spanned<bool>>, default: bool| {
            field.as_ref().map_or(default, |flag| *flag.get_ref())
        };
        let (enabled, gzip, brotli) = (
            flag(&raw.enabled, d.enabled),
            flag(&raw.gzip, d.gzip),
            flag(&raw.brotli, d.brotli),
        );
        let min_size = self.size(
            raw.min_size.as_ref(),
            &p("min_size"),
            d.min_size,
            (0, u64::MAX),
        );
        let types = match &raw.types {
            None => d.types,
            Some(list) => {
                let mut types: Vec<String> = Vec::new();
                for (i, item) in list.get_ref().iter().enumerate() {
                    let path = self.item(&p("types"), i);
                    let text = item.get_ref();
                    if self
                        .check(&item.span(), &path, rules::mime_type(text))
                        .is_none()
                    {
                        continue;
                    }
                    if types.contains(text) {
                        self.error(&item.span(), &path, format!("\"{text}\" is listed twice"));
                    } else {
                        types.push(text.clone());
                    }
                }
                types
            }
        };
        if let (true, Some(enabled_field)) = (enabled, &raw.enabled) {
            let no_types = raw.types.as_ref().filter(|list| list.get_ref().is_empty());
            let no_types = no_types.filter(|_| !self.removed(&p("types")));
            if let Err(why) = rules::compression(gzip, brotli, no_types.is_some()) {
                let (span, key) = match no_types {
                    Some(list) if gzip || brotli => (list.span(), "types"),
                    _ => (enabled_field.span(), "enabled"),
                };
                self.error(&span, &p(key), why);
            }
        }
        CompressionConfig {
            enabled,
            gzip,
            brotli,
            min_size: min_size.unwrap_or(d.min_size),
            types,
        }
    }

    /// One `[[services.NAME.rate_limits]]`; `seen` holds the prefixes of the earlier ones.
    fn rate_limit(
        &mut self,
        path: &str,
        item: &Spanned<RawRateLimit>,
        service_prefix: Option<&str>,
        seen: &mut Vec<Option<String>>,
    ) -> Option<RateLimitConfig> {
        let raw = item.get_ref();
        let prefix_path = format!("{path}.path_prefix");
        let path_prefix = match &raw.path_prefix {
            None => self.absent(&prefix_path, None),
            Some(prefix) => self.check(
                &prefix.span(),
                &prefix_path,
                rules::path_prefix(prefix.get_ref()).and_then(|normal| {
                    if let Some(normal) = &normal {
                        rules::within_service(normal, service_prefix)?;
                    }
                    Ok(normal)
                }),
            ),
        };
        if let Some(prefix) = &path_prefix {
            let span = raw.path_prefix.as_ref().map_or(item.span(), Spanned::span);
            let name = prefix
                .as_deref()
                .map_or("every path".into(), |p| format!("\"{p}\""));
            self.once(seen, prefix.clone(), &span, path, "rate limit", &name);
        }
        let rate = match &raw.rate {
            Some(rate) => {
                let parsed = parse_rate(&rate.get_ref().text);
                self.check(&rate.span(), &format!("{path}.rate"), parsed)
            }
            None => {
                if !self.removed(&format!("{path}.rate")) {
                    let why = "a rate limit needs `rate`, e.g. rate = \"10/s\"";
                    self.error(&item.span(), path, why);
                }
                None
            }
        };
        let burst = self.int(
            raw.burst.as_ref(),
            &format!("{path}.burst"),
            rules::BURST,
            0,
        );
        Some(RateLimitConfig {
            path_prefix: path_prefix?,
            rate: rate?,
            burst: burst?,
        })
    }

    /// One `[[services.NAME.static]]`; `seen` holds the prefixes of the earlier ones.
    fn static_files(
        &mut self,
        path: &str,
        item: &Spanned<RawStatic>,
        service_prefix: Option<&str>,
        seen: &mut Vec<String>,
    ) -> Option<StaticConfig> {
        let raw = item.get_ref();
        let required = |key: &str, example: &str| {
            format!("a static entry needs `{key}`, e.g. {key} = \"{example}\"")
        };
        let prefix_path = format!("{path}.path_prefix");
        let path_prefix = match &raw.path_prefix {
            None => {
                if !self.removed(&prefix_path) {
                    self.error(&item.span(), path, required("path_prefix", "/static"));
                }
                None
            }
            Some(prefix) => self
                .check(
                    &prefix.span(),
                    &prefix_path,
                    rules::static_prefix(prefix.get_ref()).and_then(|normal| {
                        rules::within_service(&normal, service_prefix)?;
                        Ok(normal)
                    }),
                )
                .filter(|normal| {
                    let name = format!("\"{normal}\"");
                    self.once(
                        seen,
                        normal.clone(),
                        &prefix.span(),
                        path,
                        "static entry",
                        &name,
                    )
                }),
        };
        let dir_path = format!("{path}.dir");
        let dir = match &raw.dir {
            None => {
                if !self.removed(&dir_path) {
                    self.error(&item.span(), path, required("dir", "/var/www/static"));
                }
                None
            }
            Some(dir) => {
                let text = dir.get_ref();
                self.check(&dir.span(), &dir_path, rules::non_empty_path(text))
                    .map(|()| self.resolve(text))
                    .filter(|resolved| {
                        let found = self.dir().map_or(Ok(()), |_| directory(resolved));
                        self.check(&dir.span(), &dir_path, found).is_some()
                    })
            }
        };
        let cache_control = raw.cache_control.as_ref().and_then(|value| {
            let text = value.get_ref();
            let checked = if text.is_empty() {
                Err("it is empty; leave `cache_control` out to send none".to_string())
            } else {
                rules::header_value(text)
            };
            let key = format!("{path}.cache_control");
            self.check(&value.span(), &key, checked)
                .map(|()| text.clone())
        });
        let index = raw.index.as_ref().and_then(|index| {
            let text = index.get_ref();
            let key = format!("{path}.index");
            self.check(&index.span(), &key, rules::index_file(text))
                .map(|()| text.clone())
        });
        Some(StaticConfig {
            path_prefix: path_prefix?,
            dir: dir?,
            cache_control,
            index,
        })
    }

    /// Records `key` in `seen`, or reports that an earlier `kind` of this service has it.
    fn once<T: PartialEq>(
        &mut self,
        seen: &mut Vec<T>,
        key: T,
        span: &Range<usize>,
        path: &str,
        kind: &str,
        name: &str,
    ) -> bool {
        if seen.contains(&key) {
            let why = format!("this service already has a {kind} for path prefix {name}");
            self.error(span, path, why);
            false
        } else {
            seen.push(key);
            true
        }
    }
}

/// A static `dir` must be a directory that exists (checked only for a file's config).
fn directory(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("\"{}\" is not a directory", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("directory \"{}\" does not exist", path.display()))
        }
        Err(error) => Err(format!("cannot use \"{}\": {error}", path.display())),
    }
}
