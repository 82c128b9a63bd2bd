//! The strict OpenMetrics parser (`prometheus_client.openmetrics.parser`).
//!
//! [`OmParser::feed_line`] is the reference's loop body for one line: the families it yields go
//! to `out`, an error ends the parse. [`OmParser::finish`] is the code after the loop (the last
//! family, then `Missing # EOF at end`).

use super::*;

const HISTOGRAM_SUFFIXES: &[&str] = &["_count", "_sum", "_bucket", "_created"];

/// `type_suffixes.get(typ)`.
fn type_suffixes(typ: &[u8]) -> Option<&'static [&'static str]> {
    Some(match typ {
        b"counter" => &["_total", "_created"],
        b"summary" => &["", "_count", "_sum", "_created"],
        b"histogram" => HISTOGRAM_SUFFIXES,
        b"gaugehistogram" => &["_gcount", "_gsum", "_bucket"],
        b"info" => &["_info"],
        _ => return None,
    })
}

/// `_unescape_help(text)`: `\\` `\"` `\n`; other escapes and a final backslash are kept.
fn unescape_help(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut slash = false;
    for &c in s {
        if slash {
            match c {
                b'\\' => out.push(b'\\'),
                b'"' => out.push(b'"'),
                b'n' => out.push(b'\n'),
                _ => {
                    out.push(b'\\');
                    out.push(c);
                }
            }
            slash = false;
        } else if c == b'\\' {
            slash = true;
        } else {
            out.push(c);
        }
    }
    if slash {
        out.push(b'\\');
    }
    out
}

/// `text[start:end]` where `end` None is Python's `-1`.
fn py_slice(text: &[u8], start: usize, end: Option<usize>) -> &[u8] {
    let end = match end {
        Some(e) => e,
        None => drop_last_char(text).len(),
    };
    if start >= end {
        b""
    } else {
        &text[start..end]
    }
}

/// `_isUncanonicalNumber(s)`: Err is what `float(s)` raises.
fn is_uncanonical(s: &[u8]) -> PResult<bool> {
    match py_float(s) {
        None => Err(ParseError::PyFloat(s.to_vec())),
        Some(f) => Ok(f == f64::INFINITY && s != b"+Inf"),
    }
}

/// `_parse_timestamp(timestamp)`.
fn parse_timestamp(s: &[u8], max_digits: usize) -> PResult<Option<Ts>> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.contains(&b'_') || strip(s).len() != s.len() {
        return Err(ParseError::ValueRepr("Invalid timestamp: ", s.to_vec()));
    }
    if let Some(i) = py_int(s, max_digits) {
        return Ok(Some(Ts::Stamp(i, 0)));
    }
    if let Some(dot) = s.iter().position(|&b| b == b'.') {
        if let Some(sec) = py_int(&s[..dot], max_digits) {
            let p1 = &s[dot + 1..];
            let mut frac = p1[..char_offset(p1, 9)].to_vec();
            let pad = 9usize.saturating_sub(char_len(&frac));
            frac.resize(frac.len() + pad, b'0');
            if let Some(Int::Small(n)) = py_int(&frac, max_digits) {
                if (0..1_000_000_000).contains(&n) {
                    let neg = match &sec {
                        Int::Small(v) => *v < 0,
                        Int::Big(d) => d[0] == b'-',
                    };
                    return Ok(Some(Ts::Stamp(sec, if neg { -n } else { n })));
                }
            }
        }
    }
    match py_float(s) {
        None => Err(ParseError::PyFloat(s.to_vec())),
        Some(f) if !f.is_finite() => Err(ParseError::ValueRepr("Invalid timestamp: ", s.to_vec())),
        Some(f) => Ok(Some(Ts::Float(f))),
    }
}

/// Which label `_group_for_sample` leaves out of a sample's group.
#[derive(Clone, Copy)]
enum Excl<'a> {
    Nothing,
    Key(&'a [u8]),
    /// Info families: every sample is in the group `{}`.
    All,
}

/// The exclusion of `_group_for_sample(sample, name, typ)`.
fn exclusion<'a>(store: &Store, s: &Sample, name: &'a [u8], typ: Option<&[u8]>) -> Excl<'a> {
    let sname = store.get(s.name);
    match typ {
        Some(b"info") => Excl::All,
        Some(b"summary") if sname == name => Excl::Key(b"quantile"),
        Some(b"stateset") => Excl::Key(name),
        Some(b"histogram") | Some(b"gaugehistogram")
            if sname.len() == name.len() + 7
                && sname.starts_with(name)
                && sname.ends_with(b"_bucket") =>
        {
            Excl::Key(b"le")
        }
        _ => Excl::Nothing,
    }
}

/// The pairs of a sample's group (its labels without the excluded one).
fn group_pairs<'s>(
    store: &'s Store,
    s: &Sample,
    ex: Excl<'s>,
) -> impl Iterator<Item = (&'s [u8], &'s [u8])> + 's {
    let pairs: &[(Span, Span)] = match (s.labels, ex) {
        (_, Excl::All) | (None, _) => &[],
        (Some(l), _) => store.pairs(l),
    };
    pairs
        .iter()
        .map(move |&(k, v)| (store.get(k), store.get(v)))
        .filter(move |(k, _)| !matches!(ex, Excl::Key(x) if x == *k))
}

/// Whether two samples are in the same group (dict equality of their groups).
fn same_group(store: &Store, a: &Sample, ea: Excl<'_>, b: &Sample, eb: Excl<'_>) -> bool {
    if group_pairs(store, a, ea).count() != group_pairs(store, b, eb).count() {
        return false;
    }
    group_pairs(store, a, ea)
        .all(|(k, v)| group_pairs(store, b, eb).any(|(k2, v2)| k == k2 && v == v2))
}

