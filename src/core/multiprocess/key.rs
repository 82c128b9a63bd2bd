//! The JSON keys of multiprocess files: `mmap_dict.mmap_key` and the collector's `json.loads`.

use std::fmt::Write;

/// A parsed key: `[metric_name, sample_name, {labels}, help]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub metric_name: String,
    pub sample_name: String,
    /// Label pairs in the JSON object's order (a repeated name keeps its first place and its
    /// last value, as a Python dict does).
    pub labels: Vec<(String, String)>,
    pub help: String,
}

/// `json.dumps([metric_name, sample_name, dict(labels), help], sort_keys=True)`.
pub fn mmap_key(
    metric_name: &str,
    sample_name: &str,
    labels: &[(&str, &str)],
    help: &str,
) -> String {
    let mut sorted = labels.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0)); // stable: a repeated name keeps its last value below
    let mut out = String::with_capacity(32 + metric_name.len() * 2 + help.len());
    out.push('[');
    push_json_string(&mut out, metric_name);
    out.push_str(", ");
    push_json_string(&mut out, sample_name);
    out.push_str(", {");
    let mut first = true;
    for (i, (name, value)) in sorted.iter().enumerate() {
        if sorted.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        push_json_string(&mut out, name);
        out.push_str(": ");
        push_json_string(&mut out, value);
    }
    out.push_str("}, ");
    push_json_string(&mut out, help);
    out.push(']');
    out
}

