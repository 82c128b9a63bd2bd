//! The core: storage, families and writers in plain Rust (no Python).

pub mod cell;
pub mod counter;
pub mod escape;
pub mod family;
pub mod fork;
pub mod format;
pub mod hotcold;
pub mod http;
pub mod labels;
pub mod model;
pub mod multiprocess;
pub mod native_histogram;
pub mod negotiate;
pub mod observations;
pub mod openmetrics;
pub mod parse;
pub mod protobuf;
pub mod quantiles;
pub mod text;