/// Whether two samples have the same series: name and labels.
fn same_series(store: &Store, a: &Sample, b: &Sample) -> bool {
    store.get(a.name) == store.get(b.name) && same_group(store, a, Excl::Nothing, b, Excl::Nothing)
}

fn fx_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher;
    let mut h = Fx::default();
    for p in parts {
        h.write(p);
        h.write_usize(p.len());
    }
    h.finish()
}

/// A hash of one label pair.
#[inline]
fn pair_hash(k: &[u8], v: &[u8]) -> u64 {
    #[inline]
    fn absorb(mut h: u64, b: &[u8]) -> u64 {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rem.len()].copy_from_slice(rem);
            h = (h ^ u64::from_le_bytes(buf)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h
    }
    let h = ((k.len() as u64) << 32) ^ v.len() as u64;
    let h = absorb(absorb(h.wrapping_mul(0xbf58_476d_1ce4_e5b9), k), v);
    // splitmix64's finalizer: every input bit reaches every output bit.
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// An order-independent hash of a sample's group.
fn group_hash(store: &Store, s: &Sample, ex: Excl<'_>) -> u64 {
    let mut n = 0u64;
    let sum = group_pairs(store, s, ex).fold(0u64, |acc, (k, v)| {
        n += 1;
        acc.wrapping_add(pair_hash(k, v))
    });
    sum ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A hash of a sample's series.
fn series_hash(store: &Store, s: &Sample) -> u64 {
    group_hash(store, s, Excl::Nothing) ^ fx_hash(&[store.get(s.name)])
}

/// `sample.name[len(name):]`.
fn suffix_after<'a>(sname: &'a [u8], name: &[u8]) -> &'a [u8] {
    if sname.starts_with(name) {
        &sname[name.len()..]
    } else {
        &sname[char_offset(sname, char_len(name))..]
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Timestamp,
    ExHash,
    ExSpace,
    ExStartLabels,
    ExParsedLabels,
    ExValueSpace,
    ExValue,
    ExTimestamp,
}

/// The reference's parser state between lines.
pub struct OmParser {
    pub opts: Options,
    pub store: Store,
    name: Option<Vec<u8>>,
    allowed: Vec<Vec<u8>>,
    pub eof: bool,
    seen_names: FxSet<Vec<u8>>,
    is_nh: bool,
    typ: Option<Vec<u8>>,
    unit: Option<Vec<u8>>,
    documentation: Option<Vec<u8>>,
    /// Python's `group`: the first sample of the current group (None: no group yet).
    group: Option<usize>,
    /// Hashes of `seen_groups` (a hit is confirmed against the family's samples).
    seen_groups: FxSet<u64>,
    group_timestamp: Option<Ts>,
    /// Hashes of the series of the current group (`group_timestamp_samples`), once the
    /// group is large; small groups are searched.
    group_timestamp_samples: Option<FxSet<u64>>,
    /// Where the current group's kept samples start in `store.samples`.
    group_start: usize,
    /// The hash of the new group the sample being checked starts.
    new_group: Option<u64>,
    /// Where the current family's samples start in `store.samples`.
    fam_start: usize,
}

impl OmParser {
    pub fn new(opts: Options) -> OmParser {
        OmParser {
            opts,
            store: Store::default(),
            name: None,
            allowed: Vec::new(),
            eof: false,
            seen_names: FxSet::default(),
            is_nh: false,
            typ: None,
            unit: None,
            documentation: None,
            group: None,
            seen_groups: FxSet::default(),
            group_timestamp: None,
            group_timestamp_samples: None,
            group_start: 0,
            new_group: None,
            fam_start: 0,
        }
    }

    fn typ_is(&self, t: &[u8]) -> bool {
        self.typ.as_deref() == Some(t)
    }

    /// Starts a new family state (the reference's resets).
    fn reset(&mut self, name: Vec<u8>, typ: Option<Vec<u8>>, allowed: Vec<u8>) {
        self.name = Some(name);
        self.unit = None;
        self.typ = typ;
        self.documentation = None;
        self.group = None;
        self.seen_groups.clear();
        self.group_timestamp = None;
        self.group_timestamp_samples = None;
        self.fam_start = self.store.samples.len();
        self.group_start = self.fam_start;
        self.new_group = None;
        self.allowed = vec![allowed];
    }

    /// `yield build_metric(name, documentation, typ, unit, samples)` of the current family.
    fn flush(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        let name = match self.name.take() {
            None => return Ok(()),
            Some(n) => n,
        };
        let samples = self.fam_start..self.store.samples.len();
        self.fam_start = samples.end;
        let typ = self.typ.clone();
        let r = self.build(&name, typ.as_deref(), samples);
        self.name = Some(name);
        out.push(r?);
        Ok(())
    }

    fn build(
        &mut self,
        name: &[u8],
        typ: Option<&[u8]>,
        samples: std::ops::Range<usize>,
    ) -> PResult<Family> {
        let typ = typ.unwrap_or(b"unknown");
        let suffixes = type_suffixes(typ).unwrap_or(&[]);
        let mut all: Vec<&'static str> = suffixes.to_vec();
        if !all.contains(&"") {
            all.push("");
        }
        let clashing: Vec<&'static str> = all
            .iter()
            .copied()
            .filter(|s| self.seen_names.contains(&[name, s.as_bytes()].concat()))
            .collect();
        if !clashing.is_empty() {
            return Err(ParseError::Clash {
                name: name.to_vec(),
                suffixes,
                clashing,
            });
        }
        for s in all {
            self.seen_names.insert([name, s.as_bytes()].concat());
        }
        let documentation = self.documentation.clone().unwrap_or_default();
        let unit = self.unit.clone().unwrap_or_default();
        if !unit.is_empty() {
            let mut u = b"_".to_vec();
            u.extend_from_slice(&unit);
            if !name.ends_with(&u) {
                return Err(msg("Unit does not match metric name: ", name));
            }
            if typ == b"info" || typ == b"stateset" {
                return Err(msg("Units not allowed for this metric type: ", name));
            }
        }
        if typ == b"histogram" || typ == b"gaugehistogram" {
            self.check_histogram(&self.store.samples[samples.clone()], name)?;
        }
        let t = metric_type(name, typ, self.opts.legacy)?;
        Ok(Family {
            name: name.to_vec(),
            documentation,
            typ: t,
            unit,
            samples,
        })
    }

    /// `_check_histogram(samples, name)`.
    fn check_histogram(&self, samples: &[Sample], name: &[u8]) -> PResult<()> {
        struct G {
            count: Option<Num>,
            bucket: Option<f64>,
            neg_buckets: bool,
            has_sum: bool,
            has_gsum: bool,
            neg_gsum: bool,
            value: Num,
        }
        let fresh = || G {
            count: None,
            bucket: None,
            neg_buckets: false,
            has_sum: false,
            has_gsum: false,
            neg_gsum: false,
            value: Num::Int(Int::Small(0)),
        };
        let do_checks = |g: &G| -> PResult<()> {
            if g.bucket != Some(f64::INFINITY) {
                return Err(msg("+Inf bucket missing: ", name));
            }
            if let Some(c) = &g.count {
                if g.value.py_cmp(c) != Some(Ordering::Equal) {
                    return Err(msg("Count does not match +Inf value: ", name));
                }
            }
            if g.has_sum && g.count.is_none() {
                return Err(msg("_count must be present if _sum is present: ", name));
            }
            if g.has_gsum && g.count.is_none() {
                return Err(msg("_gcount must be present if _gsum is present: ", name));
            }
            if !(g.has_sum || g.has_gsum) && g.count.is_some() {
                return Err(msg(
                    "_sum/_gsum must be present if _count is present: ",
                    name,
                ));
            }
            if g.neg_buckets && g.has_sum {
                return Err(msg("Cannot have _sum with negative buckets: ", name));
            }
            if !g.neg_buckets && g.neg_gsum {
                return Err(msg(
                    "Cannot have negative _gsum with non-negative buckets: ",
                    name,
                ));
            }
            Ok(())
        };
        let st = &self.store;
        let hist = Some(&b"histogram"[..]);
        // Python's `group` (None or a dict: here a sample of that group) and `timestamp`.
        let mut group: Option<&Sample> = None;
        let mut timestamp: Option<Ts> = None;
        let mut g = fresh();
        for s in samples {
            let sname = st.get(s.name);
            let suffix = suffix_after(sname, name);
            if suffix.is_empty() {
                continue;
            }
            // `g != group`: dicts compare by items; a native histogram's labels may be None.
            let differs = match group {
                None => s.labels.is_some(),
                Some(r) => match (s.labels, r.labels) {
                    (None, None) => false,
                    (Some(_), Some(_)) => !same_group(
                        st,
                        s,
                        exclusion(st, s, name, hist),
                        r,
                        exclusion(st, r, name, hist),
                    ),
                    _ => true,
                },
            };
            if differs || !opt_ts_eq(&s.timestamp, &timestamp) {
                if group.is_some() {
                    do_checks(&g)?;
                }
                g = fresh();
            }
            group = if s.labels.is_some() { Some(s) } else { None };
            timestamp = s.timestamp.clone();
            match suffix {
                b"_bucket" => {
                    let le = s.labels.and_then(|l| st.label(l, b"le")).unwrap_or(b"");
                    let b = py_float(le).unwrap_or(f64::NAN);
                    if b < 0.0 {
                        g.neg_buckets = true;
                    }
                    if let Some(prev) = g.bucket {
                        if b <= prev {
                            return Err(msg("Buckets out of order: ", name));
                        }
                    }
                    if let Some(v) = &s.value {
                        if v.py_cmp(&g.value) == Some(Ordering::Less) {
                            return Err(msg("Bucket values out of order: ", name));
                        }
                        g.value = v.clone();
                    }
                    g.bucket = Some(b);
                }
                b"_count" | b"_gcount" => g.count = s.value.clone(),
                b"_sum" => g.has_sum = true,
                b"_gsum" => {
                    g.has_gsum = true;
                    if s.value.as_ref().is_some_and(|v| v.lt0()) {
                        g.neg_gsum = true;
                    }
                }
                _ => {}
            }
        }
        if group.is_some() {
            do_checks(&g)?;
        }
        Ok(())
    }

    /// One line of `for line in fd`.
    pub fn feed_line(&mut self, raw: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        if raw.is_empty() {
            return Err(ParseError::Index);
        }
        let line = if raw[raw.len() - 1] == b'\n' {
            &raw[..raw.len() - 1]
        } else {
            raw
        };
        if self.eof {
            return Err(msg("Received line after # EOF: ", line));
        }
        if line.is_empty() {
            return Err(ParseError::Value(b"Received blank line".to_vec()));
        }
        if line == b"# EOF" {
            self.eof = true;
            return Ok(());
        }
        if line[0] == b'#' {
            return self.metadata(line, out);
        }
        self.sample_line(line, out)
    }

    fn metadata(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        let parts = split_quoted(line, b" ", 3);
        if parts.len() < 4 {
            return Err(msg("Invalid line: ", line));
        }
        let mut cand = Vec::new();
        let quoted = unquote_unescape(parts[2], &mut cand)?;
        if !quoted && !is_legacy_metric_name(&cand) {
            return Err(ParseError::ValueBare);
        }
        let same = self.name.as_deref() == Some(&cand[..]);
        if same && self.fam_start < self.store.samples.len() {
            return Err(msg("Received metadata after samples: ", line));
        }
        if !same {
            self.flush(out)?;
            self.reset(cand.clone(), None, cand);
        }
        match parts[1] {
            b"HELP" => {
                if self.documentation.is_some() {
                    return Err(msg("More than one HELP for metric: ", line));
                }
                self.documentation = Some(unescape_help(parts[3]));
            }
            b"TYPE" => {
                if self.typ.is_some() {
                    return Err(msg("More than one TYPE for metric: ", line));
                }
                if parts[3] == b"untyped" {
                    return Err(msg("Invalid TYPE for metric: ", line));
                }
                self.typ = Some(parts[3].to_vec());
                let name = self.name.as_deref().unwrap_or(b"");
                self.allowed = type_suffixes(parts[3])
                    .unwrap_or(&[""])
                    .iter()
                    .map(|s| [name, s.as_bytes()].concat())
                    .collect();
            }
            b"UNIT" => {
                if self.unit.is_some() {
                    return Err(msg("More than one UNIT for metric: ", line));
                }
                self.unit = Some(parts[3].to_vec());
            }
            _ => return Err(msg("Invalid line: ", line)),
        }
        Ok(())
    }

    fn sample_line(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        let fast = fast_sample(&mut self.store, line);
        let sample = if let Some((name, labels, rest)) = fast {
            // Not a native histogram: nothing after the labels opens a brace.
            self.is_nh = false;
            let (value, timestamp, exemplar) = self.parse_remaining(rest)?;
            Sample {
                name: self.store.push(name),
                labels: Some(labels),
                value: Some(value),
                timestamp,
                exemplar,
                native_histogram: None,
            }
        } else if self.typ_is(b"histogram") {
            self.is_nh = true;
            match self.parse_nh_sample(line)? {
                Some(s) => s,
                None => {
                    self.is_nh = false;
                    self.parse_sample(line)?
                }
            }
        } else {
            self.is_nh = false;
            self.parse_sample(line)?
        };
        let is_nh = self.is_nh;
        {
            let sname = self.store.get(sample.name);
            if !is_nh && !self.allowed.iter().any(|a| a[..] == *sname) {
                let sname = sname.to_vec();
                self.flush(out)?;
                let mut cand = Vec::new();
                let quoted = unquote_unescape(&sname, &mut cand)?;
                if !quoted && !is_legacy_metric_name(&cand) {
                    return Err(ParseError::ValueBare);
                }
                self.reset(cand, Some(b"unknown".to_vec()), sname);
            }
        }
        self.check_sample(&sample, line, is_nh)?;
        self.samples_push(sample, is_nh);
        Ok(())
    }

    /// The checks on a sample after it joined the family, in the reference's order.
    fn check_sample(&mut self, sample: &Sample, line: &[u8], is_nh: bool) -> PResult<()> {
        let name = self.name.clone().unwrap_or_default();
        let st = &self.store;
        let sname = st.get(sample.name);
        let is_bucket = sname.len() == name.len() + 7
            && sname.starts_with(&name)
            && sname.ends_with(b"_bucket");
        let not_integral = |v: &Option<Num>| -> PResult<bool> {
            match v {
                None => Err(ParseError::Attribute(
                    "'NoneType' object has no attribute 'is_integer'",
                )),
                Some(v) => Ok(!v.is_integral()),
            }
        };
        if self.typ_is(b"stateset") {
            let has = sample.labels.is_some_and(|l| st.label(l, &name).is_some());
            if !has {
                return Err(msg("Stateset missing label: ", line));
            }
        }
        if is_bucket {
            let labels = match sample.labels {
                None => {
                    return Err(ParseError::Attribute(
                        "'NoneType' object has no attribute 'get'",
                    ))
                }
                Some(l) => l,
            };
            match st.label(labels, b"le") {
                None | Some(b"NaN") => return Err(msg("Invalid le label: ", line)),
                Some(le) => {
                    if is_uncanonical(le)? {
                        return Err(msg("Invalid le label: ", line));
                    }
                }
            }
            if not_integral(&sample.value)? {
                return Err(msg("Bucket value must be an integer: ", line));
            }
        }
        let suffix = suffix_after(sname, &name);
        let exact = sname.starts_with(&name);
        if exact && (suffix == b"_count" || suffix == b"_gcount") && not_integral(&sample.value)? {
            return Err(msg("Count value must be an integer: ", line));
        }
        let summary = self.typ_is(b"summary");
        if summary && sname == &name[..] {
            let q = sample.labels.and_then(|l| st.label(l, b"quantile"));
            let ok = match q {
                None => false,
                Some(q) => match py_float(q) {
                    None => return Err(ParseError::PyFloat(q.to_vec())),
                    Some(f) => (0.0..=1.0).contains(&f),
                },
            };
            if !ok {
                return Err(msg("Invalid quantile label: ", line));
            }
        }
        if !is_nh {
            let typ = self.typ.as_deref();
            let ex = exclusion(st, sample, &name, typ);
            let same = match self.group {
                None => false,
                Some(r) => {
                    let rep = &st.samples[r];
                    same_group(st, sample, ex, rep, exclusion(st, rep, &name, typ))
                }
            };
            if same {
                if sample.timestamp.is_none() != self.group_timestamp.is_none() {
                    return Err(msg("Mix of timestamp presence within a group: ", line));
                }
                if let (Some(gt), Some(t)) = (&self.group_timestamp, &sample.timestamp) {
                    if gt.py_gt(t)? && typ != Some(b"info") {
                        return Err(msg("Timestamps went backwards within a group: ", line));
                    }
                }
            } else {
                let h = group_hash(st, sample, ex);
                if self.group.is_some()
                    && self.seen_groups.contains(&h)
                    && self.group_seen(sample, ex, &name)
                {
                    return Err(msg("Invalid metric grouping: ", line));
                }
                self.new_group = Some(h);
            }
        }
        let value = &sample.value;
        if self.typ_is(b"stateset") {
            let v = value.as_ref().expect("stateset samples have values");
            if !(v.eq_i64(0) || v.eq_i64(1)) {
                return Err(msg(
                    "Stateset samples can only have values zero and one: ",
                    line,
                ));
            }
        }
        if self.typ_is(b"info") && !value.as_ref().is_some_and(|v| v.eq_i64(1)) {
            return Err(msg("Info samples can only have value one: ", line));
        }
        if summary && sname == &name[..] && value.as_ref().is_some_and(|v| v.lt0()) {
            return Err(msg("Quantile values cannot be negative: ", line));
        }
        let counter_like = matches!(
            suffix,
            b"_total" | b"_sum" | b"_count" | b"_bucket" | b"_gcount" | b"_gsum"
        );
        if counter_like {
            match value {
                None => return Err(ParseError::Type("must be real number, not NoneType")),
                Some(v) => {
                    if v.isnan()? {
                        return Err(msg("Counter-like samples cannot be NaN: ", line));
                    }
                }
            }
            if suffix != b"_gsum" && value.as_ref().is_some_and(|v| v.lt0()) {
                return Err(msg("Counter-like samples cannot be negative: ", line));
            }
        }
        if sample.exemplar.is_some() {
            let ok = ((self.typ_is(b"histogram") || self.typ_is(b"gaugehistogram"))
                && sname.ends_with(b"_bucket"))
                || (self.typ_is(b"counter") && sname.ends_with(b"_total"));
            if !ok {
                return Err(msg(
                    "Invalid line only histogram/gaugehistogram buckets and counters can have exemplars: ",
                    line,
                ));
            }
        }
        Ok(())
    }

    /// The reference's bookkeeping after the checks: dropping duplicates within a group.
    fn samples_push(&mut self, sample: Sample, is_nh: bool) {
        if is_nh {
            self.store.samples.push(sample);
            return;
        }
        if let Some(h) = self.new_group.take() {
            // A new group: `group_timestamp_samples` starts empty, so the sample is kept.
            self.seen_groups.insert(h);
            self.group_start = self.store.samples.len();
            self.group = Some(self.group_start);
            self.group_timestamp_samples = None;
            self.group_timestamp = sample.timestamp.clone();
            self.store.samples.push(sample);
            return;
        }
        let keep =
            !opt_ts_eq(&sample.timestamp, &self.group_timestamp) || !self.series_seen(&sample);
        if let Some(set) = &mut self.group_timestamp_samples {
            set.insert(series_hash(&self.store, &sample));
        }
        self.group_timestamp = sample.timestamp.clone();
        if keep {
            self.store.samples.push(sample);
        }
    }

    /// `series_id in group_timestamp_samples`: a kept sample of the group has the same series.
    fn series_seen(&mut self, sample: &Sample) -> bool {
        let st = &self.store;
        let group = &st.samples[self.group_start..];
        if self.group_timestamp_samples.is_none() && group.len() > 8 {
            self.group_timestamp_samples = Some(
                group
                    .iter()
                    .filter(|s| s.native_histogram.is_none())
                    .map(|s| series_hash(st, s))
                    .collect(),
            );
        }
        if let Some(set) = &self.group_timestamp_samples {
            if !set.contains(&series_hash(st, sample)) {
                return false;
            }
        }
        group
            .iter()
            .any(|s| s.native_histogram.is_none() && same_series(st, s, sample))
    }

    /// `g in seen_groups`: a sample of the current family is in the sample's group.
    fn group_seen(&self, sample: &Sample, ex: Excl<'_>, name: &[u8]) -> bool {
        let st = &self.store;
        let typ = self.typ.as_deref();
        st.samples[self.fam_start..].iter().any(|s| {
            s.native_histogram.is_none()
                && same_group(st, sample, ex, s, exclusion(st, s, name, typ))
        })
    }

    /// After the last line.
    pub fn finish(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        self.flush(out)?;
        self.name = None;
        if !self.eof {
            return Err(ParseError::Value(b"Missing # EOF at end".to_vec()));
        }
        Ok(())
    }

    /// `_parse_sample(text)`.
    fn parse_sample(&mut self, text: &[u8]) -> PResult<Sample> {
        let legacy = self.opts.legacy;
        let label_start = next_unquoted(text, b"{", 0);
        let ls = match label_start {
            Some(ls) if !contains(&text[..ls], b" # ") => ls,
            _ => {
                let name_end = next_unquoted(text, b" ", 0);
                let name = match name_end {
                    Some(e) => &text[..e],
                    None => drop_last_char(text),
                };
                if !is_legacy_metric_name(name) {
                    return Err(msg("invalid metric name:", text));
                }
                let remaining = match name_end {
                    Some(e) => &text[e + 1..],
                    None => text,
                };
                let (value, timestamp, exemplar) = self.parse_remaining(remaining)?;
                let name = self.store.push(name);
                let at = self.store.pairs.len();
                return Ok(Sample {
                    name,
                    labels: Some(Labels { start: at, end: at }),
                    value: Some(value),
                    timestamp,
                    exemplar,
                    native_histogram: None,
                });
            }
        };
        let name = &text[..ls];
        let label_end = next_unquoted(text, b"}", 0);
        let mut labels = parse_labels(
            &mut self.store,
            py_slice(text, ls + 1, label_end),
            true,
            legacy,
        )?;
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
            None => &text[char_offset(text, 1)..],
            Some(le) => {
                let r = &text[le + 1..];
                &r[char_offset(r, 1)..]
            }
        };
        let (value, timestamp, exemplar) = self.parse_remaining(remaining)?;
        Ok(Sample {
            name: name_span,
            labels: Some(labels),
            value: Some(value),
            timestamp,
            exemplar,
            native_histogram: None,
        })
    }

    /// `_parse_remaining_text(text)`.
    #[allow(clippy::type_complexity)]
    fn parse_remaining(
        &mut self,
        text: &[u8],
    ) -> PResult<(Num, Option<Ts>, Option<Box<Exemplar>>)> {
        let md = self.opts.max_str_digits;
        let (first, rest) = match text.iter().position(|&b| b == b' ') {
            Some(p) => (&text[..p], Some(&text[p + 1..])),
            None => (text, None),
        };
        let val = parse_value(first, md)?;
        let text = match rest {
            None => return Ok((val, None, None)),
            Some(t) => t,
        };
        // Fast path: a plain timestamp.
        if !text.is_empty() && text.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
            return Ok((val, parse_timestamp(text, md)?, None));
        }
        let invalid = || Err(msg("Invalid line: ", text));
        let mut timestamp = Vec::new();
        let mut ex_value = Vec::new();
        let mut ex_ts = Vec::new();
        let mut ex_labels: Option<Labels> = None;
        let mut state = St::Timestamp;
        let mut in_quotes = false;
        for &c in text {
            if c == b'"' {
                in_quotes = !in_quotes;
            }
            if in_quotes {
                continue;
            }
            match state {
                St::Timestamp => {
                    if c == b'#' && timestamp.is_empty() {
                        state = St::ExSpace;
                    } else if c == b' ' {
                        state = St::ExHash;
                    } else {
                        timestamp.push(c);
                    }
                }
                St::ExHash => {
                    if c == b'#' {
                        state = St::ExSpace;
                    } else {
                        return invalid();
                    }
                }
                St::ExSpace => {
                    if c == b' ' {
                        state = St::ExStartLabels;
                    } else {
                        return invalid();
                    }
                }
                St::ExStartLabels => {
                    if c == b'{' {
                        let ls = next_unquoted(text, b"{", 0).map_or(0, |p| p + 1);
                        let le = last_unquoted(text, b"}");
                        ex_labels = Some(parse_labels(
                            &mut self.store,
                            py_slice(text, ls, le),
                            true,
                            self.opts.legacy,
                        )?);
                        state = St::ExParsedLabels;
                    } else {
                        return invalid();
                    }
                }
                St::ExParsedLabels => {
                    if c == b'}' {
                        state = St::ExValueSpace;
                    }
                }
                St::ExValueSpace => {
                    if c == b' ' {
                        state = St::ExValue;
                    } else {
                        return invalid();
                    }
                }
                St::ExValue => {
                    if c == b' ' && ex_value.is_empty() {
                        return invalid();
                    } else if c == b' ' {
                        state = St::ExTimestamp;
                    } else {
                        ex_value.push(c);
                    }
                }
                St::ExTimestamp => ex_ts.push(c),
            }
        }
        if state == St::Timestamp && timestamp.is_empty() {
            return invalid();
        }
        if state == St::ExTimestamp && ex_ts.is_empty() {
            return invalid();
        }
        if matches!(
            state,
            St::ExHash | St::ExSpace | St::ExStartLabels | St::ExParsedLabels
        ) {
            return invalid();
        }
        let ts = parse_timestamp(&timestamp, md)?;
        let mut exemplar = None;
        if let Some(l) = ex_labels {
            let length: usize = self
                .store
                .pairs(l)
                .iter()
                .map(|&(k, v)| char_len(self.store.get(k)) + char_len(self.store.get(v)))
                .sum();
            if length > 128 {
                return Err(msg("Exemplar labels are too long: ", text));
            }
            exemplar = Some(Box::new(Exemplar {
                labels: l,
                value: parse_value(&ex_value, md)?,
                timestamp: parse_timestamp(&ex_ts, md)?,
            }));
        }
        Ok((val, ts, exemplar))
    }

    /// `_parse_nh_sample(text, suffixes)`: None when the line is not a native histogram.
    fn parse_nh_sample(&mut self, text: &[u8]) -> PResult<Option<Sample>> {
        let labels_start = next_unquoted(text, b"{", 0);
        let mut i = match next_unquoted(text, b" {", 0) {
            None => return Ok(None),
            Some(i) => i,
        };
        let mut labels_end = None;
        if text[i] == b'{' {
            match next_unquoted(text, b"}", i) {
                None => return Err(ParseError::ValueBare),
                Some(e) => {
                    labels_end = Some(e);
                    i = e;
                }
            }
        }
        let nh_start = match next_unquoted(text, b"{", i + 1) {
            None => return Ok(None),
            Some(s) => s,
        };
        if let Some(ex) = next_unquoted(text, b"#", i + 1) {
            if ex < nh_start {
                return Ok(None);
            }
        }
        if next_unquoted(text, b"}", nh_start).is_none() {
            return Err(ParseError::ValueBare);
        }
        let has_suffix = |n: &[u8]| HISTOGRAM_SUFFIXES.iter().any(|s| n.ends_with(s.as_bytes()));
        if let Some(le) = labels_end {
            let ls = labels_start.unwrap_or(i);
            let mut labels = parse_labels(
                &mut self.store,
                py_slice(text, ls + 1, Some(le)),
                true,
                self.opts.legacy,
            )?;
            let name = &text[..ls];
            if has_suffix(name) {
                return Err(ParseError::ValueArgs(
                    "the sample name of a native histogram with labels should have no suffixes",
                    name.to_vec(),
                ));
            }
            let mut out_labels = Some(labels);
            let name_span = if name.is_empty() {
                match take_name_label(&mut self.store, &mut labels) {
                    None => return Err(ParseError::ValueBare),
                    Some(v) => {
                        out_labels = if labels.is_empty() {
                            None
                        } else {
                            Some(labels)
                        };
                        v
                    }
                }
            } else {
                self.store.push(name)
            };
            let nh = parse_nh_struct(&text[nh_start..], self.opts.max_str_digits)?;
            return Ok(Some(Sample {
                name: name_span,
                labels: out_labels,
                value: None,
                timestamp: None,
                exemplar: None,
                native_histogram: Some(Box::new(nh)),
            }));
        }
        let name = drop_last_char(&text[..nh_start]);
        if has_suffix(name) {
            return Err(ParseError::ValueArgs(
                "the sample name of a native histogram should have no suffixes",
                name.to_vec(),
            ));
        }
        let nh = parse_nh_struct(&text[nh_start..], self.opts.max_str_digits)?;
        let name = self.store.push(name);
        Ok(Some(Sample {
            name,
            labels: None,
            value: None,
            timestamp: None,
            exemplar: None,
            native_histogram: Some(Box::new(nh)),
        }))
    }

    /// Moves the pending samples to a fresh store (the families before were handed out).
    pub fn compact(&mut self) {
        let old = std::mem::take(&mut self.store);
        for s in &old.samples[self.fam_start..] {
            let c = self.store.copy_sample(&old, s);
            self.store.samples.push(c);
        }
        // A group that began before the samples handed out (a family flushed since) has none
        // left in the store: it starts at the store's start.
        self.group_start = self.group_start.saturating_sub(self.fam_start);
        self.group = self.group.map(|g| g.saturating_sub(self.fam_start));
        self.fam_start = 0;
    }
}

