//! What the commands print: aligned tables for people (the default) or one JSON document
//! (`--format json`; `consume` prints one document per record). Output goes through
//! [`Out`], which reports a closed standard output (`floe consume | head`) as
//! [`StdoutClosed`] instead of panicking as `println!` would.

use std::io::Write;

use serde_json::Value;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables and short sentences.
    Text,
    /// Stable JSON (see docs/cli.md).
    Json,
}

/// Standard output was closed by the reader; the command stops and exits 0.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The command's standard output.
pub struct Out {
    /// Text or JSON.
    pub format: Format,
    stdout: std::io::BufWriter<std::io::Stdout>,
}

impl Out {
    /// Output in `format` to standard output.
    pub fn new(format: Format) -> Out {
        Out {
            format,
            stdout: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Writes `text` as is.
    pub fn write(&mut self, text: &str) -> anyhow::Result<()> {
        self.stdout.write_all(text.as_bytes()).map_err(closed)
    }

    /// Writes raw bytes (record keys and values in a template).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stdout.write_all(bytes).map_err(closed)
    }

    /// Writes `value` as one line of JSON.
    pub fn json_line(&mut self, value: &Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.write(&line)
    }

    /// `value` as JSON or `text()` as text, by the format.
    pub fn emit(&mut self, value: &Value, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json() {
            self.json_line(value)
        } else {
            let text = text();
            self.write(&text)
        }
    }

    /// Flushes buffered output (records are flushed after each fetch).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.stdout.flush().map_err(closed)
    }
}

fn closed(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("writing to standard output")
    }
}

/// A table with a header row, columns padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row (cells beyond the header's are kept and padded too).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, columns separated by two spaces, no trailing blanks.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `-` for a missing value, else the value.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Comma-separated list.
pub fn list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_lines() {
        let mut t = Table::new(&["NAME", "PARTITIONS"]);
        t.row(vec!["a-long-name".into(), "3".into()]);
        t.row(vec!["b".into(), "12".into()]);
        assert_eq!(
            t.render(),
            "NAME         PARTITIONS\na-long-name  3\nb            12\n"
        );
    }

    #[test]
    fn lists_and_dashes() {
        assert_eq!(list(&[1, 2, 3]), "1,2,3");
        assert_eq!(or_dash(None::<i64>), "-");
        assert_eq!(or_dash(Some(5)), "5");
    }
}
