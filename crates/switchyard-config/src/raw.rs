//! The file as written: serde structs that mirror the TOML schema, before any checking.
//!
//! Every table denies unknown keys; every key is optional here (missing required keys are
//! reported by validation, with a better message than serde's); leaves keep their position
//! (`Spanned`) so validation can point at them. Values that need parsing (durations, sizes,
//! addresses) stay text until validation, so a bad one is reported without stopping serde.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listen: Option<RawListen>,
    pub admin: Option<RawAdmin>,
    pub tls: Option<RawTls>,
    pub limits: Option<RawLimits>,
    pub log: Option<RawLog>,
    pub runtime: Option<RawRuntime>,
    pub state: Option<RawState>,
    pub fleet: Option<RawFleet>,
    pub services: Option<BTreeMap<Spanned<String>, RawService>>,
}

/// `[listen]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub http: Option<Spanned<Vec<Spanned<String>>>>,
    pub https: Option<Spanned<Vec<Spanned<String>>>>,
    pub redirect_https: Option<Spanned<bool>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub history: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub certs: Option<Spanned<Vec<Spanned<RawCert>>>>,
}

/// One `[[tls.certs]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCert {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_body: Option<Spanned<SizeText>>,
    pub max_header_bytes: Option<Spanned<SizeText>>,
    pub header_timeout: Option<Spanned<DurationText>>,
    pub keepalive_timeout: Option<Spanned<DurationText>>,
    pub body_timeout: Option<Spanned<DurationText>>,
    pub send_timeout: Option<Spanned<DurationText>>,
    pub max_headers: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<Spanned<String>>,
    pub access: Option<Spanned<bool>>,
    pub access_format: Option<Spanned<String>>,
    pub access_file: Option<Spanned<String>>,
}

/// `[runtime]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub worker_threads: Option<Spanned<i64>>,
    pub shutdown_timeout: Option<Spanned<DurationText>>,
}

/// `[state]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub file: Option<Spanned<String>>,
}

/// `[fleet]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    pub etcd: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub username_env: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub tls: Option<RawFleetTls>,
}

/// `[fleet.tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleetTls {
    pub ca: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[services.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub hosts: Option<Vec<Spanned<String>>>,
    pub path_prefix: Option<Spanned<String>>,
    pub active: Option<Spanned<String>>,
    pub pools: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawPool>>>>,
    pub health: Option<RawHealth>,
    pub upstream: Option<RawUpstream>,
    pub retry: Option<RawRetry>,
    pub ejection: Option<RawEjection>,
    pub upgraded_drain_timeout: Option<Spanned<DurationText>>,
    pub generate_request_id: Option<Spanned<bool>>,
    pub response_headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub compression: Option<RawCompression>,
    pub rate_limits: Option<Vec<Spanned<RawRateLimit>>>,
    #[serde(rename = "static")]
    pub static_files: Option<Vec<Spanned<RawStatic>>>,
    pub preview: Option<RawPreview>,
    pub guard: Option<RawGuard>,
    pub mirror: Option<RawMirror>,
}

/// `[services.NAME.mirror]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    pub to: Option<Spanned<String>>,
    pub percent: Option<Spanned<i64>>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_in_flight: Option<Spanned<i64>>,
}

/// `[services.NAME.guard]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    pub window: Option<Spanned<DurationText>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub max_p99_factor: Option<Spanned<f64>>,
}

/// `[services.NAME.preview]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPreview {
    pub header: Option<Spanned<String>>,
    pub cookie: Option<Spanned<String>>,
}

/// One pool: short (`["host:port", …]`) or long (`{ servers = […], balance = "…" }`).
#[derive(Debug)]
pub(crate) enum RawPool {
    Short(Vec<Spanned<RawServer>>),
    Long(RawLongPool),
}

/// The long form of a pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLongPool {
    pub servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
    pub balance: Option<Spanned<String>>,
}

/// One server: `"host:port"` or `{ addr = "host:port", weight = 3 }`.
#[derive(Debug)]
pub(crate) enum RawServer {
    Addr(String),
    Table(RawServerTable),
}

/// The table form of a server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTable {
    pub addr: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
}

/// `[services.NAME.health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub path: Option<Spanned<String>>,
    pub interval: Option<Spanned<DurationText>>,
    pub timeout: Option<Spanned<DurationText>>,
    pub expect_status: Option<Spanned<StatusText>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
}

/// `[services.NAME.upstream]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub connect_timeout: Option<Spanned<DurationText>>,
    pub response_timeout: Option<Spanned<DurationText>>,
    pub idle_timeout: Option<Spanned<DurationText>>,
    pub max_idle_per_server: Option<Spanned<i64>>,
    pub resolve_interval: Option<Spanned<DurationText>>,
}

