//! Parsers for the Prometheus text format ([`text`]) and OpenMetrics ([`openmetrics`]), ports of
//! prometheus_client 0.26.0's `parser.py` and `openmetrics/parser.py` that give the same results
//! and the same errors on any input.
//!
//! Input is Python `str` data as WTF-8 (UTF-8 in which lone surrogates are allowed), so strings
//! from Python round-trip exactly. Positions are byte offsets; every place where the reference
//! counts code points (slices such as `text[:-1]`, `len()`) is translated explicitly. Python's
//! character classes (`str.strip`, `int()`, `float()`, `re`'s `\w \s \d`) come from
//! [`pyunicode`], generated from CPython 3.11's Unicode database.
//!
//! Parsed strings live in a [`Store`] (one byte arena plus a table of label pairs); families and
//! samples refer to it by [`Span`]. Errors are [`ParseError`]s that describe the exception the
//! reference raises; the binding layer turns them into the same Python exception.

pub mod openmetrics;
pub mod pyunicode;
pub mod text;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast non-cryptographic hasher for the parsers' sets of byte strings: 8 bytes at a time,
/// each step through splitmix64's (bijective) finalizer.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

#[inline]
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = mix64(self.0 ^ (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = mix64(h ^ u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rem.len()].copy_from_slice(rem);
            h = mix64(h ^ u64::from_le_bytes(buf));
        }
        self.0 = h;
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix64(self.0 ^ n);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = mix64(self.0 ^ n as u64);
    }
}

pub type FxSet<T> = HashSet<T, BuildHasherDefault<Fx>>;

// ---------------------------------------------------------------------------------------------
// Model

/// A string in the [`Store`]'s arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A range of label pairs in the [`Store`], in dict insertion order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Labels {
    pub start: usize,
    pub end: usize,
}

impl Labels {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The strings and samples of a parse.
#[derive(Default, Debug)]
pub struct Store {
    pub arena: Vec<u8>,
    pub pairs: Vec<(Span, Span)>,
    /// The samples of all families: each family owns a range.
    pub samples: Vec<Sample>,
}

impl Store {
    /// Empties the store, keeping its memory, with room for parsing `text`.
    pub fn reset_for(&mut self, text: &[u8]) {
        self.arena.clear();
        self.pairs.clear();
        self.samples.clear();
        self.arena.reserve(text.len() + 64);
        self.pairs.reserve(text.len() / 24);
        self.samples.reserve(text.len() / 40);
    }

    /// The samples of a family.
    pub fn family_samples(&self, f: &Family) -> &[Sample] {
        &self.samples[f.samples.clone()]
    }

    pub fn push(&mut self, s: &[u8]) -> Span {
        let start = self.arena.len();
        self.arena.extend_from_slice(s);
        Span {
            start,
            end: self.arena.len(),
        }
    }

    #[inline]
    pub fn get(&self, s: Span) -> &[u8] {
        &self.arena[s.start..s.end]
    }

    pub fn pairs(&self, l: Labels) -> &[(Span, Span)] {
        &self.pairs[l.start..l.end]
    }

    /// The value of label `name`, like `labels.get(name)`.
    pub fn label(&self, l: Labels, name: &[u8]) -> Option<&[u8]> {
        self.pairs(l)
            .iter()
            .find(|(k, _)| self.get(*k) == name)
            .map(|(_, v)| self.get(*v))
    }

    /// Copies a span of `other` into this store.
    fn copy_span(&mut self, other: &Store, s: Span) -> Span {
        let start = self.arena.len();
        self.arena.extend_from_slice(other.get(s));
        Span {
            start,
            end: self.arena.len(),
        }
    }

    fn copy_labels(&mut self, other: &Store, l: Labels) -> Labels {
        let start = self.pairs.len();
        for &(k, v) in other.pairs(l) {
            let k = self.copy_span(other, k);
            let v = self.copy_span(other, v);
            self.pairs.push((k, v));
        }
        Labels {
            start,
            end: self.pairs.len(),
        }
    }

    /// Copies a sample of `other` into this store.
    pub fn copy_sample(&mut self, other: &Store, s: &Sample) -> Sample {
        Sample {
            name: self.copy_span(other, s.name),
            labels: s.labels.map(|l| self.copy_labels(other, l)),
            value: s.value.clone(),
            timestamp: s.timestamp.clone(),
            exemplar: s.exemplar.as_ref().map(|e| {
                Box::new(Exemplar {
                    labels: self.copy_labels(other, e.labels),
                    value: e.value.clone(),
                    timestamp: e.timestamp.clone(),
                })
            }),
            native_histogram: s.native_histogram.clone(),
        }
    }
}

/// A Python `int`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Int {
    Small(i64),
    /// Outside the `i64` range: ASCII decimal digits with an optional leading `-`, no leading zeros.
    Big(Box<[u8]>),
}

/// A sample or exemplar value: Python `int` or `float`.
#[derive(Clone, Debug)]
pub enum Num {
    Int(Int),
    Float(f64),
}

/// A timestamp: a `float`, or `Timestamp(sec, nsec)` (nsec already negated for negative sec).
#[derive(Clone, Debug)]
pub enum Ts {
    Float(f64),
    Stamp(Int, i64),
}

#[derive(Clone, Debug)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: Num,
    pub timestamp: Option<Ts>,
}

/// `NativeHistogram(...)` of the OpenMetrics parser.
#[derive(Clone, Debug)]
pub struct NativeHist {
    pub count_value: Int,
    pub sum_value: f64,
    pub schema: Int,
    pub zero_threshold: f64,
    pub zero_count: Int,
    pub pos_spans: Option<Vec<(Int, Int)>>,
    pub neg_spans: Option<Vec<(Int, Int)>>,
    pub pos_deltas: Option<Vec<Int>>,
    pub neg_deltas: Option<Vec<Int>>,
}

