//! The Prometheus text format (`prometheus_client.exposition.generate_latest`).

use crate::core::escape::{
    is_valid_legacy_metric_name_parts, write_help_text, write_labels, write_metric_name_parts,
};
use crate::core::format::write_go_float;
use crate::core::model::{Escaping, FamilySource, MetricType, RenderError, Sample};

/// The error Python raises for `floatToGoString(None)`.
const NONE_VALUE_MESSAGE: &str =
    "float() argument must be a string or a real number, not 'NoneType'";

/// Samples split off into trailing gauge families, in the order they are printed.
const SPLIT_SUFFIXES: [&str; 3] = ["_created", "_gcount", "_gsum"];

/// Renders `families` in the Prometheus text format.
pub fn write_text(
    out: &mut Vec<u8>,
    families: &[&dyn FamilySource],
    escaping: Escaping,
) -> Result<(), RenderError> {
    for (index, family) in families.iter().enumerate() {
        write_family(out, *family, escaping).map_err(|message| RenderError {
            family: index,
            message,
        })?;
    }
    Ok(())
}

/// `sample.name_is(prefix, tail)`, comparing slices directly when the split lines up.
fn full_name_is(sample: &Sample<'_>, prefix: &str, tail: &str) -> bool {
    if sample.name.len() + sample.suffix.len() != prefix.len() + tail.len() {
        false
    } else if sample.name.len() == prefix.len() {
        sample.name == prefix && sample.suffix == tail
    } else {
        sample.name_is(prefix, tail)
    }
}

/// The family's name suffix and type in this format.
fn text_type(metric_type: MetricType) -> (&'static str, &'static str) {
    match metric_type {
        MetricType::Counter => ("_total", "counter"),
        MetricType::Info => ("_info", "gauge"),
        MetricType::StateSet => ("", "gauge"),
        MetricType::GaugeHistogram => ("", "histogram"),
        MetricType::Unknown => ("", "untyped"),
        other => ("", other.as_str()),
    }
}

fn write_header(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    doc: &str,
    type_name: &str,
    e: Escaping,
) {
    out.extend_from_slice(b"# HELP ");
    write_metric_name_parts(out, name, suffix, e);
    out.push(b' ');
    write_help_text(out, doc);
    out.extend_from_slice(b"\n# TYPE ");
    write_metric_name_parts(out, name, suffix, e);
    out.push(b' ');
    out.extend_from_slice(type_name.as_bytes());
    out.push(b'\n');
}

/// Which of [`SPLIT_SUFFIXES`] names `sample`, if any.
fn split_index(sample: &Sample<'_>, name: &str) -> Option<usize> {
    SPLIT_SUFFIXES
        .iter()
        .position(|s| full_name_is(sample, name, s))
}

/// The family's lines, then the samples split off (`_created`, ...) under headers of their
/// own. Those are written by visiting the samples again, once per suffix present: no
/// buffer holds them meanwhile (a large one, freshly allocated, costs more than the visit).
fn write_family(
    out: &mut Vec<u8>,
    family: &dyn FamilySource,
    escaping: Escaping,
) -> Result<(), String> {
    let name = family.name();
    let doc = family.documentation();
    let (suffix, type_name) = text_type(family.metric_type());
    write_header(out, name, suffix, doc, type_name, escaping);

    let mut present = [false; SPLIT_SUFFIXES.len()];
    let mut ok = true;
    family.visit_samples(&mut |sample| {
        if !ok {
            return;
        }
        ok = match split_index(sample, name) {
            Some(i) => {
                present[i] = true;
                sample.value.is_some()
            }
            None => write_sample(out, sample, escaping),
        };
    });
    for (i, suffix) in SPLIT_SUFFIXES.iter().enumerate() {
        if !ok || !present[i] {
            continue;
        }
        write_header(out, name, suffix, doc, "gauge", escaping);
        family.visit_samples(&mut |sample| {
            if ok && split_index(sample, name) == Some(i) {
                ok = write_sample(out, sample, escaping);
            }
        });
    }
    if !ok {
        return Err(NONE_VALUE_MESSAGE.to_owned());
    }
    Ok(())
}

