//! A small RFC 4180 CSV reader and writer for imports, templates and exports.
//!
//! Written cells that a spreadsheet would run as a formula (starting with `=`,
//! `+`, `-`, `@`, tab or carriage return) are neutralised with a leading `'`.

/// One parsed record and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub cells: Vec<String>,
}

/// Parses a CSV file. Accepts a UTF-8 BOM, CRLF or LF line ends, quoted cells
/// with `""` escapes and embedded newlines; skips blank lines. Errors name the line.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(format!(
                "line {line}: the file is not UTF-8 text (save it as CSV UTF-8)"
            ));
        }
    };
    let mut records = Vec::new();
    let mut cells: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut in_quotes = false;
    let mut quoted_cell = false;
    let mut chars = text.chars().peekable();
    let mut record_has_content = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => {
                    in_quotes = false;
                    match chars.peek() {
                        None | Some(',') | Some('\n') | Some('\r') => {}
                        Some(_) => {
                            return Err(format!(
                                "line {line}: unexpected character after a closing quote"
                            ));
                        }
                    }
                }
                '\n' => {
                    line += 1;
                    cell.push('\n');
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() && !quoted_cell => {
                in_quotes = true;
                quoted_cell = true;
                record_has_content = true;
            }
            '"' => return Err(format!("line {line}: a quote inside an unquoted cell")),
            ',' => {
                cells.push(std::mem::take(&mut cell));
                quoted_cell = false;
                record_has_content = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => {
                if record_has_content {
                    cells.push(std::mem::take(&mut cell));
                    records.push(Record {
                        line: start_line,
                        cells: std::mem::take(&mut cells),
                    });
                }
                quoted_cell = false;
                record_has_content = false;
                line += 1;
                start_line = line;
            }
            _ => {
                cell.push(c);
                record_has_content |= !c.is_whitespace();
            }
        }
    }
    if in_quotes {
        return Err(format!("line {start_line}: a quoted cell is never closed"));
    }
    if record_has_content {
        cells.push(cell);
        records.push(Record {
            line: start_line,
            cells,
        });
    }
    Ok(records)
}

/// The cell as written: neutralised if a spreadsheet would evaluate it, and
/// quoted when it holds a comma, quote or line break.
pub fn cell(value: &str) -> String {
    let neutral = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// Accumulates a CSV document (CRLF line ends, as RFC 4180 says).
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let line: Vec<String> = cells.iter().map(|c| cell(c.as_ref())).collect();
        self.out.push_str(&line.join(","));
        self.out.push_str("\r\n");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_quotes_and_newlines() {
        let mut w = Writer::new();
        w.row(&["a", "b,c", "say \"hi\"", "two\nlines"]);
        w.row(&["=1+1", "-5", "@x", "plain"]);
        let text = w.finish();
        let recs = parse(text.as_bytes()).unwrap();
        assert_eq!(recs[0].cells, ["a", "b,c", "say \"hi\"", "two\nlines"]);
        assert_eq!(recs[1].line, 3);
        assert_eq!(recs[1].cells, ["'=1+1", "'-5", "'@x", "plain"]);
    }

    #[test]
    fn errors_name_the_line() {
        assert!(parse(b"a,b\nc,\"d\n").unwrap_err().starts_with("line 2"));
        assert!(parse(b"a,b\nx\"y,z\n").unwrap_err().starts_with("line 2"));
        assert!(parse(b"a\n\xff\xfe\n").unwrap_err().starts_with("line 2"));
    }

    #[test]
    fn blank_lines_and_bom() {
        let recs = parse(b"\xEF\xBB\xBFa,b\r\n\r\nc,d").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].line, 3);
        assert_eq!(recs[0].cells, ["a", "b"]);
        let recs = parse(b"a\n   \r\n\t\nb\n").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].line, 4);
        let recs = parse(b"x,\"\"\n").unwrap();
        assert_eq!(recs[0].cells, ["x", ""]);
    }
}