/// Runs of `re`'s `\d+` at `i`: the end.
fn digits_end(t: &[u8], mut i: usize) -> usize {
    while i < t.len() {
        let (c, n) = char_at(t, i);
        if pyunicode::decimal(c).is_none() {
            break;
        }
        i += n;
    }
    i
}

/// `re.findall(r'(KEY1|KEY2):\[(BODY)\]', text)` where BODY is `\d+:\d+(,\d+:\d+)*` (spans)
/// or `-?\d+(?:,-?\d+)*` (deltas): (key, body) pairs.
fn find_lists<'a>(
    text: &'a [u8],
    keys: [&'static str; 2],
    spans: bool,
) -> Vec<(&'static str, &'a [u8])> {
    let mut out = Vec::new();
    let mut p = 0;
    'outer: while p < text.len() {
        for key in keys {
            let kb = key.as_bytes();
            if text[p..].starts_with(kb) && text[p + kb.len()..].starts_with(b":[") {
                let b0 = p + kb.len() + 2;
                let mut j = b0;
                loop {
                    if spans {
                        let e = digits_end(text, j);
                        if e == j || text.get(e) != Some(&b':') {
                            break;
                        }
                        let e2 = digits_end(text, e + 1);
                        if e2 == e + 1 {
                            break;
                        }
                        j = e2;
                    } else {
                        let s = if text.get(j) == Some(&b'-') { j + 1 } else { j };
                        let e = digits_end(text, s);
                        if e == s {
                            break;
                        }
                        j = e;
                    }
                    match text.get(j) {
                        Some(b']') => {
                            out.push((key, &text[b0..j]));
                            p = j + 1;
                            continue 'outer;
                        }
                        Some(b',') => j += 1,
                        _ => break,
                    }
                }
            }
        }
        p += char_at(text, p).1;
    }
    out
}

