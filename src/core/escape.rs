//! Name and text escaping of `prometheus_client.openmetrics.exposition`.
//!
//! Names may be passed in two parts (`head` + `tail`) so a sample's family name and suffix are
//! escaped as one string without concatenating them.

use crate::core::model::Escaping;

/// Which legacy rune predicate `_escape` applies: metric names also allow ':'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runes {
    Metric,
    Label,
}

/// Byte classes for the table lookups below.
const WORD: u8 = 1; // [a-zA-Z_]
const DIGIT: u8 = 2;
const COLON: u8 = 4;
const NEEDS_BACKSLASH: u8 = 8; // backslash, newline, double quote

const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() || c == b'_' {
            WORD
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b':' {
            COLON
        } else if c == b'\\' || c == b'\n' || c == b'"' {
            NEEDS_BACKSLASH
        } else {
            0
        };
        b += 1;
    }
    table
}

static CLASSES: [u8; 256] = byte_classes();

impl Runes {
    /// Classes allowed at index 0 and after it.
    fn masks(self) -> (u8, u8) {
        match self {
            Runes::Metric => (WORD | COLON, WORD | DIGIT | COLON),
            Runes::Label => (WORD, WORD | DIGIT),
        }
    }
}

fn is_legacy_byte(b: u8, first: bool, runes: Runes) -> bool {
    let (first_mask, rest_mask) = runes.masks();
    CLASSES[b as usize] & if first { first_mask } else { rest_mask } != 0
}

fn is_legacy_rune(c: char, first: bool, runes: Runes) -> bool {
    c.is_ascii() && is_legacy_byte(c as u8, first, runes)
}

/// Whether every byte of `head + tail` is a legacy rune (digits not first).
fn all_legacy_bytes(head: &[u8], tail: &[u8], runes: Runes) -> bool {
    let (first_mask, rest_mask) = runes.masks();
    let all = |s: &[u8]| s.iter().all(|&b| CLASSES[b as usize] & rest_mask != 0);
    match head.first().or(tail.first()) {
        Some(&first) => CLASSES[first as usize] & first_mask != 0 && all(head) && all(tail),
        None => true,
    }
}

/// `re.match('^[...][...]*$', name)`; Python's `$` also matches before one trailing newline.
fn matches_legacy_pattern(head: &str, tail: &str, runes: Runes) -> bool {
    let (mut head, mut tail) = (head.as_bytes(), tail.as_bytes());
    if let Some(rest) = tail.strip_suffix(b"\n") {
        tail = rest;
    } else if tail.is_empty() {
        head = head.strip_suffix(b"\n").unwrap_or(head);
    }
    !(head.is_empty() && tail.is_empty()) && all_legacy_bytes(head, tail, runes)
}

/// `_is_valid_legacy_metric_name`: `^[a-zA-Z_:][a-zA-Z0-9_:]*$` with Python `re` semantics.
pub fn is_valid_legacy_metric_name(s: &str) -> bool {
    matches_legacy_pattern(s, "", Runes::Metric)
}

/// [`is_valid_legacy_metric_name`] of `head + tail`.
pub fn is_valid_legacy_metric_name_parts(head: &str, tail: &str) -> bool {
    matches_legacy_pattern(head, tail, Runes::Metric)
}

/// `_is_valid_legacy_labelname`: `^[a-zA-Z_][a-zA-Z0-9_]*$` (Python `re`) and not starting
/// with the reserved `__`.
pub fn is_valid_legacy_label_name(s: &str) -> bool {
    matches_legacy_pattern(s, "", Runes::Label) && !s.starts_with("__")
}

/// Copies `s`, backslash-escaping `\` and newline, and `"` too when `quote` is set.
fn write_backslashed(out: &mut Vec<u8>, s: &str, quote: bool) {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| CLASSES[b as usize] & NEEDS_BACKSLASH != 0)
    {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Label values and OpenMetrics HELP text: `\`, newline and `"` escaped.
pub fn write_label_value(out: &mut Vec<u8>, s: &str) {
    write_backslashed(out, s, true);
}

/// HELP text of the Prometheus text format: only `\` and newline escaped.
pub fn write_help_text(out: &mut Vec<u8>, s: &str) {
    write_backslashed(out, s, false);
}

/// HELP text of OpenMetrics: `\`, newline and `"` escaped.
pub fn write_help_openmetrics(out: &mut Vec<u8>, s: &str) {
    write_backslashed(out, s, true);
}

fn write_hex(out: &mut Vec<u8>, mut n: u32) {
    let mut buf = [0u8; 8];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[pos..]);
}

fn write_underscores(out: &mut Vec<u8>, head: &str, tail: &str, runes: Runes) {
    if all_legacy_bytes(head.as_bytes(), tail.as_bytes(), runes) {
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(tail.as_bytes());
        return;
    }
    for (i, c) in head.chars().chain(tail.chars()).enumerate() {
        if is_legacy_rune(c, i == 0, runes) {
            out.push(c as u8);
        } else {
            out.push(b'_');
        }
    }
}

