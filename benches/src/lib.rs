//! Switchyard's measuring tools: the `switchyard-bench` load generator (`load`), the
//! side-by-side comparison with nginx and HAProxy (`compare`, over plain HTTP/1.1, HTTPS or
//! HTTP/2 over TLS), and the built-in upstream they both drive. The criterion microbenches
//! live in `benches/`.
//!
//! The crate is a tool first; its library exists so that tests (and the binary) run the same
//! code in-process. It uses `anyhow` throughout, as a binary would: every error ends up as a
//! message on a terminal.

pub mod cli;
pub mod compare;
pub mod duration;
pub mod fleet;
pub mod flip;
pub mod http;
pub mod load;
pub mod procs;
pub mod soak;
pub mod target;
pub mod tls;
pub mod upstream;