/// `[services.NAME.retry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub attempts: Option<Spanned<i64>>,
    pub on_status: Option<Vec<Spanned<i64>>>,
    pub backoff_base: Option<Spanned<DurationText>>,
    pub backoff_max: Option<Spanned<DurationText>>,
    pub budget_ratio: Option<Spanned<f64>>,
    pub budget_min: Option<Spanned<i64>>,
    pub replay_buffer: Option<Spanned<SizeText>>,
    pub idempotency_key: Option<Spanned<bool>>,
}

/// `[services.NAME.ejection]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEjection {
    pub consecutive_failures: Option<Spanned<i64>>,
    pub base: Option<Spanned<DurationText>>,
    pub max: Option<Spanned<DurationText>>,
    pub all_down: Option<Spanned<String>>,
}

/// `[services.NAME.compression]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompression {
    pub enabled: Option<Spanned<bool>>,
    pub gzip: Option<Spanned<bool>>,
    pub brotli: Option<Spanned<bool>>,
    pub min_size: Option<Spanned<SizeText>>,
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `[[services.NAME.rate_limits]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub path_prefix: Option<Spanned<String>>,
    pub rate: Option<Spanned<RateText>>,
    pub burst: Option<Spanned<i64>>,
}

/// One `[[services.NAME.static]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatic {
    pub path_prefix: Option<Spanned<String>>,
    pub dir: Option<Spanned<String>>,
    pub cache_control: Option<Spanned<String>>,
    pub index: Option<Spanned<String>>,
}

/// What a text leaf must look like; its `EXPECTING` ends serde's wrong-type message.
pub(crate) trait TextKind {
    /// Completes "expected …" in a wrong-type message.
    const EXPECTING: &'static str;
    /// Whether an integer is taken as the text of its digits (as for `expect_status = 200`).
    const INTEGER_OK: bool = false;
}

/// A string leaf of some kind, parsed by validation.
pub(crate) struct Text<K> {
    pub text: String,
    kind: PhantomData<K>,
}

impl<K> fmt::Debug for Text<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Marker: a duration such as `"250ms"`.
#[derive(Debug)]
pub(crate) enum Dur {}
/// Marker: a size such as `"64KiB"`.
#[derive(Debug)]
pub(crate) enum Size {}
/// Marker: a status or status range such as `"200-399"`.
#[derive(Debug)]
pub(crate) enum Status {}
/// Marker: a request rate such as `"10/s"`.
#[derive(Debug)]
pub(crate) enum Rate {}

impl TextKind for Dur {
    const EXPECTING: &'static str =
        "a duration string with a unit (ms, s, m, h), e.g. \"250ms\", \"1s\", \"2m\"";
}
impl TextKind for Size {
    const EXPECTING: &'static str =
        "a size string with a unit (B, KiB, MiB, GiB), e.g. \"64KiB\", \"16MiB\"";
}
impl TextKind for Rate {
    const EXPECTING: &'static str =
        "a rate string: requests per second or minute, e.g. \"10/s\", \"30/m\"";
}
impl TextKind for Status {
    const EXPECTING: &'static str = "a status such as 200 or a range such as \"200-399\"";
    const INTEGER_OK: bool = true;
}

/// A duration, still as text.
pub(crate) type DurationText = Text<Dur>;
/// A size, still as text.
pub(crate) type SizeText = Text<Size>;
/// A status range, still as text.
pub(crate) type StatusText = Text<Status>;
/// A request rate, still as text.
pub(crate) type RateText = Text<Rate>;

impl<'de, K: TextKind> Deserialize<'de> for Text<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<K>(PhantomData<K>);

        impl<K: TextKind> Visitor<'_> for TextVisitor<K> {
            type Value = Text<K>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(K::EXPECTING)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text {
                    text: v.to_string(),
                    kind: PhantomData,
                })
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if K::INTEGER_OK {
                    self.visit_str(&v.to_string())
                } else {
                    Err(E::invalid_type(de::Unexpected::Signed(v), &self))
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if K::INTEGER_OK {
                    self.visit_str(&v.to_string())
                } else {
                    Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
                }
            }
        }

        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawPool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PoolVisitor;

        impl<'de> Visitor<'de> for PoolVisitor {
            type Value = RawPool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an array of \"host:port\" servers or a table with `servers` and `balance`",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(RawPool::Short)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawLongPool::deserialize(MapAccessDeserializer::new(map)).map(RawPool::Long)
            }
        }

        deserializer.deserialize_any(PoolVisitor)
    }
}

impl<'de> Deserialize<'de> for RawServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ServerVisitor;

        impl<'de> Visitor<'de> for ServerVisitor {
            type Value = RawServer;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a \"host:port\" string or a table { addr = \"host:port\", weight = N }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawServer::Addr(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawServerTable::deserialize(MapAccessDeserializer::new(map)).map(RawServer::Table)
            }
        }

        deserializer.deserialize_any(ServerVisitor)
    }
}
