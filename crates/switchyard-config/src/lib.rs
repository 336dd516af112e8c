//! Switchyard's configuration: the only crate that knows TOML.
//!
//! The pipeline, in two stages:
//!
//! ```text
//! text --recover.rs--> raw structs (raw.rs) --validate.rs, service.rs--> Config (types.rs)
//! ```
//!
//! 1. `recover`: the text is parsed into toml's spanned document tree and deserialized into
//!    the raw serde structs (`deny_unknown_fields`, leaves `Spanned`). Syntax errors, unknown
//!    keys and values of the wrong type are all collected, not only the first.
//! 2. `validate`: every raw value is checked and converted (durations, sizes, addresses,
//!    ranges, cross-references such as `active` and colliding routes), again collecting every
//!    problem with its position.
//!
//! The rules themselves live once in `rules`, shared with [`Config::validate`], which checks a
//! `Config` built in code. The spelled-out value formats are in [`units`].
//!
//! Each stage keeps the edge settings that replace nginx in front of the apps (https listeners
//! and `[tls]` certificates, `[log]`, limits, per-service response headers, compression, rate
//! limits and static files) in a module of their own: `types/edge.rs`, `edge.rs` and
//! `service_edge.rs`, `rules/edge.rs`, `in_code/edge.rs`.
//!
//! Only [`load_file`] looks at the disk: it resolves relative certificate paths and static
//! directories against the config file's directory and checks that each static directory
//! exists. [`parse_str`] (text without a file) and [`Config::validate`] keep paths as given.
//! Certificate files are never read here: the proxy loads them.

#![forbid(unsafe_code)]

mod edge;
mod error;
mod fleet;
mod in_code;
mod raw;
mod recover;
mod rules;
mod service;
mod service_edge;
mod service_rollout;
pub mod types;
pub mod units;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use fleet::node as check_node_name;
pub use in_code::IN_CODE_ORIGIN;
pub use types::*;

use error::Collector;
use validate::Checker;

/// The embedded default config text (same bytes as `config/switchyard.toml`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/switchyard.toml");

/// Name used in error positions for the embedded default.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default>";

/// The embedded default config: green live on 127.0.0.1:5000, blue staged on :5001,
/// clients on 0.0.0.0:8080, the admin API on 127.0.0.1:9901.
pub fn default_config() -> Config {
    // The embedded text is fixed at build time and tested to be valid.
    parse_str(DEFAULT_CONFIG_TOML, DEFAULT_CONFIG_NAME)
        .expect("the embedded default config is valid")
}

/// Parses and validates config text. `origin` names the text in error positions (usually the
/// file name). Returns every problem found, in file order. `Config::source` is `None`.
///
/// Text has no directory: paths (`tls.certs`, `static` directories) are kept as written and
/// nothing is looked up on disk. Use [`load_file`] for those checks.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    parse(text, origin, None)
}

/// [`parse_str`], with the directory of the file the text came from, if any: relative paths
/// are resolved against it and static directories are checked to exist.
fn parse(text: &str, origin: &str, dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut errors = Collector::new(origin, text);
    let Some((raw, removed)) = recover::parse_raw(text, &mut errors) else {
        return Err(errors.finish().unwrap_or_else(|| internal(origin)));
    };
    let config = Checker::new(&mut errors, &removed, dir).config(&raw);
    if let Some(errors) = errors.finish() {
        return Err(errors);
    }
    // Everything the file can say has been checked with positions above; this is a safety
    // net so a parsed Config can never fail `Config::validate`.
    config.validate().map_err(|in_code| {
        ConfigErrors(
            in_code
                .into_iter()
                .map(|e| ConfigError::unplaced(origin, e.message))
                .collect(),
        )
    })?;
    Ok(config)
}

/// Reads, parses and validates a config file; error positions name the file as given.
/// A file that cannot be read is one error at line 0, column 0. Sets `Config::source`.
///
/// Unlike [`parse_str`], relative `tls.certs` paths and `static` directories are resolved
/// against the file's directory, and each `static` directory must exist (an error at its
/// `dir`, naming the resolved path). Certificate files are not read: the proxy loads them.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError::unplaced(
            origin.as_str(),
            format!("cannot read the config file: {error}"),
        )])
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut config = parse(&text, &origin, Some(dir))?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// A parse that failed without recording why (it should not happen).
fn internal(origin: &str) -> ConfigErrors {
    ConfigErrors(vec![ConfigError::unplaced(
        origin,
        "the config could not be read, for no recorded reason",
    )])
}
