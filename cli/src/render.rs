//! Output: tables for people (colors only on a terminal) and JSON for programs.

use std::fmt;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

/// One cell: its text and style. Styles are written as ANSI codes that `anstream` strips when
/// stdout is not a terminal (or `NO_COLOR` is set), so colors appear only on a terminal.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), style: Style::new() }
    }

    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell { text: text.into(), style }
    }
}

/// A table aligned on the plain text widths (styles do not count).
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn add_row(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }
}

/// A table with these column names.
pub fn table(header: &[&str]) -> Table {
    Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.header.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut width = vec![0usize; cols];
        for (i, h) in self.header.iter().enumerate() {
            width[i] = width[i].max(h.chars().count());
        }
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.text.chars().count());
            }
        }
        let bold = Style::new().bold();
        let line = |f: &mut fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = (usize, &str, Style)>| -> fmt::Result {
            let mut first = true;
            for (i, text, style) in cells {
                if !first {
                    write!(f, "  ")?;
                }
                first = false;
                let pad = width[i].saturating_sub(text.chars().count());
                // The last column is not padded (no trailing spaces).
                let pad = if i + 1 == cols { 0 } else { pad };
                write!(f, "{}{text}{}{}", style.render(), style.render_reset(), " ".repeat(pad))?;
            }
            writeln!(f)
        };
        line(f, &mut self.header.iter().enumerate().map(|(i, h)| (i, h.as_str(), bold)))?;
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        line(f, &mut rule.iter().enumerate().map(|(i, r)| (i, r.as_str(), Style::new())))?;
        for r in &self.rows {
            line(f, &mut r.iter().enumerate().map(|(i, c)| (i, c.text.as_str(), c.style)))?;
        }
        Ok(())
    }
}

/// A cell colored by the state it shows (server state, cluster status, A/S, job state).
pub fn state_cell(state: &str) -> Cell {
    let color = match state {
        "Master" | "running" | "A" | "done" | "Running OK" | "Master OK" => Some(AnsiColor::BrightGreen),
        "Slave" => Some(AnsiColor::Green),
        "Suspect" | "SlaveLate" | "errors" => Some(AnsiColor::Yellow),
        "Failed" | "SlaveErr" | "ErrorAuth" | "failed" | "unreachable" => Some(AnsiColor::Red),
        "Maintenance" => Some(AnsiColor::Cyan),
        s if s.starts_with("NOT OK") || s.starts_with("Quarantined") => Some(AnsiColor::Red),
        _ => None,
    };
    match color {
        Some(c) => Cell::styled(state, Style::new().fg_color(Some(c.into()))),
        None => Cell::new(state),
    }
}

/// The text of a JSON value as a table cell shows it.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes".into() } else { "no".into() },
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// `[{"domainId","serverId","seqNo"}]` as `0-1-42,1-2-7`.
pub fn gtid(v: &Value) -> String {
    match v.as_array() {
        None => String::new(),
        Some(list) => list
            .iter()
            .map(|g| format!("{}-{}-{}", text(&g["domainId"]), text(&g["serverId"]), text(&g["seqNo"])))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Prints a JSON value, pretty.
pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

/// An array of flat objects as a table (columns from the first object), anything else as JSON.
pub fn print_any(v: &Value) {
    if let Some(rows) = v.as_array() {
        if let Some(first) = rows.first().and_then(Value::as_object) {
            let cols: Vec<&str> = first.keys().map(String::as_str).collect();
            let flat = rows.iter().all(|r| r.as_object().is_some_and(|o| o.values().all(|x| !x.is_object() && !x.is_array())));
            if flat {
                let mut t = table(&cols);
                for r in rows {
                    t.add_row(cols.iter().map(|c| Cell::new(text(&r[*c]))).collect());
                }
                anstream::print!("{t}");
                return;
            }
        }
    }
    print_json(v);
}

/// Human size: `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut u = 0;
    while f >= 1024.0 && u + 1 < UNITS.len() {
        f /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{f:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_sizes() {
        assert_eq!(gtid(&serde_json::json!([{"domainId":0,"serverId":1,"seqNo":42},{"domainId":1,"serverId":2,"seqNo":7}])), "0-1-42,1-2-7");
        assert_eq!(gtid(&Value::Null), "");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 300 * 1024), "3.3 MiB");
        assert_eq!(text(&serde_json::json!(true)), "yes");
        let mut t = table(&["Id", "State"]);
        t.add_row(vec![Cell::new("db1"), state_cell("Master")]);
        t.add_row(vec![Cell::new("db22"), Cell::new("Slave")]);
        let plain = anstream::adapter::strip_str(&t.to_string()).to_string();
        assert_eq!(plain, "Id    State\n----  ------\ndb1   Master\ndb22  Slave\n");
    }
}
