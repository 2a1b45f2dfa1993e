//! The Prometheus text exposition format (version 0.0.4) for the metrics `/metrics`
//! computes when scraped: one family (`# HELP`, `# TYPE`, then its samples) at a time.

use std::fmt::Write;

/// A metric's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// A value now.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

/// One metric family being rendered.
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: String,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            samples: String::new(),
        }
    }

    /// One sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        line(&mut self.samples, self.name, "", labels, None, value);
    }

    /// One histogram: `counts[i]` observations in bucket `i` (not cumulative; the last is
    /// past every bound), their sum.
    pub fn histogram(&mut self, labels: &[(&str, &str)], bounds: &[f64], counts: &[u64], sum: f64) {
        let mut cumulative = 0u64;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            line(
                &mut self.samples,
                self.name,
                "_bucket",
                labels,
                Some(&le),
                cumulative as f64,
            );
        }
        line(&mut self.samples, self.name, "_sum", labels, None, sum);
        line(
            &mut self.samples,
            self.name,
            "_count",
            labels,
            None,
            cumulative as f64,
        );
    }

    /// Appends the family to `out` (with its HELP and TYPE lines even when it has no
    /// samples, so every documented metric is listed).
    pub fn write(self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        out.push_str(&self.samples);
    }
}

fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    let mut first = true;
    for (k, v) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and newline.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_labels_and_histograms() {
        let mut out = String::new();
        let mut f = Family::new("x_total", "Things.", Kind::Counter);
        f.sample(&[("topic", "a\"b\\c\nd")], 3.0);
        f.sample(&[], 1.5);
        f.write(&mut out);
        let mut h = Family::new("lat_seconds", "Latency.", Kind::Histogram);
        h.histogram(&[("api", "Produce")], &[0.1, 1.0], &[2, 1, 4], 9.25);
        h.write(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{topic=\"a\\\"b\\\\c\\nd\"} 3\nx_total 1.5\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{api=\"Produce\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{api=\"Produce\",le=\"1\"} 3\n\
             lat_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 7\n\
             lat_seconds_sum{api=\"Produce\"} 9.25\n\
             lat_seconds_count{api=\"Produce\"} 7\n"
        );
    }
}
