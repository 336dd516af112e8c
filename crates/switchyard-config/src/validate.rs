//! Second stage: raw structs to the typed `Config`, checking every value and recording every
//! problem at its position in one pass.
//!
//! A bad value is recorded and replaced by its default so that checking goes on; the `Config`
//! built that way is thrown away when anything was recorded. Services are checked in
//! `service.rs`, the edge settings (TLS, limits, log; per service: headers, compression, rate
//! limits, static files) in `edge.rs` and `service_edge.rs`; the rules themselves live in
//! `rules.rs`.
//!
//! When the text came from a file, the checker knows the file's directory: relative paths
//! (certificates, static directories) are resolved against it, and static directories are
//! checked to exist. Text without a file (`parse_str`) keeps paths as given and never looks at
//! the disk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::error::Collector;
use crate::raw::{
    DurationText, RawAdmin, RawConfig, RawLimits, RawListen, RawRuntime, RawService, RawState,
    SizeText,
};
use crate::recover::Removed;
use crate::rules::{self, IntRule, Listener, Route};
use crate::types::{
    AdminConfig, Config, DEFAULT_ADMIN_LISTEN, DEFAULT_HTTP_LISTEN, ListenConfig, RuntimeConfig,
    ServiceConfig, StateConfig,
};
use crate::units::{format_size, parse_duration, parse_size};

/// Checks raw values and builds typed ones, recording problems in a [`Collector`].
pub(crate) struct Checker<'c, 't> {
    errors: &'c mut Collector<'t>,
    removed: &'c Removed,
    /// The directory of the config file, when the text came from one.
    dir: Option<&'c Path>,
}

impl<'c, 't> Checker<'c, 't> {
    /// A checker recording into `errors`, aware of the entries recovery took out. `dir` is the
    /// config file's directory (`None` for text without a file: no filesystem checks).
    pub(crate) fn new(
        errors: &'c mut Collector<'t>,
        removed: &'c Removed,
        dir: Option<&'c Path>,
    ) -> Self {
        Checker {
            errors,
            removed,
            dir,
        }
    }