fn write_dots(out: &mut Vec<u8>, head: &str, tail: &str, runes: Runes) {
    for (i, c) in head.chars().chain(tail.chars()).enumerate() {
        if c == '_' {
            out.extend_from_slice(b"__");
        } else if c == '.' {
            out.extend_from_slice(b"_dot_");
        } else if is_legacy_rune(c, i == 0, runes) {
            out.push(c as u8);
        } else {
            out.extend_from_slice(b"__");
        }
    }
}

fn write_values(out: &mut Vec<u8>, head: &str, tail: &str, runes: Runes) {
    out.extend_from_slice(b"U__");
    // The reference writes `_FFFD_` for surrogates; a Rust `char` is never one.
    for (i, c) in head.chars().chain(tail.chars()).enumerate() {
        if c == '_' {
            out.extend_from_slice(b"__");
        } else if is_legacy_rune(c, i == 0, runes) {
            out.push(c as u8);
        } else {
            out.push(b'_');
            write_hex(out, c as u32);
            out.push(b'_');
        }
    }
}

/// `_escape(head + tail, escaping, runes)`.
pub fn write_escaped_parts(
    out: &mut Vec<u8>,
    head: &str,
    tail: &str,
    escaping: Escaping,
    runes: Runes,
) {
    match escaping {
        Escaping::AllowUtf8 => {
            write_backslashed(out, head, true);
            write_backslashed(out, tail, true);
        }
        Escaping::Underscores => write_underscores(out, head, tail, runes),
        Escaping::Dots => write_dots(out, head, tail, runes),
        Escaping::Values => write_values(out, head, tail, runes),
        Escaping::Other => {
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(tail.as_bytes());
        }
    }
}

/// `_escape(s, escaping, runes)`.
pub fn write_escaped(out: &mut Vec<u8>, s: &str, escaping: Escaping, runes: Runes) {
    write_escaped_parts(out, s, "", escaping, runes);
}

/// Shared shape of `escape_metric_name` / `escape_label_name`.
fn write_name(
    out: &mut Vec<u8>,
    head: &str,
    tail: &str,
    escaping: Escaping,
    runes: Runes,
    legacy: impl Fn() -> bool,
) {
    if head.is_empty() && tail.is_empty() {
        return;
    }
    match escaping {
        Escaping::AllowUtf8 if !legacy() => {
            out.push(b'"');
            write_escaped_parts(out, head, tail, escaping, runes);
            out.push(b'"');
        }
        Escaping::Underscores | Escaping::Values if legacy() => {
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(tail.as_bytes());
        }
        _ => write_escaped_parts(out, head, tail, escaping, runes),
    }
}

/// `escape_metric_name(head + tail, escaping)`.
pub fn write_metric_name_parts(out: &mut Vec<u8>, head: &str, tail: &str, escaping: Escaping) {
    let legacy = || is_valid_legacy_metric_name_parts(head, tail);
    write_name(out, head, tail, escaping, Runes::Metric, legacy);
}

/// `escape_metric_name(s, escaping)`.
pub fn write_metric_name(out: &mut Vec<u8>, s: &str, escaping: Escaping) {
    write_metric_name_parts(out, s, "", escaping);
}

/// `escape_label_name(s, escaping)`.
pub fn write_label_name(out: &mut Vec<u8>, s: &str, escaping: Escaping) {
    let legacy = || is_valid_legacy_label_name(s);
    write_name(out, s, "", escaping, Runes::Label, legacy);
}