/// One sample line; false when the sample has no value.
fn write_sample(out: &mut Vec<u8>, s: &Sample<'_>, escaping: Escaping) -> bool {
    let Some(value) = s.value else {
        return false;
    };
    if escaping != Escaping::AllowUtf8 || is_valid_legacy_metric_name_parts(s.name, s.suffix) {
        write_metric_name_parts(out, s.name, s.suffix, escaping);
        if !s.labels.is_empty() {
            out.push(b'{');
            write_labels(out, s.labels, escaping);
            out.push(b'}');
        }
    } else {
        // A UTF-8 name goes quoted inside the braces.
        out.push(b'{');
        write_metric_name_parts(out, s.name, s.suffix, escaping);
        if !s.labels.is_empty() {
            out.push(b',');
            write_labels(out, s.labels, escaping);
        }
        out.push(b'}');
    }
    out.push(b' ');
    write_go_float(out, value);
    if let Some(ts) = s.timestamp {
        out.push(b' ');
        out.extend_from_slice(ts.millis.as_bytes());
    }
    out.push(b'\n');
    true
}

/// Families built both as Rust `OwnedFamily` values and as Python `Metric` objects, for the
/// differential tests of both writers.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::core::format::{python_float_repr, run_python};
    use crate::core::model::{
        Escaping, Exemplar, FamilySource, MetricType, NativeHistogram, OwnedFamily, OwnedSample,
        RenderError, Sample, SampleTimestamp,
    };

    pub const SCHEMES: [(Escaping, &str); 5] = [
        (Escaping::Underscores, "underscores"),
        (Escaping::AllowUtf8, "allow-utf-8"),
        (Escaping::Dots, "dots"),
        (Escaping::Values, "values"),
        (Escaping::Other, "bogus"),
    ];

    #[derive(Clone, Copy)]
    pub enum Ts {
        Float(f64),
        Nanos(i64, u32),
    }

    impl Ts {
        fn openmetrics(self) -> String {
            match self {
                Ts::Float(f) => python_float_repr(f),
                Ts::Nanos(sec, nsec) => format!("{sec}.{nsec:09}"),
            }
        }

        fn model(self) -> SampleTimestamp {
            let seconds = match self {
                Ts::Float(f) => f,
                Ts::Nanos(sec, nsec) => sec as f64 + nsec as f64 / 1e9,
            };
            SampleTimestamp {
                millis: ((seconds * 1000.0) as i64).to_string(),
                openmetrics: self.openmetrics(),
            }
        }

        fn python(self) -> String {
            match self {
                Ts::Float(f) => py_float(f),
                Ts::Nanos(sec, nsec) => format!("Timestamp({sec}, {nsec})"),
            }
        }
    }

    pub struct Ex {
        pub labels: Vec<(&'static str, &'static str)>,
        pub value: f64,
        pub ts: Option<Ts>,
    }

    pub fn ex(labels: &[(&'static str, &'static str)], value: f64, ts: Option<Ts>) -> Ex {
        let mut labels = labels.to_vec();
        labels.sort();
        Ex { labels, value, ts }
    }

    pub struct Nh {
        /// The body as the binding layer renders it.
        pub body: &'static str,
        /// Arguments of the equivalent Python `NativeHistogram(...)`, without `nh_exemplars`.
        pub py_args: &'static str,
        pub exemplars: Vec<Ex>,
    }

    pub struct S {
        name: &'static str,
        labels: Vec<(&'static str, &'static str)>,
        value: Option<f64>,
        ts: Option<Ts>,
        ex: Option<Ex>,
        nh: Option<Nh>,
    }

    pub fn s(name: &'static str, labels: &[(&'static str, &'static str)], value: f64) -> S {
        let mut sample = s_none(name, labels);
        sample.value = Some(value);
        sample
    }

    pub fn s_none(name: &'static str, labels: &[(&'static str, &'static str)]) -> S {
        let mut labels = labels.to_vec();
        labels.sort();
        S {
            name,
            labels,
            value: None,
            ts: None,
            ex: None,
            nh: None,
        }
    }

    impl S {
        pub fn ts(mut self, ts: Ts) -> S {
            self.ts = Some(ts);
            self
        }
        pub fn ex(mut self, ex: Ex) -> S {
            self.ex = Some(ex);
            self
        }
        pub fn nh(mut self, nh: Nh) -> S {
            self.nh = Some(nh);
            self
        }
    }

    pub struct Fam {
        name: &'static str,
        doc: &'static str,
        typ: MetricType,
        unit: &'static str,
        samples: Vec<S>,
    }

    pub fn fam(name: &'static str, doc: &'static str, typ: MetricType, samples: Vec<S>) -> Fam {
        Fam {
            name,
            doc,
            typ,
            unit: "",
            samples,
        }
    }

    impl Fam {
        pub fn unit(mut self, unit: &'static str) -> Fam {
            self.unit = unit;
            self
        }
    }

    fn owned_exemplar(e: &Ex) -> Exemplar {
        Exemplar {
            labels: e
                .labels
                .iter()
                .map(|&(k, v)| (k.into(), v.into()))
                .collect(),
            value: e.value,
            timestamp: e.ts.map(Ts::openmetrics),
        }
    }

    fn owned(f: &Fam) -> OwnedFamily {
        let samples = f.samples.iter().map(|s| OwnedSample {
            name: s.name.into(),
            labels: s
                .labels
                .iter()
                .map(|&(k, v)| (k.into(), v.into()))
                .collect(),
            value: s.value,
            timestamp: s.ts.map(Ts::model),
            exemplar: s.ex.as_ref().map(owned_exemplar),
            native_histogram: s.nh.as_ref().map(|h| NativeHistogram {
                body: h.body.into(),
                exemplars: h.exemplars.iter().map(owned_exemplar).collect(),
            }),
        });
        OwnedFamily {
            name: f.name.into(),
            documentation: f.doc.into(),
            metric_type: f.typ,
            unit: f.unit.into(),
            samples: samples.collect(),
        }
    }

    /// Passes samples the way native metrics do: family name plus suffix.
    struct SplitNames(OwnedFamily);

    impl FamilySource for SplitNames {
        fn name(&self) -> &str {
            &self.0.name
        }
        fn documentation(&self) -> &str {
            &self.0.documentation
        }
        fn metric_type(&self) -> MetricType {
            self.0.metric_type
        }
        fn unit(&self) -> &str {
            &self.0.unit
        }
        fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
            let family = self.0.name.as_str();
            self.0.visit_samples(&mut |s| {
                let (name, suffix) = match s.name.strip_prefix(family) {
                    Some(suffix) => (family, suffix),
                    None => (s.name, ""),
                };
                visit(&Sample { name, suffix, ..*s });
            });
        }
    }

    fn py_str(s: &str) -> String {
        let mut lit = String::from("'");
        for c in s.chars() {
            lit.push_str(&format!("\\U{:08x}", c as u32));
        }
        lit.push('\'');
        lit
    }

    fn py_float(f: f64) -> String {
        format!("F(0x{:016x})", f.to_bits())
    }

    fn py_dict(labels: &[(&str, &str)]) -> String {
        let items: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}: {}", py_str(k), py_str(v)))
            .collect();
        format!("{{{}}}", items.join(", "))
    }

    fn py_exemplar(e: &Ex) -> String {
        let ts = e.ts.map_or("None".into(), Ts::python);
        format!(
            "Exemplar({}, {}, {ts})",
            py_dict(&e.labels),
            py_float(e.value)
        )
    }

    fn py_family(f: &Fam) -> String {
        let mut code = format!(
            "m = M({}, {}, '{}', {})\n",
            py_str(f.name),
            py_str(f.doc),
            f.typ.as_str(),
            py_str(f.unit)
        );
        for s in &f.samples {
            let nh = s.nh.as_ref().map_or("None".into(), |h| {
                let ex: Vec<String> = h.exemplars.iter().map(py_exemplar).collect();
                format!(
                    "NativeHistogram({}, nh_exemplars=[{}])",
                    h.py_args,
                    ex.join(", ")
                )
            });
            code += &format!(
                "m.add_sample({}, {}, {}, {}, {}, {nh})\n",
                py_str(s.name),
                py_dict(&s.labels),
                s.value.map_or("None".into(), py_float),
                s.ts.map_or("None".into(), Ts::python),
                s.ex.as_ref().map_or("None".into(), py_exemplar),
            );
        }
        code + "fams.append(m)\n"
    }

    const PY_PRELUDE: &str = "\
import struct
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import BucketSpan, Exemplar, NativeHistogram, Timestamp
from prometheus_client import exposition
from prometheus_client.openmetrics import exposition as om
def F(b): return struct.unpack('<d', struct.pack('<Q', b))[0]
def M(name, doc, typ, unit):
    m = Metric('x', doc, typ)
    m.name, m.unit = name, unit
    return m
