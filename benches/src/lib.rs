//! Switchyard's benchmarks: the load tool and criterion microbenches live in this crate.