/// A JSON string literal as `json.dumps` writes it with `ensure_ascii=True`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Parses a key of the shape `mmap_key` writes (any JSON whitespace and escapes). `None` for
/// anything else, including non-string label values and lone surrogates.
pub fn parse_key(text: &str) -> Option<Key> {
    let mut p = Parser { text, pos: 0 };
    p.expect(b'[')?;
    let metric_name = p.string()?;
    p.expect(b',')?;
    let sample_name = p.string()?;
    p.expect(b',')?;
    let labels = p.labels()?;
    p.expect(b',')?;
    let help = p.string()?;
    p.expect(b']')?;
    p.skip_whitespace();
    (p.pos == text.len()).then_some(Key {
        metric_name,
        sample_name,
        labels,
        help,
    })
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then consumes `byte`.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// `{"name": "value", ...}`
    fn labels(&mut self) -> Option<Vec<(String, String)>> {
        self.expect(b'{')?;
        let mut labels: Vec<(String, String)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(labels);
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            let value = self.string()?;
            match labels.iter_mut().find(|(n, _)| *n == name) {
                Some(pair) => pair.1 = value,
                None => labels.push((name, value)),
            }
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(labels);
                }
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            // Stops only at ASCII bytes, so both ends are char boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                _ => return None, // a raw control character (json.loads is strict)
            }
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xd800..0xdc00).contains(&unit) {
                    let rest = &self.text.as_bytes()[self.pos..];
                    if !rest.starts_with(b"\\u") {
                        return None;
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    char::decode_utf16([unit, low]).next()?.ok()?
                } else {
                    char::from_u32(u32::from(unit))? // lone low surrogates fail here
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u16::from_str_radix(digits, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_json_dumps() {
        assert_eq!(
            mmap_key("req", "req_total", &[("m", "get")], "Requests"),
            r#"["req", "req_total", {"m": "get"}, "Requests"]"#
        );
        assert_eq!(mmap_key("a", "a", &[], ""), r#"["a", "a", {}, ""]"#);
        assert_eq!(
            mmap_key(
                "é",
                "x",
                &[("k", "日😀")],
                "q\"b\\n\nr\rt\tb\u{8}f\u{c}\u{1}\u{7f}/"
            ),
            r#"["\u00e9", "x", {"k": "\u65e5\ud83d\ude00"}, "q\"b\\n\nr\rt\tb\bf\f\u0001\u007f/"]"#
        );
    }

    #[test]
    fn sorts_label_names_by_code_point() {
        let labels = [("z", "1"), ("é", "2"), ("a", "3"), ("Z", "4"), ("aa", "5")];
        assert_eq!(
            mmap_key("m", "m", &labels, "h"),
            r#"["m", "m", {"Z": "4", "a": "3", "aa": "5", "z": "1", "\u00e9": "2"}, "h"]"#
        );
    }

    #[test]
    fn repeated_label_name_keeps_last_value() {
        assert_eq!(
            mmap_key("m", "m", &[("a", "1"), ("b", "2"), ("a", "3")], "h"),
            r#"["m", "m", {"a": "3", "b": "2"}, "h"]"#
        );
    }

    fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_round_trips() {
        let odd = "q\"b\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é日😀/";
        let labels = [("a", odd), ("le", "+Inf"), (odd, "")];
        let key = parse_key(&mmap_key(odd, "s", &labels, odd)).unwrap();
        assert_eq!(key.metric_name, odd);
        assert_eq!(key.sample_name, "s");
        assert_eq!(key.labels, owned(&labels));
        assert_eq!(key.help, odd);
    }

    #[test]
    fn parse_accepts_any_json_spelling() {
        let text =
            " \n[\"m\",\t\"s\" ,{ \"b\" : \"\\u00E9\\/\", \"a\":\"\\ud83d\\ude00\" } ,\"h\"]\r\n";
        let key = parse_key(text).unwrap();
        assert_eq!(key.labels, owned(&[("b", "é/"), ("a", "😀")]));
        // A repeated name keeps its first place and its last value.
        let key = parse_key(r#"["m", "s", {"a": "1", "b": "2", "a": "3"}, "h"]"#).unwrap();
        assert_eq!(key.labels, owned(&[("a", "3"), ("b", "2")]));
    }

    #[test]
    fn parse_rejects_other_shapes() {
        for text in [
            "",
            "[]",
            r#"["m", "s", {}]"#,
            r#"["m", "s", {}, "h", "x"]"#,
            r#"["m", "s", {}, "h"] x"#,
            r#"["m", "s", {"a": 1}, "h"]"#,
            r#"["m", "s", {"a": null}, "h"]"#,
            r#"["m", "s", [], "h"]"#,
            r#"["m", "s", {"a": "1",}, "h"]"#,
            r#"["m", "s", {,}, "h"]"#,
            r#"[1, "s", {}, "h"]"#,
            r#"["m", "s", {}, "h",]"#,
            r#"["m", "s", {}, "\ud83d"]"#,
            r#"["m", "s", {}, "\ude00"]"#,
            r#"["m", "s", {}, "\ud83d\u0041"]"#,
            r#"["m", "s", {}, "\u12"]"#,
            r#"["m", "s", {}, "\x41"]"#,
            "[\"m\", \"s\", {}, \"a\tb\"]",
            "\u{feff}[\"m\", \"s\", {}, \"h\"]",
            r#"["m", "s", {}, "h"#,
        ] {
            assert_eq!(parse_key(text), None, "{text:?}");
        }
    }

    /// Python's own `json.dumps` agrees on tricky strings.
    #[test]
    fn matches_python_json_dumps() {
        let script = r#"
import json, sys
import prometheus_client
for line in sys.stdin.read().split('\x00'):
    m, s, n1, v1, n2, v2, h = line.split('\x01')
    print(json.dumps([m, s, {n1: v1, n2: v2}, h], sort_keys=True))
"#;
        let cases = [
            [
                "m",
                "m_total",
                "zé",
                "\"x\"\n",
                "a",
                "日本😀\t\\",
                "help é\u{7f}\u{1f}\u{ffff}",
            ],
            ["μ", "s", "b", "", "B", "\u{10ffff}\u{e000}", ""],
        ];
        let input = cases
            .iter()
            .map(|c| c.join("\x01"))
            .collect::<Vec<_>>()
            .join("\x00");
        let Some(output) = crate::core::format::run_python(script, &input) else {
            return;
        };
        assert_eq!(output.lines().count(), cases.len());
        for (case, line) in cases.iter().zip(output.lines()) {
            let ours = mmap_key(
                case[0],
                case[1],
                &[(case[2], case[3]), (case[4], case[5])],
                case[6],
            );
            assert_eq!(ours, line);
        }
    }
}