class C:
    def __init__(self, ms): self.ms = ms
    def collect(self): return self.ms
def run(f):
    try:
        return f().hex()
    except Exception as e:
        index = [i for i, m in enumerate(fams) if m is e.args[-1]][0]
        return 'ERR %d %s' % (index, e.args[0])
fams = []
";

    /// Every (format, escaping) rendering of the fixture, one line each: hex bytes or
    /// `ERR family message`.
    fn python_lines(fams: &[Fam]) -> Option<Vec<String>> {
        let mut script = String::from(PY_PRELUDE);
        for f in fams {
            script += &py_family(f);
        }
        script += "for e in [";
        for (_, name) in SCHEMES {
            script += &format!("'{name}', ");
        }
        script += "]:\n\
            \x20   print(run(lambda: exposition.generate_latest(C(fams), e)))\n\
            \x20   print(run(lambda: om.generate_latest(C(fams), e, '1.0.0')))\n\
            \x20   print(run(lambda: om.generate_latest(C(fams), e, '2.0.0')))\n";
        let output = run_python(&script, "")?;
        Some(output.lines().map(str::to_owned).collect())
    }

    fn line(result: Result<(), RenderError>, out: &[u8]) -> String {
        match result {
            Ok(()) => out.iter().map(|b| format!("{b:02x}")).collect(),
            Err(e) => format!("ERR {} {}", e.family, e.message),
        }
    }

    fn rust_lines(families: &[&dyn FamilySource]) -> Vec<String> {
        let mut lines = Vec::new();
        for (escaping, _) in SCHEMES {
            let mut out = Vec::new();
            let result = super::write_text(&mut out, families, escaping);
            lines.push(line(result, &out));
            for native in [false, true] {
                let mut out = Vec::new();
                let result = crate::core::openmetrics::write_openmetrics(
                    &mut out, families, escaping, native,
                );
                lines.push(line(result, &out));
            }
        }
        lines
    }

    fn describe(line: &str) -> String {
        match (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
        {
            Ok(bytes) if !line.starts_with("ERR") => String::from_utf8_lossy(&bytes).into_owned(),
            _ => line.to_owned(),
        }
    }

    /// Renders `fams` with both writers in every escaping and compares with prometheus_client.
    pub fn assert_matches_python(fams: &[Fam]) {
        let Some(expected) = python_lines(fams) else {
            return;
        };
        let owned: Vec<OwnedFamily> = fams.iter().map(owned).collect();
        let split: Vec<SplitNames> = owned.iter().cloned().map(SplitNames).collect();
        let owned_refs: Vec<&dyn FamilySource> = owned.iter().map(|f| f as _).collect();
        let split_refs: Vec<&dyn FamilySource> = split.iter().map(|f| f as _).collect();
        let cases = SCHEMES
            .iter()
            .flat_map(|(_, e)| ["text", "om 1.0.0", "om 2.0.0"].map(|f| format!("{f} {e}")));
        let got = rust_lines(&owned_refs);
        let got_split = rust_lines(&split_refs);
        assert_eq!(expected.len(), got.len());
        for (((case, want), got), got_split) in cases.zip(&expected).zip(&got).zip(&got_split) {
            assert_eq!(
                describe(got),
                describe(want),
                "{case}: Rust (left) differs from Python (right)"
            );
            assert_eq!(got_split, want, "{case}: split names");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::core::model::{MetricType::*, OwnedFamily, OwnedSample};

    fn render(families: &[&dyn FamilySource], escaping: Escaping) -> String {
        let mut out = Vec::new();
        write_text(&mut out, families, escaping).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: Option<f64>) -> OwnedSample {
        OwnedSample {
            name: name.into(),
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            value,
            timestamp: None,
            exemplar: None,
            native_histogram: None,
        }
    }

    fn family(name: &str, typ: MetricType, samples: Vec<OwnedSample>) -> OwnedFamily {
        OwnedFamily {
            name: name.into(),
            documentation: "A counter\nwith \"quotes\" and \\ backslash".into(),
            metric_type: typ,
            unit: String::new(),
            samples,
        }
    }

    #[test]
    fn counter_with_created() {
        let labels = [("l", "v\"a\\l\nue")];
        let f = family(
            "cc",
            Counter,
            vec![
                sample("cc_total", &labels, Some(2.0)),
                sample("cc_created", &labels, Some(123.456)),
            ],
        );
        let want = "# HELP cc_total A counter\\nwith \"quotes\" and \\\\ backslash\n\
            # TYPE cc_total counter\n\
            cc_total{l=\"v\\\"a\\\\l\\nue\"} 2.0\n\
            # HELP cc_created A counter\\nwith \"quotes\" and \\\\ backslash\n\
            # TYPE cc_created gauge\n\
            cc_created{l=\"v\\\"a\\\\l\\nue\"} 123.456\n";
        assert_eq!(render(&[&f], Escaping::Underscores), want);
    }

    #[test]
    fn utf8_names_and_split_order() {
        let f = family(
            "gh",
            GaugeHistogram,
            vec![
                sample("gh_gsum", &[], Some(1.0)),
                sample("gh.x", &[("a", "b")], Some(2.0)),
                sample("gh_gcount", &[], Some(3.0)),
            ],
        );
        let got = render(&[&f], Escaping::AllowUtf8);
        assert!(got.contains("# TYPE gh histogram\n{\"gh.x\",a=\"b\"} 2.0\n# HELP gh_gcount"));
        assert!(got.find("gh_gcount 3.0").unwrap() < got.find("gh_gsum 1.0").unwrap());
    }

    #[test]
    fn none_value_is_an_error() {
        let ok = family("a", Gauge, vec![sample("a", &[], Some(1.0))]);
        let bad = family("b", Gauge, vec![sample("b", &[], None)]);
        let mut out = Vec::new();
        let err = write_text(&mut out, &[&ok, &bad], Escaping::Underscores).unwrap_err();
        assert_eq!(err.family, 1);
    }

    #[test]
    fn empty_registry() {
        assert_eq!(render(&[], Escaping::Underscores), "");
    }

    fn nh_full() -> Nh {
        Nh {
            body: "{count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,\
                   negative_spans:[0:2,1:2],negative_deltas:[2,1,-2,3],\
                   positive_spans:[0:2,1:2],positive_deltas:[2,1,-3,3]}",
            py_args: "24, 100, 0, 0.001, 4, (BucketSpan(0, 2), BucketSpan(1, 2)), \
                      (BucketSpan(0, 2), BucketSpan(1, 2)), (2, 1, -3, 3), (2, 1, -2, 3)",
            exemplars: vec![
                ex(
                    &[("trace_id", "KOO5S4vxi0o")],
                    0.67,
                    Some(Ts::Float(1520879607.789)),
                ),
                ex(
                    &[("trace_id", "oHg5SJYRHA0")],
                    9.8,
                    Some(Ts::Nanos(1520879607, 789)),
                ),
            ],
        }
    }

    fn nh_plain() -> Nh {
        Nh {
            body: "{count:3,sum:6.5,schema:3,zero_threshold:0.0,zero_count:1}",
            py_args: "3, 6.5, 3, 0.0, 1",
            exemplars: vec![],
        }
    }

    /// Every metric type and the escaping-sensitive corners, renderable by both formats.
    fn all_types() -> Vec<Fam> {
        let path = [("method", "GET"), ("path", "/a\"b\\c\nd")];
        let post = [("method", "POST"), ("path", "/")];
        let odd_labels = [
            ("ünï", "ü😀"),
            ("le", "x"),
            ("1a", "v"),
            ("a:b", "w"),
            ("__r", ""),
        ];
        vec![
            fam(
                "requests",
                "Total \"requests\"\\ handled\nsecond line",
                Counter,
                vec![
                    s("requests_total", &path, 3.0).ex(ex(
                        &[("trace_id", "abc\"\n\\")],
                        1.5,
                        Some(Ts::Float(1.25)),
                    )),
                    s("requests_created", &path, 1795455629.6996083),
                    s("requests_total", &post, 1e6)
                        .ts(Ts::Nanos(123, 456000000))
                        .ex(ex(&[], 2.0, None)),
                    s("requests_created", &post, 1.7e9),
                ],
            ),
            fam(
                "temp:celsius",
                "",
                Gauge,
                vec![
                    s("temp:celsius", &[], -1.5).ts(Ts::Float(1.5)),
                    s("temp:celsius", &odd_labels, 1234567.8).ts(Ts::Float(1e-3)),
                ],
            ),
            fam(
                "lat_seconds",
                "Latency.",
                Summary,
                vec![
                    s("lat_seconds", &[("quantile", "0.5")], 0.005),
                    s("lat_seconds_count", &[], 7.0),
                    s("lat_seconds_sum", &[], 123456789.0),
                    s("lat_seconds_created", &[], 1.7e9),
                ],
            )
            .unit("seconds"),
            fam(
                "hist",
                "A histogram",
                Histogram,
                vec![
                    s("hist_bucket", &[("le", "0.1")], 0.0).ex(ex(
                        &[("trace_id", "t1"), ("span", "s")],
                        0.05,
                        Some(Ts::Nanos(1700000000, 5)),
                    )),
                    s("hist_bucket", &[("le", "+Inf")], 2.0),
                    s("hist_count", &[], 2.0),
                    s("hist_sum", &[], 0.1 + 0.2),
                    s("hist_created", &[], 1e9),
                    s("hist", &[], 0.0)
                        .nh(nh_full())
                        .ex(ex(&[("trace_id", "nh")], 0.5, None)),
                    s("hist", &[("path", "/x")], 0.0).nh(nh_plain()),
                ],
            ),
            fam(
                "gh",
                "gauge histogram",
                GaugeHistogram,
                vec![
                    s("gh_bucket", &[("le", "1.0")], 3.0).ex(ex(&[("a", "b")], 1.0, None)),
                    s("gh_bucket", &[("le", "+Inf")], 5.0),
                    s("gh_gsum", &[], 12.5),
                    s("gh_gcount", &[], 5.0),
                    s("gh_created", &[], 1.0),
                ],
            ),
            fam(
                "build",
                "Build info",
                Info,
                vec![s("build_info", &[("version", "1.0")], 1.0)],
            ),
            fam(
                "state",
                "A state set",
                StateSet,
                vec![
                    s("state", &[("state", "a")], 1.0),
                    s("state", &[("state", "b")], 0.0),
                ],
            ),
            fam(
                "my.metric ü",
                "unicode",
                Unknown,
                vec![
                    s("my.metric ü", &[("näme", "ü\n")], 2.5),
                    s("0abc", &[], 7.5),
                    s("smile😀", &[("k", "v")], 1e-05),
                    s("", &[("k", "v")], 1.0),
                    s("", &[], 2.0),
                    s("a:b_total", &[], 3.0),
                    s("dotted.name_x", &[("dotted.label_y", "z")], 4.0),
                ],
            ),
            fam("nl\n", "trailing newline", Gauge, vec![s("nl\n", &[], 1.0)]),
            fam("empty", "nothing", Gauge, vec![]),
            fam(
                "special",
                "special values",
                Counter,
                vec![
                    s("special_total", &[("v", "inf")], f64::INFINITY),
                    s("special_total", &[("v", "-inf")], f64::NEG_INFINITY),
                    s("special_total", &[("v", "nan")], f64::NAN),
                    s("special_total", &[("v", "-0")], -0.0),
                    s("special_total", &[("v", "tiny")], 5e-324),
                    s("special_total", &[("v", "2^60")], 2f64.powi(60)),
                    s("special_total", &[("v", "max")], f64::MAX),
                    s("special_total", &[("v", "neg")], -1234567.0),
                ],
            ),
            fam(
                "size_bytes",
                "Size in \"bytes\"",
                Gauge,
                vec![s("size_bytes", &[], 1e16)],
            )
            .unit("bytes"),
        ]
    }

    #[test]
    fn all_types_match_python() {
        assert_matches_python(&all_types());
    }

    #[test]
    fn each_family_alone_matches_python() {
        for f in all_types() {
            assert_matches_python(&[f]);
        }
    }

    #[test]
    fn none_values_match_python() {
        let fams = vec![fam(
            "nh",
            "none values",
            Histogram,
            vec![
                s_none("nh", &[]).nh(nh_plain()),
                s_none("nh_count", &[("a", "b")]),
                s_none("nh", &[("a", "c")])
                    .nh(nh_full())
                    .ts(Ts::Float(12.5)),
            ],
        )];
        assert_matches_python(&fams);
    }

    #[test]
    fn exemplar_errors_match_python() {
        let good = || fam("ok", "fine", Gauge, vec![s("ok", &[], 1.0)]);
        let bad_gauge = fam(
            "g",
            "gauge with exemplar",
            Gauge,
            vec![s("g", &[], 1.0).ex(ex(&[("a", "b")], 1.0, None))],
        );
        assert_matches_python(&[good(), bad_gauge]);
        // The sample's own exemplar is checked even when its native histogram is skipped.
        let bad_nh = fam(
            "c",
            "counter",
            Counter,
            vec![s("c_created", &[], 1.0)
                .nh(nh_plain())
                .ex(ex(&[("a", "b")], 1.0, None))],
        );
        assert_matches_python(&[good(), bad_nh]);
        // Native-histogram exemplars are only checked when the histogram is written.
        let mut nh = nh_plain();
        nh.exemplars.push(ex(&[("a", "b")], 1.0, None));
        let bad_nh_exemplars = fam("h", "hist", Histogram, vec![s("h_sum", &[], 1.0).nh(nh)]);
        assert_matches_python(&[good(), bad_nh_exemplars]);
        let counter_created = fam(
            "cc",
            "counter",
            Counter,
            vec![s("cc_created", &[], 1.0).ex(ex(&[], 1.0, None))],
        );
        assert_matches_python(&[counter_created]);
    }

    #[test]
    fn empty_matches_python() {
        assert_matches_python(&[]);
    }
}
