//! The lax Prometheus text parser (`prometheus_client.parser.text_fd_to_metric_families`).
//!
//! [`TextParser::feed_line`] handles one line as the reference's loop body does: the families
//! it yields are pushed to `out`, and an error ends the parse (the reference's generator raises
//! it right after yielding what was pushed before it). [`TextParser::finish`] is the code after
//! the loop.

use super::*;

/// The reference's parser state between lines.
pub struct TextParser {
    pub opts: Options,
    pub store: Store,
    name: Vec<u8>,
    documentation: Vec<u8>,
    typ: Vec<u8>,
    /// Where the current family's samples start in `store.samples`.
    fam_start: usize,
    allowed: Vec<Vec<u8>>,
}

/// `_replace_help_escaping(s)`: only `\\` and `\n`.
fn help_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() && (s[i + 1] == b'\\' || s[i + 1] == b'n') {
            out.push(if s[i + 1] == b'n' { b'\n' } else { b'\\' });
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `value / 1000` for the timestamp of a sample.
fn millis_to_seconds(v: Num) -> PResult<f64> {
    match v {
        Num::Float(f) => Ok(f / 1000.0),
        Num::Int(Int::Small(i)) if i.unsigned_abs() <= (1u64 << 53) => Ok(i as f64 / 1000.0),
        Num::Int(i) => {
            let digits = match &i {
                Int::Small(v) => v.to_string().into_bytes(),
                Int::Big(d) => d.to_vec(),
            };
            // Correctly rounded, as Python's int true division.
            let s = format!("{}e-3", String::from_utf8_lossy(&digits));
            let f: f64 = s.parse().unwrap_or(f64::INFINITY);
            if f.is_infinite() {
                Err(ParseError::Overflow(
                    "integer division result too large for a float",
                ))
            } else {
                Ok(f)
            }
        }
    }
}

/// `_parse_value_and_timestamp(s)`.
fn value_and_timestamp(s: &[u8], max_digits: usize) -> PResult<(Num, Option<Ts>)> {
    let s = lstrip(s);
    let sep = if s.contains(&b' ') { b' ' } else { b'\t' };
    let mut first: Option<&[u8]> = None;
    let mut last: Option<&[u8]> = None;
    let mut n = 0;
    for piece in s.split(|&b| b == sep) {
        let p = strip(piece);
        if p.is_empty() {
            continue;
        }
        if first.is_none() {
            first = Some(p);
        }
        last = Some(p);
        n += 1;
    }
    let first = match first {
        None => return Err(ParseError::PyFloat(s.to_vec())),
        Some(f) => f,
    };
    let value = parse_value(first, max_digits)?;
    let ts = if n > 1 {
        Some(Ts::Float(millis_to_seconds(parse_value(
            last.unwrap(),
            max_digits,
        )?)?))
    } else {
        None
    };
    Ok((value, ts))
}

impl TextParser {
    pub fn new(opts: Options) -> TextParser {
        TextParser {
            opts,
            store: Store::default(),
            name: Vec::new(),
            documentation: Vec::new(),
            typ: b"untyped".to_vec(),
            fam_start: 0,
            allowed: Vec::new(),
        }
    }

    /// `build_metric(name, documentation, typ, samples)`.
    fn build(
        &mut self,
        name: &[u8],
        documentation: &[u8],
        typ: &[u8],
        samples: std::ops::Range<usize>,
    ) -> PResult<Family> {
        let mut name = name;
        if typ == b"counter" {
            if name.ends_with(b"_total") {
                name = &name[..name.len() - 6];
            } else {
                for i in samples.clone() {
                    let n = self.store.samples[i].name;
                    let start = self.store.arena.len();
                    self.store.arena.extend_from_within(n.start..n.end);
                    self.store.arena.extend_from_slice(b"_total");
                    self.store.samples[i].name = Span {
                        start,
                        end: self.store.arena.len(),
                    };
                }
            }
        }
        let typ = metric_type(name, typ, self.opts.legacy)?;
        Ok(Family {
            name: name.to_vec(),
            documentation: documentation.to_vec(),
            typ,
            unit: Vec::new(),
            samples,
        })
    }

    /// Yields the current family if there is one (`if name != '': yield build_metric(...)`).
    fn flush(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        if !self.name.is_empty() {
            let name = std::mem::take(&mut self.name);
            let doc = std::mem::take(&mut self.documentation);
            let typ = std::mem::take(&mut self.typ);
            let samples = self.fam_start..self.store.samples.len();
            self.fam_start = samples.end;
            let r = self.build(&name, &doc, &typ, samples);
            self.name = name;
            self.documentation = doc;
            self.typ = typ;
            out.push(r?);
        }
        Ok(())
    }

    /// One line of `for line in fd`.
    pub fn feed_line(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        let line = strip(line);
        if line.first() == Some(&b'#') {
            let parts = split_quoted(line, WS, 3);
            if parts.len() < 2 {
                return Ok(());
            }
            let mut candidate = Vec::new();
            if parts.len() > 2 {
                if parts[1] != b"TYPE" && parts[1] != b"HELP" {
                    return Ok(());
                }
                let quoted = unquote_unescape(parts[2], &mut candidate)?;
                if !quoted && !is_legacy_metric_name(&candidate) {
                    return Err(ParseError::ValueBare);
                }
            }
            if parts[1] == b"HELP" {
                if candidate != self.name {
                    self.flush(out)?;
                    self.name = candidate.clone();
                    self.typ = b"untyped".to_vec();
                    self.fam_start = self.store.samples.len();
                    self.allowed = vec![candidate];
                }
                self.documentation = if parts.len() == 4 {
                    help_unescape(parts[3])
                } else {
                    Vec::new()
                };
            } else if parts[1] == b"TYPE" {
                if parts.len() < 4 {
                    return Err(ParseError::ValueBare);
                }
                if candidate != self.name {
                    self.flush(out)?;
                    self.name = candidate;
                    self.documentation = Vec::new();
                    self.fam_start = self.store.samples.len();
                }
                self.typ = parts[3].to_vec();
                let suffixes: &[&[u8]] = match parts[3] {
                    b"summary" => &[b"_count", b"_sum", b""],
                    b"histogram" => &[b"_count", b"_sum", b"_bucket"],
                    _ => &[b""],
                };
                self.allowed = suffixes
                    .iter()
                    .map(|s| [&self.name[..], s].concat())
                    .collect();
            }
            return Ok(());
        }
        if line.is_empty() {
            return Ok(());
        }
        let sample = self.parse_sample(line)?;
        let sname = self.store.get(sample.name);
        if !self.allowed.iter().any(|a| a[..] == *sname) {
            self.flush(out)?;
            self.name = Vec::new();
            self.documentation = Vec::new();
            self.typ = b"untyped".to_vec();
            self.fam_start = self.store.samples.len();
            self.allowed = Vec::new();
            let name = self.store.get(sample.name).to_vec();
            self.store.samples.push(sample);
            let at = self.store.samples.len();
            self.fam_start = at;
            out.push(self.build(&name, b"", b"untyped", at - 1..at)?);
        } else {
            self.store.samples.push(sample);
        }
        Ok(())
    }

    /// After the last line.
    pub fn finish(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        self.flush(out)?;
        self.name.clear();
        Ok(())
    }

    /// `_parse_sample(text)`.
    fn parse_sample(&mut self, text: &[u8]) -> PResult<Sample> {
        let md = self.opts.max_str_digits;
        if let Some((name, labels, rest)) = fast_sample(&mut self.store, text) {
            let (value, timestamp) = value_and_timestamp(rest, md)?;
            let name = self.store.push(name);
            return Ok(Sample {
                name,
                labels: Some(labels),
                value: Some(value),
                timestamp,
                exemplar: None,
                native_histogram: None,
            });
        }
        let label_start = next_unquoted(text, b"{", 0);
        let ls = match label_start {
            Some(ls) if !contains(&text[..ls], b" # ") => ls,
            _ => {
                let name_end = next_unquoted(text, b" \t", 0);
                let raw = match name_end {
                    Some(e) => &text[..e],
                    None => drop_last_char(text),
                };
                let name = strip(raw);
                if !is_legacy_metric_name(name) {
                    return Err(msg("invalid metric name:", text));
                }
                let remaining = match name_end {
                    Some(e) => &text[e + 1..],
                    None => text,
                };
                let (value, timestamp) = value_and_timestamp(remaining, md)?;
                let name = self.store.push(name);
                let at = self.store.pairs.len();
                return Ok(Sample {
                    name,
                    labels: Some(Labels { start: at, end: at }),
                    value: Some(value),
                    timestamp,
                    exemplar: None,
                    native_histogram: None,
                });
            }
        };
        let name = strip(&text[..ls]);
        let label_end = next_unquoted(&text[ls..], b"}", 0).map(|k| k + ls);
        let labels_string: &[u8] = match label_end {
            Some(le) => &text[ls + 1..le],
            // text[ls + 1:ls - 1]: empty, unless ls == 0 (then text[1:-1]).
            None if ls == 0 => {
                let end = drop_last_char(text).len();
                if end > 1 {
                    &text[1..end]
                } else {
                    b""
                }
            }
            None => b"",
        };
        let mut labels = parse_labels(&mut self.store, labels_string, false, self.opts.legacy)?;
        let name_span = if name.is_empty() {
            match take_name_label(&mut self.store, &mut labels) {
                None => return Err(ParseError::ValueBare),
                Some(v) => v,
            }
        } else {
            if self.store.label(labels, b"__name__").is_some() {
                return Err(ParseError::Value(
                    b"metric name specified more than once".to_vec(),
                ));
            }
            self.store.push(name)
        };
        let remaining = match label_end {
            Some(le) => &text[le + 1..],
            None => &text[ls..],
        };
        let (value, timestamp) = value_and_timestamp(remaining, md)?;
        Ok(Sample {
            name: name_span,
            labels: Some(labels),
            value: Some(value),
            timestamp,
            exemplar: None,
            native_histogram: None,
        })
    }

    /// Moves the pending samples to a fresh store (the families before were handed out).
    pub fn compact(&mut self) {
        let old = std::mem::take(&mut self.store);
        for s in &old.samples[self.fam_start..] {
            let c = self.store.copy_sample(&old, s);
            self.store.samples.push(c);
        }
        self.fam_start = 0;
    }
}

impl LineFeed for TextParser {
    fn feed_line(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        TextParser::feed_line(self, line, out)
    }
    fn finish(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        TextParser::finish(self, out)
    }
    fn store(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// Parses a whole string (`text_string_to_metric_families`): the families and the error.
pub fn parse(text: &[u8], opts: Options, store: Store) -> (Store, Vec<Family>, Option<ParseError>) {
    parse_all(TextParser::new(opts), text, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> (Store, Vec<Family>, Option<ParseError>) {
        parse(s.as_bytes(), Options::default(), Store::default())
    }

    #[test]
    fn basic() {
        let (st, f, e) =
            run("# HELP a_total doc\n# TYPE a_total counter\na_total{x=\"1\"} 2\nb 3 4000\n");
        assert!(e.is_none());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"a");
        assert_eq!(f[0].typ, "counter");
        assert_eq!(st.get(st.family_samples(&f[0])[0].name), b"a_total");
        assert_eq!(f[1].typ, "unknown");
        match st.family_samples(&f[1])[0].timestamp {
            Some(Ts::Float(t)) => assert_eq!(t, 4.0),
            _ => panic!(),
        }
    }

    #[test]
    fn errors() {
        assert_eq!(run("a b\n").2, Some(ParseError::PyFloat(b"b".to_vec())));
        assert_eq!(run("# TYPE a\n").2, Some(ParseError::ValueBare));
        assert_eq!(
            run("a{b=\"c\",b=\"d\"} 1\n").2,
            Some(ParseError::Value(
                b"Invalid labels: b=\"c\",b=\"d\"".to_vec()
            ))
        );
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    /// `cargo test --release parse::text::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn speed() {
        let mut s = String::from("# HELP g gauge doc\n# TYPE g gauge\n");
        for i in 0..10000 {
            s.push_str(&format!(
                "g{{a=\"{i}\",b=\"xxxxxxxxxx\"}} {}\n",
                i as f64 * 1.5
            ));
        }
        let t = std::time::Instant::now();
        let mut st = Store::default();
        for _ in 0..100 {
            let (s2, f, e) = parse(s.as_bytes(), Options::default(), st);
            assert!(e.is_none() && f[0].samples.len() == 10000);
            st = s2;
        }
        println!("text: {:?} per 10k", t.elapsed() / 100);
        let om = s.clone() + "# EOF\n";
        let t = std::time::Instant::now();
        for _ in 0..100 {
            let (_, f, e) = crate::core::parse::openmetrics::parse(
                om.as_bytes(),
                Options::default(),
                Store::default(),
            );
            assert!(e.is_none() && f[0].samples.len() == 10000);
        }
        println!("om: {:?} per 10k", t.elapsed() / 100);
    }
}
