//! What the config crate's test files share: a valid service to build on, and the helpers that
//! parse text and check the problems reported.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::net::SocketAddr;

use switchyard_config::{Config, ConfigError, parse_str};

/// A valid service to append options or problems to (lines 1-4).
pub const APP: &str =
    "[services.app]\nactive = \"green\"\n[services.app.pools]\ngreen = [\"127.0.0.1:5000\"]\n";

/// A socket address from a literal.
pub fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

/// Parses text that must be valid.
pub fn parse(text: &str) -> Config {
    parse_str(text, "test.toml").unwrap_or_else(|errors| panic!("{errors}"))
}

/// The problems of text that must be invalid.
pub fn errors(text: &str) -> Vec<ConfigError> {
    match parse_str(text, "test.toml") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.0,
    }
}

/// Asserts `text` has exactly one problem, at `line`:`column`, whose message contains each of
/// `words`.
#[track_caller]
pub fn one(text: &str, line: usize, column: usize, words: &[&str]) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    check(&errors[0], line, column, words);
}

/// Asserts one problem is at `line`:`column` of `test.toml` and its message contains `words`.
#[track_caller]
pub fn check(error: &ConfigError, line: usize, column: usize, words: &[&str]) {
    assert_eq!(error.origin, "test.toml");
    assert_eq!((error.line, error.column), (line, column), "{error}");
    for word in words {
        assert!(error.message.contains(word), "`{word}` not in: {error}");
    }
}