/// `_parse_nh_struct(text)`.
fn parse_nh_struct(text: &[u8], md: usize) -> PResult<NativeHist> {
    // items = dict(re.findall(r'(\w+):\s*([^,}]+)', text))
    const KEYS: [&str; 5] = ["count", "sum", "schema", "zero_threshold", "zero_count"];
    let mut items: [Option<&[u8]>; 5] = [None; 5];
    let n = text.len();
    let mut p = 0;
    while p < n {
        let (c, l) = char_at(text, p);
        if !pyunicode::is_word(c) {
            p += l;
            continue;
        }
        let ws = p;
        let mut q = p;
        while q < n {
            let (c, l) = char_at(text, q);
            if !pyunicode::is_word(c) {
                break;
            }
            q += l;
        }
        if q < n && text[q] == b':' {
            let mut j = q + 1;
            let mut last_ws = None;
            while j < n {
                let (c, l) = char_at(text, j);
                if !pyunicode::is_space(c) {
                    break;
                }
                last_ws = Some(j);
                j += l;
            }
            let value = if j < n && text[j] != b',' && text[j] != b'}' {
                let mut k = j;
                while k < n && text[k] != b',' && text[k] != b'}' {
                    k += 1;
                }
                Some((j, k))
            } else {
                last_ws.map(|w| (w, j))
            };
            if let Some((a, b)) = value {
                if let Some(k) = KEYS.iter().position(|k| k.as_bytes() == &text[ws..q]) {
                    items[k] = Some(&text[a..b]);
                }
                p = b;
                continue;
            }
        }
        p = q;
    }
    let item = |k: usize| items[k].ok_or(ParseError::Key(KEYS[k]));
    let int = |s: &[u8]| py_int(s, md).ok_or_else(|| ParseError::PyInt(s.to_vec()));
    let float = |s: &[u8]| py_float(s).ok_or_else(|| ParseError::PyFloat(s.to_vec()));
    let count_value = int(item(0)?)?;
    let sum_value = float(item(1)?)?;
    let schema = int(item(2)?)?;
    let zero_threshold = float(item(3)?)?;
    let zero_count = int(item(4)?)?;

    let span_matches = find_lists(text, ["positive_spans", "negative_spans"], true);
    let mut pos_spans = None;
    let mut neg_spans = None;
    for (key, body) in &span_matches {
        let mut v = Vec::new();
        for pair in body.split(|&b| b == b',') {
            let mut it = pair.splitn(2, |&b| b == b':');
            let a = int(it.next().unwrap_or(b""))?;
            let b = int(it.next().unwrap_or(b""))?;
            v.push((a, b));
        }
        if *key == "positive_spans" {
            pos_spans = Some(v);
        } else {
            neg_spans = Some(v);
        }
    }
    let delta_matches = find_lists(text, ["positive_deltas", "negative_deltas"], false);
    let pick = |name: &str| {
        delta_matches
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, b)| *b)
    };
    let deltas = |body: Option<&[u8]>| -> PResult<Option<Vec<Int>>> {
        match body {
            None => Ok(None),
            Some(b) => b
                .split(|&c| c == b',')
                .map(|x| int(strip(x)))
                .collect::<PResult<Vec<_>>>()
                .map(Some),
        }
    };
    let pos_deltas = deltas(pick("positive_deltas"))?;
    let neg_deltas = deltas(pick("negative_deltas"))?;
    Ok(NativeHist {
        count_value,
        sum_value,
        schema,
        zero_threshold,
        zero_count,
        pos_spans,
        neg_spans,
        pos_deltas,
        neg_deltas,
    })
}

