//! Multiprocess mode (`values.MultiProcessValue`, `mmap_dict`, `multiprocess`) in plain Rust.

pub mod compact;
pub mod file;
pub mod key;
pub mod mapped;
pub mod merge;
pub mod native;
pub mod sketch;
pub mod sketch_merge;
