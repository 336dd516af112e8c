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

#![forbid(unsafe_code)]

mod error;
mod in_code;
mod raw;
mod recover;
mod rules;
mod service;
pub mod types;
pub mod units;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
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
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Collector::new(origin, text);
    let Some((raw, removed)) = recover::parse_raw(text, &mut errors) else {
        return Err(errors.finish().unwrap_or_else(|| internal(origin)));
    };
    let config = Checker::new(&mut errors, &removed).config(&raw);
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
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError::unplaced(
            origin.as_str(),
            format!("cannot read the config file: {error}"),
        )])
    })?;
    let mut config = parse_str(&text, &origin)?;
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