    /// The config file's directory, when the text came from a file.
    pub(crate) fn dir(&self) -> Option<&'c Path> {
        self.dir
    }

    /// `path` as written, or resolved against the config file's directory when it is relative
    /// and the text came from a file.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        match self.dir {
            Some(dir) if Path::new(path).is_relative() => dir.join(path),
            _ => PathBuf::from(path),
        }
    }

    /// Records a problem with the value at `span`, named by its dotted `path`.
    pub(crate) fn error(&mut self, span: &Range<usize>, path: &str, message: impl AsRef<str>) {
        self.errors
            .error(span, format!("{path}: {}", message.as_ref()));
    }

    /// True when recovery took out the entry at `path` or something inside it (it was already
    /// reported, so its absence is not a second problem).
    pub(crate) fn removed(&self, path: &str) -> bool {
        self.removed.touched(path)
    }

    /// Keeps `result`'s value, or records its problem at `span` and gives `None`.
    pub(crate) fn check<T>(
        &mut self,
        span: &Range<usize>,
        path: &str,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|why| self.error(span, path, why)).ok()
    }

    /// The path of the `index`th item read from the array at `array`, as numbered in the file
    /// (recovery may have taken earlier items out).
    pub(crate) fn item(&self, array: &str, index: usize) -> String {
        format!("{array}[{}]", self.removed.original_index(array, index))
    }

    /// The default for an absent key; `None` if the key was taken out as a problem.
    pub(crate) fn absent<T>(&self, path: &str, default: T) -> Option<T> {
        (!self.removed(path)).then_some(default)
    }

    /// An integer setting within `rule`.
    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        field: Option<&Spanned<i64>>,
        path: &str,
        rule: IntRule,
        default: T,
    ) -> Option<T> {
        match field {
            Some(value) => self.check(&value.span(), path, rule.check(*value.get_ref())),
            None => self.absent(path, default),
        }
    }

    /// A duration setting; `positive` refuses zero.
    pub(crate) fn duration(
        &mut self,
        field: Option<&Spanned<DurationText>>,
        path: &str,
        default: Duration,
        positive: bool,
    ) -> Option<Duration> {
        let Some(value) = field else {
            return self.absent(path, default);
        };
        let parsed = parse_duration(&value.get_ref().text).and_then(|duration| {
            if positive {
                rules::positive(duration)?;
            }
            Ok(duration)
        });
        self.check(&value.span(), path, parsed)
    }

    /// A size setting within `min..=max` bytes.
    pub(crate) fn size(
        &mut self,
        field: Option<&Spanned<SizeText>>,
        path: &str,
        default: u64,
        (min, max): (u64, u64),
    ) -> Option<u64> {
        let Some(value) = field else {
            return self.absent(path, default);
        };
        let parsed = parse_size(&value.get_ref().text).and_then(|bytes| {
            if bytes < min {
                Err(format!("must be at least {}", format_size(min)))
            } else if bytes > max {
                Err(format!("must be at most {}", format_size(max)))
            } else {
                Ok(bytes)
            }
        });
        self.check(&value.span(), path, parsed)
    }

    /// The whole config. Problems are in the collector; the result is meaningful only if none.
    pub(crate) fn config(&mut self, raw: &RawConfig) -> Config {
        let no_listen = RawListen::default();
        let raw_listen = raw.listen.as_ref().unwrap_or(&no_listen);
        let (listen, mut listeners) = self.listen(raw_listen);
        let (admin, admin_listener) = self.admin(raw.admin.as_ref());
        listeners.extend(admin_listener);
        self.listener_clashes(listeners);
        let tls = self.tls(raw.tls.as_ref(), raw_listen);
        let limits = self.limits(raw.limits.as_ref().unwrap_or(&RawLimits::default()));
        let log = self.log(raw.log.as_ref());
        let runtime = self.runtime(raw.runtime.as_ref().unwrap_or(&RawRuntime::default()));
        let state = self.state(raw.state.as_ref().unwrap_or(&RawState::default()));
        let fleet = raw.fleet.as_ref().and_then(|f| self.fleet(f));
        let services = self.services(raw.services.as_ref());
        Config {
            source: None,
            listen,
            admin,
            tls,
            limits,
            log,
            runtime,
            state,
            fleet,
            services,
        }
    }

    /// `[listen]`: the client listeners, with their positions for the clash check.
    fn listen(&mut self, raw: &RawListen) -> (ListenConfig, Vec<Placed<Listener>>) {
        let mut listeners = Vec::new();
        let http = match &raw.http {
            None if self.removed("listen.http") => Vec::new(),
            None => {
                let label = "listen.http (default)".to_string();
                let listener = Listener {
                    addr: DEFAULT_HTTP_LISTEN,
                    label,
                };
                listeners.push(Placed::new(0..0, listener));
                vec![DEFAULT_HTTP_LISTEN]
            }
            Some(http) => self.listeners(http, "listen.http", &mut listeners),
        };
        let https = match &raw.https {
            None => Vec::new(),
            Some(https) => self.listeners(https, "listen.https", &mut listeners),
        };
        let written_empty = |field: &Option<Spanned<Vec<Spanned<String>>>>| {
            field.as_ref().is_none_or(|list| list.get_ref().is_empty())
        };
        if let Some(http) = &raw.http {
            let nothing = http.get_ref().is_empty() && written_empty(&raw.https);
            if nothing && !self.removed("listen.http") && !self.removed("listen.https") {
                self.error(
                    &http.span(),
                    "listen.http",
                    "no client listener: list at least one address, e.g. [\"0.0.0.0:8080\"], \
                     here or in `https`",
                );
            }
        }
        let redirect_https = self.redirect_https(raw);
        let listen = ListenConfig {
            http,
            https,
            redirect_https,
        };
        (listen, listeners)
    }

    /// The addresses of one listener list; each is added to `placed` for the clash check.
    fn listeners(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        path: &str,
        placed: &mut Vec<Placed<Listener>>,
    ) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        for (i, item) in list.get_ref().iter().enumerate() {
            let label = self.item(path, i);
            if let Some(addr) = self.check(&item.span(), &label, rules::listen_addr(item.get_ref()))
            {
                addrs.push(addr);
                placed.push(Placed::new(item.span(), Listener { addr, label }));
            }
        }
        addrs
    }

    fn admin(&mut self, raw: Option<&RawAdmin>) -> (AdminConfig, Option<Placed<Listener>>) {
        let Some(raw) = raw else {
            let listener = Listener {
                addr: DEFAULT_ADMIN_LISTEN,
                label: "admin.listen (default)".to_string(),
            };
            return (AdminConfig::default(), Some(Placed::new(0..0, listener)));
        };
        let history = self.int(
            raw.history.as_ref(),
            "admin.history",
            rules::HISTORY,
            AdminConfig::default().history,
        );
        let max_connections = self.int(
            raw.max_connections.as_ref(),
            "admin.max_connections",
            rules::ADMIN_CONNECTIONS,
            AdminConfig::default().max_connections,
        );
        let token_env = raw.token_env.as_ref().and_then(|token| {
            let name = token.get_ref();
            self.check(&token.span(), "admin.token_env", rules::env_name(name))
                .map(|()| name.clone())
        });
        let (listen, listener) = match &raw.listen {
            None => {
                let label = "admin.listen (default)".to_string();
                let listener = Listener {
                    addr: DEFAULT_ADMIN_LISTEN,
                    label,
                };
                (
                    Some(DEFAULT_ADMIN_LISTEN),
                    Some(Placed::new(0..0, listener)),
                )
            }
            Some(listen) if listen.get_ref().is_empty() => (None, None),
            Some(listen) => {
                let span = listen.span();
                match self.check(&span, "admin.listen", rules::listen_addr(listen.get_ref())) {
                    Some(addr) => {
                        let has_token = raw.token_env.is_some() || self.removed("admin.token_env");
                        self.check(
                            &span,
                            "admin.listen",
                            rules::admin_exposure(addr, has_token),
                        );
                        let label = "admin.listen".to_string();
                        (
                            Some(addr),
                            Some(Placed::new(span, Listener { addr, label })),
                        )
                    }
                    None => (None, None),
                }
            }
        };
        let admin = AdminConfig {
            listen,
            token_env,
            history: history.unwrap_or(AdminConfig::default().history),
            max_connections: max_connections.unwrap_or(AdminConfig::default().max_connections),
        };
        (admin, listener)
    }

    fn listener_clashes(&mut self, mut listeners: Vec<Placed<Listener>>) {
        listeners.sort_by_key(|placed| placed.span.start);
        let (spans, listeners): (Vec<_>, Vec<_>) =
            listeners.into_iter().map(|p| (p.span, p.item)).unzip();
        for (i, why) in rules::listener_clashes(&listeners) {
            self.error(&spans[i], &listeners[i].label, why);
        }
    }

    fn runtime(&mut self, raw: &RawRuntime) -> RuntimeConfig {
        let d = RuntimeConfig::default();
        let worker_threads = raw.worker_threads.as_ref().and_then(|threads| {
            let path = "runtime.worker_threads";
            self.check(
                &threads.span(),
                path,
                rules::WORKER_THREADS.check(*threads.get_ref()),
            )
        });
        let shutdown_timeout = self.duration(
            raw.shutdown_timeout.as_ref(),
            "runtime.shutdown_timeout",
            d.shutdown_timeout,
            false,
        );
        RuntimeConfig {
            worker_threads,
            shutdown_timeout: shutdown_timeout.unwrap_or(d.shutdown_timeout),
        }
    }

    fn state(&mut self, raw: &RawState) -> StateConfig {
        let file = raw.file.as_ref().and_then(|file| {
            if file.get_ref().is_empty() {
                self.error(
                    &file.span(),
                    "state.file",
                    "the path is empty; leave `file` out to keep no state",
                );
                None
            } else {
                Some(PathBuf::from(file.get_ref()))
            }
        });
        StateConfig { file }
    }

    fn services(
        &mut self,
        raw: Option<&BTreeMap<Spanned<String>, RawService>>,
    ) -> BTreeMap<String, ServiceConfig> {
        let raw = raw.filter(|services| !services.is_empty());
        let Some(raw) = raw else {
            if !self.removed("services") {
                self.errors.error(
                    &(0..0),
                    "no services: add at least one [services.NAME] with `active` and \
                     [services.NAME.pools]",
                );
            }
            return BTreeMap::new();
        };
        let mut services = BTreeMap::new();
        let mut placed = Vec::new();
        for (name, raw_service) in raw {
            let service = self.service(name, raw_service);
            placed.push((name.span(), service.name.clone()));
            services.insert(service.name.clone(), service);
        }
        placed.sort_by_key(|(span, _)| span.start);
        let routes: Vec<Route<'_>> = placed
            .iter()
            .filter_map(|(_, name)| services.get(name))
            .map(|service| Route {
                name: &service.name,
                hosts: &service.hosts,
                prefix: service.path_prefix.as_deref(),
            })
            .collect();
        for (i, why) in rules::route_collisions(&routes) {
            let (span, name) = &placed[i];
            self.error(span, &format!("services.{name}"), why);
        }
        services
    }
}

/// Something checked across the file, with where it was written.
pub(crate) struct Placed<T> {
    /// Its position (`0..0` for a default that was not written).
    pub span: Range<usize>,
    /// The thing itself.
    pub item: T,
}

impl<T> Placed<T> {
    pub(crate) fn new(span: Range<usize>, item: T) -> Self {
        Placed { span, item }
    }
}