impl LineFeed for OmParser {
    fn feed_line(&mut self, line: &[u8], out: &mut Vec<Family>) -> PResult<()> {
        OmParser::feed_line(self, line, out)
    }
    fn finish(&mut self, out: &mut Vec<Family>) -> PResult<()> {
        OmParser::finish(self, out)
    }
    fn store(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// Parses a whole string (`text_string_to_metric_families`): the families and the error.
pub fn parse(text: &[u8], opts: Options, store: Store) -> (Store, Vec<Family>, Option<ParseError>) {
    parse_all(OmParser::new(opts), text, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> (Store, Vec<Family>, Option<ParseError>) {
        parse(s.as_bytes(), Options::default(), Store::default())
    }

    #[test]
    fn histogram() {
        let (st, f, e) = run("# TYPE a histogram\na_bucket{le=\"1.0\"} 0\na_bucket{le=\"+Inf\"} 3 # {t=\"x\"} 1 2\na_count 3\na_sum 2\n# EOF\n");
        assert_eq!(e, None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].samples.len(), 4);
        let ss = st.family_samples(&f[0]);
        assert_eq!(st.get(ss[1].name), b"a_bucket");
        assert!(ss[1].exemplar.is_some());
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("a 1\n").2,
            Some(ParseError::Value(b"Missing # EOF at end".to_vec()))
        );
        assert_eq!(
            run("a 1\n\n# EOF\n").2,
            Some(ParseError::Value(b"Received blank line".to_vec()))
        );
        assert_eq!(
            run("# TYPE a histogram\na_bucket{le=\"1\"} 0\n# EOF\n").2,
            Some(ParseError::Value(b"+Inf bucket missing: a".to_vec()))
        );
    }

    #[test]
    fn native_histogram() {
        let (st, f, e) = run("# TYPE nh histogram\nnh {count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,positive_spans:[0:2,1:2],negative_spans:[0:2,1:2],positive_deltas:[2,1,-3,3],negative_deltas:[2,1,-2,3]}\n# EOF\n");
        assert_eq!(e, None);
        let nh = st.family_samples(&f[0])[0]
            .native_histogram
            .as_ref()
            .unwrap();
        assert_eq!(nh.count_value, Int::Small(24));
        assert_eq!(nh.pos_spans.as_ref().unwrap().len(), 2);
        assert_eq!(nh.neg_deltas.as_ref().unwrap()[2], Int::Small(-2));
    }
}
/// Distinct groups must not share hashes (each shared hash costs a scan of the family).
#[cfg(test)]
mod hash_probe {
    use super::*;

    #[test]
    fn group_hashes_are_distinct() {
        let mut text = String::from("# TYPE app_requests counter\n");
        for i in 0..4000 {
            let m = ["GET", "POST", "PUT"][i % 3];
            text.push_str(&format!(
                "app_requests_total{{method=\"{m}\",path=\"/api/v1/items/{i}\"}} 1.0\n"
            ));
        }
        text.push_str("# EOF\n");
        let (st, f, e) = parse(text.as_bytes(), Options::default(), Store::default());
        assert!(e.is_none(), "{e:?}");
        let hashes: std::collections::HashSet<u64> = st
            .family_samples(&f[0])
            .iter()
            .map(|s| group_hash(&st, s, Excl::Nothing))
            .collect();
        assert_eq!(hashes.len(), 4000);
    }
}
