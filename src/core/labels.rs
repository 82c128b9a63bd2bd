//! A child's label values in one small allocation behind a thin pointer.
//!
//! Layout: the byte length of the rest as a LEB128 varint, then every value followed by 0xFF.
//! 0xFF never occurs in UTF-8, so it ends each value unambiguously (an empty value is a lone
//! 0xFF), and the number of values is the number of 0xFF bytes. Two values `"v1"`, `"GET"`
//! take 1 + 3 + 4 = 8 bytes: one allocation where a `Box<[String]>` takes three.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

const END: u8 = 0xFF;

/// Label values in label-name order; immutable once made.
pub struct LabelValues {
    /// The start of a leaked `Box<[u8]>` that begins with its own payload length.
    bytes: NonNull<u8>,
}

// SAFETY: LabelValues owns its bytes, which never change after creation.
unsafe impl Send for LabelValues {}
unsafe impl Sync for LabelValues {}

impl LabelValues {
    pub fn new<S: AsRef<str>>(values: &[S]) -> LabelValues {
        let payload: usize = values.iter().map(|v| v.as_ref().len() + 1).sum();
        let mut bytes = Vec::with_capacity(varint_len(payload) + payload);
        write_varint(&mut bytes, payload);
        for value in values {
            bytes.extend_from_slice(value.as_ref().as_bytes());
            bytes.push(END);
        }
        let raw = Box::into_raw(bytes.into_boxed_slice());
        LabelValues {
            // SAFETY: a Box's pointer is never null.
            bytes: unsafe { NonNull::new_unchecked(raw.cast::<u8>()) },
        }
    }

    /// The values with their end markers.
    fn payload(&self) -> &[u8] {
        let (payload, prefix) = read_varint(self.bytes);
        // SAFETY: `new` allocated `prefix + payload` bytes at `self.bytes`.
        unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().add(prefix), payload) }
    }

    pub fn len(&self) -> usize {
        self.payload().iter().filter(|b| **b == END).count()
    }

    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        // Without the last end marker, the values are the pieces between markers.
        let pieces = self.payload().split_last().map(|(_, values)| values);
        let pieces = pieces.into_iter().flat_map(|v| v.split(|b| *b == END));
        // SAFETY: each piece is a whole `&str` given to `new` (0xFF only ends values).
        pieces.map(|piece| unsafe { std::str::from_utf8_unchecked(piece) })
    }

    /// The value at `i` (in label-name order).
    pub fn get(&self, i: usize) -> Option<&str> {
        self.iter().nth(i)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// Whether these are exactly `values`, in order.
    pub fn equals<S: AsRef<str>>(&self, values: &[S]) -> bool {
        let mut mine = self.iter();
        values.iter().all(|v| mine.next() == Some(v.as_ref())) && mine.next().is_none()
    }
}

/// Hashes label values as `[&str]` (and `[String]`) hash: `<[T]>::hash` writes the length
/// (`write_length_prefix`, which is `write_usize` in every hasher on stable Rust), then each
/// element, and `String` and `&str` both hash as `str`. So `LabelValues` and a borrowed
/// `&[&str]` land in the same bucket of a hashed set (checked in the tests below).
pub fn hash_values<'a, H: Hasher>(
    len: usize,
    values: impl Iterator<Item = &'a str>,
    state: &mut H,
) {
    state.write_usize(len);
    values.for_each(|v| v.hash(state));
}

impl Hash for LabelValues {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.len(), self.iter(), state)
    }
}

impl PartialEq for LabelValues {
    fn eq(&self, other: &LabelValues) -> bool {
        self.payload() == other.payload()
    }
}

impl Eq for LabelValues {}

impl Drop for LabelValues {
    fn drop(&mut self) {
        let (payload, prefix) = read_varint(self.bytes);
        let whole = std::ptr::slice_from_raw_parts_mut(self.bytes.as_ptr(), prefix + payload);
        // SAFETY: the allocation came from `Box::into_raw` of a `Box<[u8]>` of this length.
        drop(unsafe { Box::from_raw(whole) });
    }
}

impl fmt::Debug for LabelValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn write_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `start`: its value and how many bytes it takes.
fn read_varint(start: NonNull<u8>) -> (usize, usize) {
    let (mut value, mut shift, mut read) = (0usize, 0, 0);
    loop {
        // SAFETY: the varint was written whole at the start of the allocation; reading stops
        // at its last byte (the one without the continuation bit).
        let byte = unsafe { *start.as_ptr().add(read) };
        read += 1;
        value |= ((byte & 0x7F) as usize) << shift;
        if byte & 0x80 == 0 {
            return (value, read);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    fn cases() -> Vec<Vec<String>> {
        let long = "x".repeat(300);
        let raw: Vec<Vec<&str>> = vec![
            vec![],
            vec![""],
            vec!["", ""],
            vec!["v1", "GET"],
            vec!["é\u{1F600}", "a\0b", "\u{FFFF}"],
            vec![&long, "", &long],
        ];
        raw.into_iter()
            .map(|v| v.into_iter().map(String::from).collect())
            .collect()
    }

    #[test]
    fn round_trips_values_in_order() {
        for values in cases() {
            let labels = LabelValues::new(&values);
            assert_eq!(labels.to_vec(), values);
            assert_eq!(labels.len(), values.len());
            assert_eq!(labels.is_empty(), values.is_empty());
            for (i, v) in values.iter().enumerate() {
                assert_eq!(labels.get(i), Some(v.as_str()));
            }
            assert_eq!(labels.get(values.len()), None);
            assert!(labels.equals(&values));
        }
    }

    #[test]
    fn distinct_value_lists_differ() {
        let all: Vec<LabelValues> = cases().iter().map(|v| LabelValues::new(v)).collect();
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a == b, i == j, "{a:?} vs {b:?}");
            }
        }
        assert!(!LabelValues::new(&["a", "b"]).equals(&["a"]));
        assert!(!LabelValues::new(&["a"]).equals(&["a", "b"]));
        assert!(!LabelValues::new(&["ab"]).equals(&["a", "b"]));
    }

    #[test]
    fn hashes_as_a_slice_of_str_and_of_string() {
        let state = RandomState::new();
        for values in cases() {
            let strs: Vec<&str> = values.iter().map(String::as_str).collect();
            let labels = LabelValues::new(&values);
            assert_eq!(state.hash_one(&labels), state.hash_one(&strs[..]));
            assert_eq!(state.hash_one(&labels), state.hash_one(&values[..]));
        }
    }
}
