//! The typed edge settings that replace nginx in front of the apps: TLS certificates, the
//! process log, and per-service response headers, compression, rate limits and static files.

use std::path::PathBuf;

/// `[tls]`: certificates for the `listen.https` listeners.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// Certificates, chosen per connection by SNI from the names in each certificate; the
    /// first is the default when the client sends no SNI or a name none of them has.
    /// Non-empty exactly when `listen.https` is.
    pub certs: Vec<CertConfig>,
}

/// One `[[tls.certs]]` entry: a certificate chain and its private key.
///
/// The files are not read by the config crate: the proxy loads them (and reports missing
/// files and keys that do not match their certificate). Relative paths in a file loaded with
/// [`crate::load_file`] are already resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertConfig {
    /// PEM file: the certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl CertConfig {
    /// A certificate chain and its key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        CertConfig {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// `[log]`: what the process logs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// How every log line (access and event lines alike) is written.
    pub format: LogFormat,
    /// Whether one access-log line is written per request (nginx's `access_log`).
    pub access: bool,
    /// How access-log lines are written; `None`: as `format` says (text or JSON).
    pub access_format: Option<AccessFormat>,
    /// Where access-log lines go: this file (appended to, reopened on SIGUSR1 for logrotate),
    /// or standard output when `None`.
    pub access_file: Option<std::path::PathBuf>,
}

impl Default for LogConfig {
    /// Text lines, with the access log on.
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            access: true,
            access_format: None,
            access_file: None,
        }
    }
}

/// The process-wide log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal or journald.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The spelling used in the config file: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// How access-log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// Key=value text, every field of the line (the text process log's shape).
    Text,
    /// One JSON object a line, every field of the line.
    Json,
    /// The NCSA combined format (nginx's and Apache's `combined`), for the tools that read
    /// those logs: client, time, request line, status, body bytes, `Referer`, `User-Agent`.
    Combined,
}

impl AccessFormat {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessFormat::Text => "text",
            AccessFormat::Json => "json",
            AccessFormat::Combined => "combined",
        }
    }

    /// The access format a process log format implies when `access_format` is not set.
    pub fn following(format: LogFormat) -> AccessFormat {
        match format {
            LogFormat::Text => AccessFormat::Text,
            LogFormat::Json => AccessFormat::Json,
        }
    }
}

/// The MIME types compressed when `[services.NAME.compression]` does not list its own.
pub const DEFAULT_COMPRESSION_TYPES: [&str; 7] = [
    "text/html",
    "text/css",
    "text/plain",
    "text/javascript",
    "application/javascript",
    "application/json",
    "image/svg+xml",
];

/// `[services.NAME.compression]`: compressing responses for clients that accept it.
///
/// A response is compressed when `enabled`, the client's `Accept-Encoding` allows an enabled
/// encoding (brotli preferred), its `Content-Type` matches `types`, it is not already encoded
/// (`Content-Encoding`), and its length is unknown or at least `min_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    /// Whether this service's responses are compressed at all (nginx: `gzip on`).
    pub enabled: bool,
    /// Offer `gzip` encoding.
    pub gzip: bool,
    /// Offer `br` (brotli) encoding; preferred over gzip when the client accepts both.
    pub brotli: bool,
    /// Responses with a `Content-Length` below this many bytes are sent as they are
    /// (nginx: `gzip_min_length`).
    pub min_size: u64,
    /// Content types compressed (nginx: `gzip_types`): lower-case `type/subtype` matched
    /// against the essence of `Content-Type` (parameters such as `charset` ignored), or
    /// `type/*` for every subtype. Never empty when `enabled`.
    pub types: Vec<String>,
}

impl Default for CompressionConfig {
    /// Off; when turned on: gzip and brotli, 1KiB and up, [`DEFAULT_COMPRESSION_TYPES`].
    fn default() -> Self {
        CompressionConfig {
            enabled: false,
            gzip: true,
            brotli: true,
            min_size: 1024,
            types: DEFAULT_COMPRESSION_TYPES.map(String::from).to_vec(),
        }
    }
}

/// One `[[services.NAME.rate_limits]]` entry: a token bucket per client IP address
/// (nginx: `limit_req_zone $binary_remote_addr … rate=`, `limit_req burst= nodelay`).
///
/// A request over the limit gets 429 without reaching the upstream. When several entries
/// match a request, the one with the longest `path_prefix` applies.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Request paths the limit applies to (`/login` covers `/login` and `/login/…`), in the
    /// normal form of `ServiceConfig::path_prefix`; `None` means every request of the service.
    /// Lies within the service's own `path_prefix`.
    pub path_prefix: Option<String>,
    /// Sustained requests per second allowed per client (`"10/s"`; `"30/m"` is 0.5).
    /// Finite and more than 0.
    pub rate: f64,
    /// Requests a client may make at once beyond the rate before being refused (0..=100000):
    /// the bucket holds `1 + burst` requests. Requests within it are not delayed.
    pub burst: u32,
}

impl RateLimitConfig {
    /// A limit of `rate` requests per second with no burst, on every request of the service.
    pub fn new(rate: f64) -> Self {
        RateLimitConfig {
            path_prefix: None,
            rate,
            burst: 0,
        }
    }
}

/// One `[[services.NAME.static]]` entry: files served from disk instead of the pools
/// (nginx: `location /static/ { alias …; expires …; index …; }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    /// Request paths served from `dir`: `/static` covers `/static` and `/static/…`, and
    /// `/static/css/a.css` is `dir/css/a.css`. Starts with `/` and does not end with one, except
    /// `/` itself (the whole site). Lies within the service's own `path_prefix`.
    pub path_prefix: String,
    /// The directory served; request paths that would leave it (`..`) are refused. With
    /// [`crate::load_file`] a relative path is resolved against the config file's directory
    /// and the directory is checked to exist; [`crate::parse_str`] and `Config::validate` keep
    /// the path as given and do not look at the disk.
    pub dir: PathBuf,
    /// `Cache-Control` value sent with every file (nginx: `expires`, `add_header
    /// Cache-Control`); `None` sends none.
    pub cache_control: Option<String>,
    /// File served for a request naming a directory, e.g. `index.html`; `None` answers such
    /// requests with 404. A plain file name (no `/`).
    pub index: Option<String>,
}

impl StaticConfig {
    /// Files under `dir` at `path_prefix`, with no `Cache-Control` and no index file.
    pub fn new(path_prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        StaticConfig {
            path_prefix: path_prefix.into(),
            dir: dir.into(),
            cache_control: None,
            index: None,
        }
    }
}