/// `Sample(name, labels, value, timestamp, exemplar, native_histogram)`; `labels` and `value`
/// are `None` only for native histogram samples.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: Span,
    pub labels: Option<Labels>,
    pub value: Option<Num>,
    pub timestamp: Option<Ts>,
    pub exemplar: Option<Box<Exemplar>>,
    pub native_histogram: Option<Box<NativeHist>>,
}

/// `Metric(name, documentation, type, unit)` with its samples (already validated).
#[derive(Debug)]
pub struct Family {
    pub name: Vec<u8>,
    pub documentation: Vec<u8>,
    /// One of the eight `Metric` types.
    pub typ: &'static str,
    pub unit: Vec<u8>,
    /// Its samples in the [`Store`].
    pub samples: std::ops::Range<usize>,
}

/// Options read from Python when a parse starts.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `prometheus_client.validation._legacy_validation`.
    pub legacy: bool,
    /// `sys.get_int_max_str_digits()` (0: no limit).
    pub max_str_digits: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            legacy: false,
            max_str_digits: 4300,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The exception the reference raises. Byte strings are WTF-8 text.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    /// `ValueError(msg)`.
    Value(Vec<u8>),
    /// `ValueError()`.
    ValueBare,
    /// `ValueError(msg, arg)`.
    ValueArgs(&'static str, Vec<u8>),
    /// `ValueError(prefix + repr(s))`.
    ValueRepr(&'static str, Vec<u8>),
    /// What `int(s)` raises.
    PyInt(Vec<u8>),
    /// What `float(s)` raises.
    PyFloat(Vec<u8>),
    /// What `s.encode('utf-8')` raises (a lone surrogate).
    Encode(Vec<u8>),
    /// `IndexError('string index out of range')`.
    Index,
    /// `KeyError(key)`.
    Key(&'static str),
    /// `AttributeError(msg)`.
    Attribute(&'static str),
    /// `TypeError(msg)`.
    Type(&'static str),
    /// `OverflowError(msg)`.
    Overflow(&'static str),
    /// `ValueError("Clashing name: " + name + suffix)` for the first suffix of
    /// `set(suffixes + [""])`, in Python's iteration order, that is in `clashing`.
    Clash {
        name: Vec<u8>,
        suffixes: &'static [&'static str],
        clashing: Vec<&'static str>,
    },
}

pub type PResult<T> = Result<T, ParseError>;

pub(crate) fn msg(prefix: &str, s: &[u8]) -> ParseError {
    let mut m = Vec::with_capacity(prefix.len() + s.len());
    m.extend_from_slice(prefix.as_bytes());
    m.extend_from_slice(s);
    ParseError::Value(m)
}

// ---------------------------------------------------------------------------------------------
// Python string primitives on WTF-8

/// The code point starting at byte `i` and its length in bytes.
#[inline]
pub fn char_at(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (b0 as u32, 1);
    }
    let c = |k: usize| (s.get(i + k).copied().unwrap_or(0x80) & 0x3f) as u32;
    if b0 < 0xe0 {
        ((((b0 & 0x1f) as u32) << 6) | c(1), 2.min(s.len() - i))
    } else if b0 < 0xf0 {
        (
            (((b0 & 0x0f) as u32) << 12) | (c(1) << 6) | c(2),
            3.min(s.len() - i),
        )
    } else {
        (
            (((b0 & 0x07) as u32) << 18) | (c(1) << 12) | (c(2) << 6) | c(3),
            4.min(s.len() - i),
        )
    }
}

/// Byte index where the last code point of `s` starts (`s` non-empty).
#[inline]
fn last_char_start(s: &[u8]) -> usize {
    let mut i = s.len() - 1;
    while i > 0 && (s[i] & 0xc0) == 0x80 && s.len() - i < 4 {
        i -= 1;
    }
    i
}

/// `len(s)`: the number of code points.
pub fn char_len(s: &[u8]) -> usize {
    s.iter().filter(|&&b| (b & 0xc0) != 0x80).count()
}

/// Byte offset of code point `n` (clamped), for `s[n:]` / `s[:n]`.
pub fn char_offset(s: &[u8], n: usize) -> usize {
    let mut i = 0;
    let mut k = 0;
    while i < s.len() && k < n {
        i += char_at(s, i).1;
        k += 1;
    }
    i
}

/// `s[:-1]`.
pub fn drop_last_char(s: &[u8]) -> &[u8] {
    if s.is_empty() {
        s
    } else {
        &s[..last_char_start(s)]
    }
}

#[inline]
fn is_space_at(s: &[u8], i: usize) -> (bool, usize) {
    let b = s[i];
    if b < 0x80 {
        return (matches!(b, 0x09..=0x0d | 0x1c..=0x20), 1);
    }
    let (c, n) = char_at(s, i);
    (pyunicode::is_space(c), n)
}

/// `s.lstrip()`.
pub fn lstrip(s: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < s.len() {
        let (sp, n) = is_space_at(s, i);
        if !sp {
            break;
        }
        i += n;
    }
    &s[i..]
}

/// `s.rstrip()`.
pub fn rstrip(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 {
        let b = s[end - 1];
        if b < 0x80 {
            if matches!(b, 0x09..=0x0d | 0x1c..=0x20) {
                end -= 1;
                continue;
            }
            break;
        }
        let st = last_char_start(&s[..end]);
        if pyunicode::is_space(char_at(s, st).0) {
            end = st;
        } else {
            break;
        }
    }
    &s[..end]
}

/// `s.strip()`.
pub fn strip(s: &[u8]) -> &[u8] {
    rstrip(lstrip(s))
}

/// Whether `s` contains a lone surrogate (so `s.encode('utf-8')` raises).
pub fn has_surrogate(s: &[u8]) -> bool {
    s.windows(2).any(|w| w[0] == 0xed && w[1] >= 0xa0)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// `re.match('^[a-zA-Z_:][a-zA-Z0-9_:]*$', s)` (`$` also matches before a final newline).
fn regex_name(s: &[u8], colon: bool) -> bool {
    let t = match s.last() {
        Some(b'\n') => &s[..s.len() - 1],
        _ => s,
    };
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':');
    match t.first() {
        Some(&b) if !b.is_ascii_digit() && ok(b) => t[1..].iter().all(|&b| ok(b)),
        _ => false,
    }
}

/// `_is_valid_legacy_metric_name(name)`.
pub fn is_legacy_metric_name(s: &[u8]) -> bool {
    regex_name(s, true)
}

/// `re.match('^__.*$', s)`.
fn is_reserved_label(s: &[u8]) -> bool {
    if !s.starts_with(b"__") {
        return false;
    }
    let r = &s[2..];
    match r.iter().position(|&b| b == b'\n') {
        None => true,
        Some(k) => k == r.len() - 1,
    }
}

/// `_validate_metric_name(name)`.
pub fn validate_metric_name(name: &[u8], legacy: bool) -> PResult<()> {
    if name.is_empty() {
        return Err(ParseError::Value(b"metric name cannot be empty".to_vec()));
    }
    if legacy && !regex_name(name, true) {
        return Err(msg("invalid metric name ", name));
    }
    if has_surrogate(name) {
        return Err(ParseError::Encode(name.to_vec()));
    }
    Ok(())
}

/// Whether `_validate_labelname(name)` passes.
fn valid_labelname(name: &[u8], legacy: bool) -> bool {
    if legacy {
        if !regex_name(name, false) {
            return false;
        }
    } else if has_surrogate(name) {
        return false;
    }
    !is_reserved_label(name)
}

/// The checks of `Metric(name, documentation, typ)` and its type after `untyped` -> `unknown`.
pub fn metric_type(name: &[u8], typ: &[u8], legacy: bool) -> PResult<&'static str> {
    validate_metric_name(name, legacy)?;
    Ok(match typ {
        b"counter" => "counter",
        b"gauge" => "gauge",
        b"summary" => "summary",
        b"histogram" => "histogram",
        b"gaugehistogram" => "gaugehistogram",
        b"unknown" | b"untyped" => "unknown",
        b"info" => "info",
        b"stateset" => "stateset",
        _ => return Err(msg("Invalid metric type: ", typ)),
    })
}

// ---------------------------------------------------------------------------------------------
// Quote-aware scanning (`_is_character_escaped`, `_next_unquoted_char`, ...)

/// `_is_character_escaped(s, pos)`: an odd number of backslashes right before `pos`.
#[inline]
pub fn is_escaped(s: &[u8], pos: usize) -> bool {
    let mut n = 0;
    while pos > n && s[pos - 1 - n] == b'\\' {
        n += 1;
    }
    n % 2 == 1
}

/// `string.whitespace`.
pub const WS: &[u8] = b" \t\n\r\x0b\x0c";

/// `_next_unquoted_char(text, chs, start)`.
#[inline]
pub fn next_unquoted(text: &[u8], chs: &[u8], start: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = start;
    while i < text.len() {
        let c = text[i];
        if c == b'"' && !is_escaped(text, i) {
            in_quotes = !in_quotes;
        }
        if !in_quotes && chs.contains(&c) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `_last_unquoted_char(text, chs)` (index 0 is never looked at).
pub fn last_unquoted(text: &[u8], chs: &[u8]) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = text.len().wrapping_sub(1);
    while text.len() > 1 && i > 0 {
        let c = text[i];
        if c == b'"' && !is_escaped(text, i) {
            in_quotes = !in_quotes;
        }
        if !in_quotes && chs.contains(&c) {
            return Some(i);
        }
        i -= 1;
    }
    None
}

/// `_split_quoted(text, separator, maxsplit)`.
pub fn split_quoted<'a>(text: &'a [u8], sep: &[u8], maxsplit: usize) -> Vec<&'a [u8]> {
    let mut tokens: Vec<&[u8]> = vec![b""];
    let mut x = 0;
    while x < text.len() {
        let sp = match next_unquoted(text, sep, x) {
            None => {
                *tokens.last_mut().unwrap() = &text[x..];
                break;
            }
            Some(sp) => sp,
        };
        if sp == x {
            x += 1;
            continue;
        }
        if maxsplit > 0 && tokens.len() > maxsplit {
            *tokens.last_mut().unwrap() = &text[x..];
            break;
        }
        *tokens.last_mut().unwrap() = &text[x..sp];
        x = sp + 1;
        tokens.push(b"");
    }
    tokens
}

/// `_replace_escaping(s)`: `\\` `\n` `\"` are unescaped, other backslashes kept.
pub fn replace_escaping(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'\\' && i + 1 < s.len() {
            match s[i + 1] {
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b'"' => {
                    out.push(b'"');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
}

/// `_unquote_unescape(text)`, appended to `out`; returns whether it was quoted.
pub fn unquote_unescape(text: &[u8], out: &mut Vec<u8>) -> PResult<bool> {
    if text.is_empty() {
        return Ok(false);
    }
    let mut t = strip(text);
    let mut quoted = false;
    match t.first() {
        None => return Err(ParseError::Index),
        Some(b'"') => {
            if t.len() == 1 || t[t.len() - 1] != b'"' {
                return Err(ParseError::Value(b"missing close quote".to_vec()));
            }
            t = &t[1..t.len() - 1];
            quoted = true;
        }
        _ => {}
    }
    if t.contains(&b'\\') {
        replace_escaping(t, out);
    } else {
        out.extend_from_slice(t);
    }
    Ok(quoted)
}

// ---------------------------------------------------------------------------------------------
// Labels

/// `_next_term(text, openmetrics)`: (label name or None for `__name__`, stripped term, rest).
#[allow(clippy::type_complexity)]
fn next_term(mut text: &[u8], om: bool) -> Result<(Option<&[u8]>, &[u8], &[u8]), ()> {
    if text[0] == b',' {
        text = &text[1..];
        if text.is_empty() {
            return Ok((Some(b""), b"", b""));
        }
        if text[0] == b',' {
            return Err(());
        }
    }
    let mut sp = next_unquoted(text, b"=,}", 0);
    let name = match sp {
        Some(p) if text[p] == b'=' => {
            let n = &text[..p];
            text = &text[p + 1..];
            sp = next_unquoted(text, b",}", 0);
            Some(n)
        }
        _ => None,
    };
    let sp = sp.unwrap_or(text.len());
    let term = &text[..sp];
    if term.is_empty() && om {
        return Err(());
    }
    Ok((name, strip(term), strip(&text[sp..])))
}

/// `parse_labels(labels_string, openmetrics)`: pushes the pairs to `store`.
pub fn parse_labels(
    store: &mut Store,
    labels_string: &[u8],
    om: bool,
    legacy: bool,
) -> PResult<Labels> {
    let start = store.pairs.len();
    let arena_start = store.arena.len();
    let r = parse_labels_inner(store, labels_string, om, legacy, start);
    match r {
        Ok(()) => Ok(Labels {
            start,
            end: store.pairs.len(),
        }),
        Err(e) => {
            store.pairs.truncate(start);
            store.arena.truncate(arena_start);
            Err(match e {
                Some(e) => e,
                None => msg("Invalid labels: ", labels_string),
            })
        }
    }
}

/// `Err(None)`: a ValueError inside the reference's `try` (re-raised as "Invalid labels").
fn parse_labels_inner(
    store: &mut Store,
    labels_string: &[u8],
    om: bool,
    legacy: bool,
    start: usize,
) -> Result<(), Option<ParseError>> {
    let mut sub = strip(labels_string);
    if om && sub.first() == Some(&b',') {
        return Err(Some(msg("leading comma: ", labels_string)));
    }
    let mut seen: Option<HashSet<Vec<u8>>> = None;
    while !sub.is_empty() {
        let (name_term, value_term, rest) = next_term(sub, om).map_err(|_| None)?;
        if value_term.is_empty() {
            if om || rest.len() == sub.len() {
                // (Without progress, the reference loops forever; only a direct call of
                // parse_labels with an unquoted '}' gets here.)
                return Err(None);
            }
            sub = rest;
            continue;
        }
        sub = rest;
        let ns = store.arena.len();
        let quoted = match name_term {
            None => {
                store.arena.extend_from_slice(b"__name__");
                false
            }
            Some(t) => match unquote_unescape(t, &mut store.arena) {
                Ok(q) => q,
                Err(ParseError::Index) => return Err(Some(ParseError::Index)),
                Err(_) => return Err(None),
            },
        };
        let name = Span {
            start: ns,
            end: store.arena.len(),
        };
        if !quoted && !is_legacy_metric_name(store.get(name)) {
            return Err(None);
        }
        if value_term[0] != b'"' {
            return Err(None);
        }
        // The first unescaped quote after the opening one must be the last character.
        let mut i = 1;
        while i < value_term.len() {
            match value_term[i..].iter().position(|&b| b == b'"') {
                None => return Err(None),
                Some(k) => i += k,
            }
            if !is_escaped(value_term, i) {
                break;
            }
            i += 1;
        }
        if i + 1 != value_term.len() {
            return Err(None);
        }
        let vs = store.arena.len();
        let inner = &value_term[1..value_term.len() - 1];
        if inner.contains(&b'\\') {
            replace_escaping(inner, &mut store.arena);
        } else {
            store.arena.extend_from_slice(inner);
        }
        let value = Span {
            start: vs,
            end: store.arena.len(),
        };
        let n = store.get(name);
        if n != b"__name__" && !valid_labelname(n, legacy) {
            return Err(None);
        }
        let count = store.pairs.len() - start;
        let dup = if count < 16 {
            store.pairs[start..].iter().any(|(k, _)| store.get(*k) == n)
        } else {
            let set = seen.get_or_insert_with(|| {
                store.pairs[start..]
                    .iter()
                    .map(|(k, _)| store.get(*k).to_vec())
                    .collect()
            });
            !set.insert(n.to_vec())
        };
        if dup {
            return Err(None);
        }
        store.pairs.push((name, value));
    }
    Ok(())
}

/// The common sample line `name{k="v",...} rest` or `name rest`: legacy names, label names not
/// starting with `__`, label values without quotes or backslashes, single spaces, and no `{` or
/// `"` after the labels. Returns (name, labels pushed to the store, rest), exactly what the
/// general path of both parsers gets for such a line; None (nothing pushed) for any other line.
pub fn fast_sample<'a>(store: &mut Store, line: &'a [u8]) -> Option<(&'a [u8], Labels, &'a [u8])> {
    let n = line.len();
    let first = *line.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b':') {
        return None;
    }
    let mut i = 1;
    while i < n && (line[i].is_ascii_alphanumeric() || line[i] == b'_' || line[i] == b':') {
        i += 1;
    }
    let name = &line[..i];
    let start = store.pairs.len();
    let clean = |rest: &[u8]| !rest.iter().any(|&b| b == b'{' || b == b'"');
    match line.get(i) {
        Some(b' ') => {
            let rest = &line[i + 1..];
            return if clean(rest) {
                Some((name, Labels { start, end: start }, rest))
            } else {
                None
            };
        }
        Some(b'{') => {}
        _ => return None,
    }
    let arena_start = store.arena.len();
    i += 1;
    let ok = (|| {
        loop {
            let ks = i;
            if i >= n || !(line[i].is_ascii_alphabetic() || line[i] == b'_') {
                return None;
            }
            while i < n && (line[i].is_ascii_alphanumeric() || line[i] == b'_') {
                i += 1;
            }
            let k = &line[ks..i];
            if k.starts_with(b"__") || line.get(i) != Some(&b'=') || line.get(i + 1) != Some(&b'"')
            {
                return None;
            }
            i += 2;
            let vs = i;
            while i < n && line[i] != b'"' && line[i] != b'\\' {
                i += 1;
            }
            if i >= n || line[i] != b'"' {
                return None;
            }
            let v = &line[vs..i];
            i += 1;
            if store.pairs.len() - start >= 32
                || store.pairs[start..]
                    .iter()
                    .any(|(kk, _)| store.get(*kk) == k)
            {
                return None;
            }
            let ksp = store.push(k);
            let vsp = store.push(v);
            store.pairs.push((ksp, vsp));
            match line.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if line.get(i) != Some(&b' ') {
            return None;
        }
        let rest = &line[i + 1..];
        if clean(rest) {
            Some(rest)
        } else {
            None
        }
    })();
    match ok {
        Some(rest) => Some((
            name,
            Labels {
                start,
                end: store.pairs.len(),
            },
            rest,
        )),
        None => {
            store.pairs.truncate(start);
            store.arena.truncate(arena_start);
            None
        }
    }
}

/// Removes `__name__` from labels parsed just now (the last ones in the store); its value.
pub fn take_name_label(store: &mut Store, l: &mut Labels) -> Option<Span> {
    let k = (l.start..l.end).find(|&i| store.get(store.pairs[i].0) == b"__name__")?;
    let (_, v) = store.pairs.remove(k);
    l.end -= 1;
    Some(v)
}

// ---------------------------------------------------------------------------------------------
// Numbers: `int(s)`, `float(s)` and the reference's `_parse_value`

/// `_PyUnicode_TransformDecimalAndSpaceToASCII`: None if a character can't be a number's.
fn to_ascii_number(s: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if s.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let (c, n) = char_at(s, i);
        i += n;
        if c < 127 {
            out.push(c as u8);
        } else if pyunicode::is_space(c) {
            out.push(b' ');
        } else if let Some(d) = pyunicode::decimal(c) {
            out.push(b'0' + d);
        } else {
            return None;
        }
    }
    Some(std::borrow::Cow::Owned(out))
}

#[inline]
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `int(s)` (base 10), or None where it raises.
pub fn py_int(s: &[u8], max_digits: usize) -> Option<Int> {
    // Fast path: plain ASCII digits.
    if !s.is_empty() && s.len() <= 18 && s.iter().all(|b| b.is_ascii_digit()) {
        let mut v: i64 = 0;
        for &b in s {
            v = v * 10 + (b - b'0') as i64;
        }
        return Some(Int::Small(v));
    }
    let a = to_ascii_number(s)?;
    let a: &[u8] = &a;
    let mut i = 0;
    while i < a.len() && c_space(a[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < a.len() && (a[i] == b'+' || a[i] == b'-') {
        neg = a[i] == b'-';
        i += 1;
    }
    let mut digits = Vec::new();
    let mut prev = 0u8;
    if i < a.len() && a[i] == b'_' {
        return None;
    }
    while i < a.len() && (a[i].is_ascii_digit() || a[i] == b'_') {
        if a[i] == b'_' {
            if prev == b'_' {
                return None;
            }
        } else {
            digits.push(a[i]);
        }
        prev = a[i];
        i += 1;
    }
    if prev == b'_' || digits.is_empty() {
        return None;
    }
    while i < a.len() && c_space(a[i]) {
        i += 1;
    }
    if i != a.len() {
        return None;
    }
    if max_digits > 0 && digits.len() > 640 && digits.len() > max_digits {
        return None;
    }
    Some(int_from_digits(neg, &digits))
}

/// The `Int` of ASCII decimal digits.
pub fn int_from_digits(neg: bool, digits: &[u8]) -> Int {
    let nz = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let d = &digits[nz..];
    if d.len() <= 18 {
        let mut v: i64 = 0;
        for &b in d {
            v = v * 10 + (b - b'0') as i64;
        }
        return Int::Small(if neg { -v } else { v });
    }
    if d.len() == 19 {
        let mut v: i128 = 0;
        for &b in d {
            v = v * 10 + (b - b'0') as i128;
        }
        let v = if neg { -v } else { v };
        if v >= i64::MIN as i128 && v <= i64::MAX as i128 {
            return Int::Small(v as i64);
        }
    }
    let mut out = Vec::with_capacity(d.len() + 1);
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(d);
    Int::Big(out.into_boxed_slice())
}

/// The decimal grammar of `_Py_dg_strtod`: length of the longest number prefix (0 if none).
fn strtod_prefix(s: &[u8]) -> usize {
    let mut i = 0;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let d0 = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let mut nd = i - d0;
    if i < s.len() && s[i] == b'.' {
        let f0 = i + 1;
        let mut j = f0;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        nd += j - f0;
        if nd > 0 {
            i = j;
        }
    }
    if nd == 0 {
        return 0;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        let e0 = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > e0 {
            i = j;
        }
    }
    i
}

fn eq_ignore_case(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// `float(s)`, or None where it raises.
pub fn py_float(s: &[u8]) -> Option<f64> {
    let a = to_ascii_number(s)?;
    let mut buf;
    let mut a: &[u8] = &a;
    if a.contains(&b'_') {
        buf = Vec::with_capacity(a.len());
        let mut prev = 0u8;
        for &c in a {
            if c == b'_' {
                if !prev.is_ascii_digit() {
                    return None;
                }
            } else {
                buf.push(c);
                if prev == b'_' && !c.is_ascii_digit() {
                    return None;
                }
            }
            prev = c;
        }
        if prev == b'_' {
            return None;
        }
        a = &buf;
    }
    if a.contains(&0) {
        return None;
    }
    let mut lo = 0;
    while lo < a.len() && c_space(a[lo]) {
        lo += 1;
    }
    if lo == a.len() {
        return None;
    }
    let mut hi = a.len();
    while hi > lo + 1 && c_space(a[hi - 1]) {
        hi -= 1;
    }
    let t = &a[lo..hi];
    let n = strtod_prefix(t);
    if n > 0 {
        if n != t.len() {
            return None;
        }
        // The grammar was checked: Rust's parser rounds correctly like Python's dtoa.
        let st = std::str::from_utf8(t).ok()?;
        return parse_decimal(st);
    }
    let (neg, r) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if eq_ignore_case(r, b"inf") {
        if r.len() == 3 || (r.len() == 8 && eq_ignore_case(r, b"infinity")) {
            f64::INFINITY
        } else {
            return None;
        }
    } else if r.len() == 3 && eq_ignore_case(r, b"nan") {
        f64::NAN
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// A decimal string already checked against the dtoa grammar.
fn parse_decimal(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    // Rust refuses forms such as "1." or ".5e3" in some versions: normalise.
    let (sign, body) = match s.as_bytes()[0] {
        b'+' | b'-' => (&s[..1], &s[1..]),
        _ => ("", s),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], &body[p..]),
        None => (body, ""),
    };
    let mant = if mant.ends_with('.') {
        format!("{mant}0")
    } else {
        mant.to_string()
    };
    let mant = if mant.starts_with('.') {
        format!("0{mant}")
    } else {
        mant
    };
    format!("{sign}{mant}{exp}").parse::<f64>().ok()
}

/// `_parse_value(s)`: `int` first, then `float`.
pub fn parse_value(s: &[u8], max_digits: usize) -> PResult<Num> {
    // Fast path for plain ASCII numbers.
    if s.len() <= 18 && !s.is_empty() && s.iter().all(|b| b.is_ascii_digit()) {
        let mut v: i64 = 0;
        for &b in s {
            v = v * 10 + (b - b'0') as i64;
        }
        return Ok(Num::Int(Int::Small(v)));
    }
    // Fast path for plain ASCII floats: not an int (a '.' or an exponent), no spaces.
    if s.len() <= 40
        && s.iter()
            .all(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && s.iter().any(|&c| matches!(c, b'.' | b'e' | b'E'))
    {
        if strtod_prefix(s) == s.len() {
            if let Some(f) = std::str::from_utf8(s).ok().and_then(parse_decimal) {
                return Ok(Num::Float(f));
            }
        }
        return Err(ParseError::PyFloat(s.to_vec()));
    }
    match s {
        b"NaN" => return Ok(Num::Float(f64::NAN)),
        b"+Inf" => return Ok(Num::Float(f64::INFINITY)),
        b"-Inf" => return Ok(Num::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    if s.contains(&b'_') || strip(s).len() != s.len() {
        return Err(ParseError::ValueRepr("Invalid value: ", s.to_vec()));
    }
    if let Some(i) = py_int(s, max_digits) {
        return Ok(Num::Int(i));
    }
    match py_float(s) {
        Some(f) => Ok(Num::Float(f)),
        None => Err(ParseError::PyFloat(s.to_vec())),
    }
}

// ---------------------------------------------------------------------------------------------
// Python comparisons on numbers

impl Int {
    /// `float(self)`; None on OverflowError.
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Int::Small(v) => Some(*v as f64),
            Int::Big(d) => {
                let f: f64 = std::str::from_utf8(d).ok()?.parse().ok()?;
                if f.is_infinite() {
                    None
                } else {
                    Some(f)
                }
            }
        }
    }

    fn is_neg(&self) -> bool {
        match self {
            Int::Small(v) => *v < 0,
            Int::Big(d) => d[0] == b'-',
        }
    }

    /// Three-way comparison of Python ints.
    pub fn cmp_int(&self, other: &Int) -> Ordering {
        match (self, other) {
            (Int::Small(a), Int::Small(b)) => a.cmp(b),
            (Int::Big(a), Int::Small(_)) => {
                if a[0] == b'-' {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Int::Small(_), Int::Big(b)) => {
                if b[0] == b'-' {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Int::Big(a), Int::Big(b)) => {
                let (na, nb) = (a[0] == b'-', b[0] == b'-');
                match (na, nb) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    _ => {
                        let m = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
                        if na {
                            m.reverse()
                        } else {
                            m
                        }
                    }
                }
            }
        }
    }

    /// Exact comparison with a float (None for NaN), as Python does.
    pub fn cmp_float(&self, f: f64) -> Option<Ordering> {
        if f.is_nan() {
            return None;
        }
        if f.is_infinite() {
            return Some(if f > 0.0 {
                Ordering::Less
            } else {
                Ordering::Greater
            });
        }
        match self {
            Int::Small(v) => {
                let fl = f.floor();
                if fl >= 9.3e18 {
                    return Some(Ordering::Less);
                }
                if fl < -9.3e18 {
                    return Some(Ordering::Greater);
                }
                let fi = fl as i128;
                let v = *v as i128;
                Some(match v.cmp(&fi) {
                    Ordering::Equal => {
                        if f > fl {
                            Ordering::Less
                        } else {
                            Ordering::Equal
                        }
                    }
                    o => o,
                })
            }
            Int::Big(d) => {
                if f.abs() < 9.2e18 {
                    return Some(if d[0] == b'-' {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    });
                }
                // |f| is an integer here: compare exact decimal expansions.
                let s = format!("{:.0}", f);
                let fb = int_from_digits(s.starts_with('-'), s.trim_start_matches('-').as_bytes());
                Some(self.cmp_int(&fb))
            }
        }
    }
}

impl Num {
    /// Python's `a < b`, `a == b` etc: None when unordered (NaN).
    pub fn py_cmp(&self, other: &Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp_int(b)),
            (Num::Int(a), Num::Float(b)) => a.cmp_float(*b),
            (Num::Float(a), Num::Int(b)) => b.cmp_float(*a).map(Ordering::reverse),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(b),
        }
    }

    pub fn cmp_i64(&self, v: i64) -> Option<Ordering> {
        self.py_cmp(&Num::Int(Int::Small(v)))
    }

    pub fn lt0(&self) -> bool {
        match self {
            Num::Int(i) => i.is_neg(),
            Num::Float(f) => *f < 0.0,
        }
    }

    pub fn eq_i64(&self, v: i64) -> bool {
        self.cmp_i64(v) == Some(Ordering::Equal)
    }

    /// `isinstance(v, int) or v.is_integer()`.
    pub fn is_integral(&self) -> bool {
        match self {
            Num::Int(_) => true,
            Num::Float(f) => f.is_finite() && f.fract() == 0.0,
        }
    }

    /// `math.isnan(v)`; Err on OverflowError for huge ints.
    pub fn isnan(&self) -> PResult<bool> {
        match self {
            Num::Int(i) => match i.to_f64() {
                Some(_) => Ok(false),
                None => Err(ParseError::Overflow("int too large to convert to float")),
            },
            Num::Float(f) => Ok(f.is_nan()),
        }
    }
}

impl Ts {
    /// Python `==` between two timestamps.
    pub fn py_eq(&self, other: &Ts) -> bool {
        match (self, other) {
            (Ts::Float(a), Ts::Float(b)) => a == b,
            (Ts::Stamp(s1, n1), Ts::Stamp(s2, n2)) => s1 == s2 && n1 == n2,
            _ => false,
        }
    }

    /// Python `self > other`.
    pub fn py_gt(&self, other: &Ts) -> PResult<bool> {
        match (self, other) {
            (Ts::Float(a), Ts::Float(b)) => Ok(a > b),
            (Ts::Stamp(s1, n1), Ts::Stamp(s2, n2)) => Ok(match s1.cmp_int(s2) {
                Ordering::Equal => n1 > n2,
                o => o == Ordering::Greater,
            }),
            _ => Err(ParseError::Attribute(
                "'float' object has no attribute 'sec'",
            )),
        }
    }
}

pub fn opt_ts_eq(a: &Option<Ts>, b: &Option<Ts>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.py_eq(b),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Lines

/// The lines `io.StringIO(text)` yields: split after each `\n`, which stays in the line.
/// A line-at-a-time parser (the lax text one or the strict OpenMetrics one).
pub trait LineFeed {
    fn feed_line(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()>;
    fn finish(&mut self, out: &mut Vec<Family>) -> PResult<()>;
    fn store(&mut self) -> &mut Store;
}

/// Parses a whole string with `parser`: the families before the first error, and that error.
pub fn parse_all<P: LineFeed>(
    mut parser: P,
    text: &[u8],
    mut store: Store,
) -> (Store, Vec<Family>, Option<ParseError>) {
    store.reset_for(text);
    *parser.store() = store;
    let mut out = Vec::new();
    let mut result = lines(text).try_for_each(|line| parser.feed_line(line, &mut out));
    if result.is_ok() {
        result = parser.finish(&mut out);
    }
    (std::mem::take(parser.store()), out, result.err())
}

pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let end = match text[pos..].iter().position(|&b| b == b'\n') {
            Some(k) => pos + k + 1,
            None => text.len(),
        };
        let line = &text[pos..end];
        pos = end;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Option<f64> {
        py_float(s.as_bytes())
    }

    #[test]
    fn floats_like_python() {
        assert_eq!(f("1.5"), Some(1.5));
        assert_eq!(f(" 1.5\n"), Some(1.5));
        assert_eq!(f("1."), Some(1.0));
        assert_eq!(f(".5"), Some(0.5));
        assert_eq!(f("-.5e1"), Some(-5.0));
        assert_eq!(f("1e"), None);
        assert_eq!(f("."), None);
        assert_eq!(f("+Inf"), Some(f64::INFINITY));
        assert_eq!(f("-infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(f("infinit"), None);
        assert!(f("NaN").unwrap().is_nan());
        assert_eq!(f("1_0.5"), Some(10.5));
        assert_eq!(f("1__0"), None);
        assert_eq!(f("_1"), None);
        assert_eq!(f("1e1_0"), Some(1e10));
        assert_eq!(f("١.٥"), Some(1.5));
        assert_eq!(f("1e999999999999999999999"), Some(f64::INFINITY));
        assert_eq!(f("0e999999999999999999999"), Some(0.0));
        assert_eq!(f(""), None);
        assert_eq!(f("0x10"), None);
    }

    #[test]
    fn ints_like_python() {
        assert_eq!(py_int(b"12", 4300), Some(Int::Small(12)));
        assert_eq!(py_int(b" -1_2 ", 4300), Some(Int::Small(-12)));
        assert_eq!(py_int(b"1__2", 4300), None);
        assert_eq!(py_int(b"_12", 4300), None);
        assert_eq!(py_int(b"+", 4300), None);
        assert_eq!(py_int("١٢".as_bytes(), 4300), Some(Int::Small(12)));
        assert_eq!(py_int("\u{1c}1".as_bytes(), 4300), None);
        assert_eq!(
            py_int(b"99999999999999999999", 4300),
            Some(Int::Big(
                b"99999999999999999999".to_vec().into_boxed_slice()
            ))
        );
        assert_eq!(py_int(&[b'1'; 5000], 4300), None);
    }

    #[test]
    fn strings() {
        assert_eq!(strip(" a\u{a0}".as_bytes()), b"a");
        assert_eq!(
            split_quoted(b"# HELP a b c", WS, 3),
            vec![&b"#"[..], b"HELP", b"a", b"b c"]
        );
        assert!(is_legacy_metric_name(b"a\n"));
        assert!(!is_legacy_metric_name(b"a\n\n"));
        assert!(is_reserved_label(b"__a\n"));
        assert!(!is_reserved_label(b"__a\nb"));
        assert_eq!(drop_last_char("aé".as_bytes()), b"a");
    }
}
/// No input makes the parsers panic: seeded random mutations of valid expositions (the Python
/// tests check the results against the reference; this runs without Python).
#[cfg(test)]
mod no_panic {
    use super::*;

    const SEEDS: &[&str] = &[
        "# HELP a_total doc\n# TYPE a_total counter\na_total{x=\"1\"} 2 1\n# EOF\n",
        "# TYPE a histogram\na_bucket{le=\"1.0\"} 0\na_bucket{le=\"+Inf\"} 3 # {t=\"x\"} 1 2\na_count 3\na_sum 2\n# EOF\n",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1.5\ns_count 3\ns_sum 4.5\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n",
        "# TYPE nh histogram\nnh {count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,positive_spans:[0:2],negative_deltas:[2,-1]}\n{\"nh\",a=\"b\"} {count:1,sum:1,schema:1,zero_threshold:0,zero_count:0}\n# EOF\n",
        "{\"my.metric\",\"a b\"=\"b\\n\\\"\\\\\"} 1 1.5\n# TYPE e stateset\ne{e=\"a\"} 1\n# UNIT g_s s\n# TYPE gh gaugehistogram\ngh_bucket{le=\"-1\"} 1\ngh_gsum -1 1.5\n# EOF\n",
    ];
    const PIECES: &[&str] = &[
        "{",
        "}",
        "\"",
        ",",
        "=",
        "#",
        " ",
        "\\",
        "\n",
        "\t",
        ".",
        "+",
        "-",
        "_",
        ":",
        "e",
        "0",
        "9",
        "NaN",
        "Inf",
        "é",
        "\u{a0}",
        "\u{3000}",
        "١",
        " # ",
        "_total",
        "_bucket",
        "_count",
        "le",
        "quantile",
        "# EOF\n",
        "\n# TYPE a ",
        "histogram",
        "{count:1,sum:1,schema:1}",
        "[0:1]",
        "99999999999999999999999",
        "\u{10ffff}",
    ];

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, s: &str) -> Vec<u8> {
        let mut v: Vec<char> = s.chars().collect();
        for _ in 0..1 + rng.below(5) {
            let i = rng.below(v.len() + 1);
            match rng.below(4) {
                0 if !v.is_empty() => {
                    v.remove(i.min(v.len() - 1));
                }
                1 => {
                    let p = PIECES[rng.below(PIECES.len())];
                    for (k, c) in p.chars().enumerate() {
                        v.insert(i + k, c);
                    }
                }
                2 if !v.is_empty() => {
                    let j = rng.below(v.len());
                    let n = rng.below(10).min(v.len() - j);
                    let piece: Vec<char> = v[j..j + n].to_vec();
                    for (k, c) in piece.into_iter().enumerate() {
                        v.insert(i.min(v.len()) + k, c);
                    }
                }
                _ => v.truncate(i),
            }
        }
        let mut out = v.into_iter().collect::<String>().into_bytes();
        // Now and then a lone surrogate (WTF-8), as Python strings may hold.
        if rng.below(10) == 0 {
            let i = rng.below(out.len() + 1);
            out.splice(i..i, [0xed, 0xa0, 0x80]);
        }
        out
    }

    #[test]
    fn mutated_inputs_do_not_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let n = std::env::var("FASTPROM_NO_PANIC_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let mut store = Store::default();
        for k in 0..n {
            let seed = SEEDS[rng.below(SEEDS.len())];
            let mut text = mutate(&mut rng, seed);
            if k % 3 == 0 {
                let s = String::from_utf8_lossy(&text).into_owned();
                text = mutate(&mut rng, &s);
            }
            let opts = Options {
                legacy: k % 5 == 0,
                max_str_digits: 4300,
            };
            let (s, _, _) = text::parse(&text, opts, store);
            let (s, _, _) = openmetrics::parse(&text, opts, s);
            store = s;
            let _ = parse_labels(&mut store, &text, k % 2 == 0, false);
        }
    }
}