/// `k="v",...` with names through `escape_label_name` and values escaped.
pub fn write_labels(out: &mut Vec<u8>, labels: &[(&str, &str)], escaping: Escaping) {
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_label_name(out, key, escaping);
        out.extend_from_slice(b"=\"");
        write_label_value(out, value);
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::format::run_python;

    const SCHEMES: [(Escaping, &str); 5] = [
        (Escaping::AllowUtf8, "allow-utf-8"),
        (Escaping::Underscores, "underscores"),
        (Escaping::Dots, "dots"),
        (Escaping::Values, "values"),
        (Escaping::Other, "bogus"),
    ];

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn legacy_checks() {
        assert!(is_valid_legacy_metric_name("a:b_c9"));
        assert!(is_valid_legacy_metric_name(":a"));
        assert!(!is_valid_legacy_metric_name("9a"));
        assert!(!is_valid_legacy_metric_name(""));
        assert!(!is_valid_legacy_metric_name("a.b"));
        assert!(!is_valid_legacy_metric_name("ü"));
        assert!(is_valid_legacy_metric_name("ab\n"));
        assert!(!is_valid_legacy_metric_name("\n"));
        assert!(!is_valid_legacy_metric_name("ab\n\n"));
        assert!(is_valid_legacy_metric_name_parts("ab", "_total"));
        assert!(!is_valid_legacy_metric_name_parts("", "9"));
        assert!(is_valid_legacy_label_name("_a1"));
        assert!(!is_valid_legacy_label_name("a:b"));
        assert!(!is_valid_legacy_label_name("__a"));
        assert!(!is_valid_legacy_label_name("1a"));
        assert!(is_valid_legacy_label_name("ab\n"));
    }

    #[test]
    fn escaping_schemes() {
        let metric = |s: &str, e| render(|o| write_metric_name(o, s, e));
        let label = |s: &str, e| render(|o| write_label_name(o, s, e));
        assert_eq!(metric("my.counter", Escaping::Underscores), "my_counter");
        assert_eq!(metric("ünï", Escaping::Underscores), "_n_");
        assert_eq!(metric("a:b", Escaping::Underscores), "a:b");
        assert_eq!(
            metric("my.counter_total", Escaping::Dots),
            "my_dot_counter__total"
        );
        assert_eq!(
            metric("my.counter_total", Escaping::Values),
            "U__my_2e_counter__total"
        );
        assert_eq!(metric("a😀", Escaping::Values), "U__a_1f600_");
        assert_eq!(metric("a\"b", Escaping::AllowUtf8), "\"a\\\"b\"");
        assert_eq!(metric("ok", Escaping::AllowUtf8), "ok");
        assert_eq!(metric("a.b", Escaping::Other), "a.b");
        assert_eq!(metric("", Escaping::Values), "");
        assert_eq!(label("a:b", Escaping::Underscores), "a_b");
        assert_eq!(label("__x", Escaping::AllowUtf8), "\"__x\"");
        assert_eq!(label("__x", Escaping::Values), "U______x");
        let sample = |s: &str, e| render(|o| write_escaped(o, s, e, Runes::Label));
        assert_eq!(sample("a:b", Escaping::Underscores), "a_b");
        assert_eq!(sample("ok", Escaping::Values), "U__ok");
        assert_eq!(sample("9a", Escaping::Underscores), "_a");
    }

    #[test]
    fn text_escapes() {
        let s = "a\\b\n\"c\"";
        assert_eq!(render(|o| write_label_value(o, s)), "a\\\\b\\n\\\"c\\\"");
        assert_eq!(render(|o| write_help_text(o, s)), "a\\\\b\\n\"c\"");
        assert_eq!(
            render(|o| write_help_openmetrics(o, s)),
            "a\\\\b\\n\\\"c\\\""
        );
        assert_eq!(render(|o| write_label_value(o, "plain")), "plain");
    }

    fn py_literal(s: &str) -> String {
        let mut lit = String::from("'");
        for c in s.chars() {
            lit.push_str(&format!("\\U{:08x}", c as u32));
        }
        lit.push('\'');
        lit
    }

    #[test]
    fn matches_python() {
        let names = [
            "", "a", "9", "a9", "9a", "a:b", ":a", "_", "__a", "a.b", "a_b.c", "ünï", "a😀b",
            "a\nb", "ab\n", "\n", "a\"b\\c", "a b", "a-b", "ÿ", "a\u{7f}", "A:Z_09",
        ];
        let mut rust = String::new();
        let mut script = String::from(
            "from prometheus_client.openmetrics.exposition import escape_metric_name, \
             escape_label_name, _escape, _is_legacy_labelname_rune, _is_legacy_metric_rune\n\
             from prometheus_client.validation import _is_valid_legacy_metric_name, \
             _is_valid_legacy_labelname\n\
             names = [",
        );
        for name in names {
            script.push_str(&py_literal(name));
            script.push(',');
        }
        script.push_str("]\nschemes = [");
        for (_, py) in SCHEMES {
            script.push_str(&format!("'{py}',"));
        }
        script.push_str(
            "]\nfor n in names:\n\
             \x20   print(int(_is_valid_legacy_metric_name(n)), int(_is_valid_legacy_labelname(n)))\n\
             \x20   for e in schemes:\n\
             \x20       for v in (escape_metric_name(n, e), escape_label_name(n, e), \
             _escape(n, e, _is_legacy_metric_rune), _escape(n, e, _is_legacy_labelname_rune)):\n\
             \x20           print(v.encode('utf-8').hex())\n",
        );
        for name in names {
            rust.push_str(&format!(
                "{} {}\n",
                is_valid_legacy_metric_name(name) as u8,
                is_valid_legacy_label_name(name) as u8
            ));
            for (scheme, _) in SCHEMES {
                let outputs = [
                    render(|o| write_metric_name(o, name, scheme)),
                    render(|o| write_label_name(o, name, scheme)),
                    render(|o| write_escaped(o, name, scheme, Runes::Metric)),
                    render(|o| write_escaped(o, name, scheme, Runes::Label)),
                ];
                for v in outputs {
                    for b in v.bytes() {
                        rust.push_str(&format!("{b:02x}"));
                    }
                    rust.push('\n');
                }
            }
        }
        let Some(python) = run_python(&script, "") else {
            return;
        };
        for (i, (p, r)) in python.lines().zip(rust.lines()).enumerate() {
            assert_eq!(p, r, "line {i}");
        }
        assert_eq!(python.lines().count(), rust.lines().count());
    }
}
