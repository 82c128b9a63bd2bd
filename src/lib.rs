//! fastprom: prometheus_client's API with storage and exposition in Rust.
//!
//! `core` is plain Rust (cells, families, writers); `py` converts between Python and the core.

pub mod core;
mod py;
