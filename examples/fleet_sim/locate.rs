//! Placing a fleet file's problems on their lines: a parser error becomes
//! `file:line:column: place: message`, a [`ConfigError`] becomes
//! `file:line: place: problem` (its own `Display`), the line being that of
//! the deepest part of its place found in the text.

use modelfleet::config::{ConfigError, PathSegment};

use super::load::Format;

/// A parser error at byte `offset` of `text` (when known), naming the line,
/// the column and the innermost field there.
pub(crate) fn parse_error(
    name: &str,
    text: &str,
    format: Format,
    offset: Option<usize>,
    message: &str,
) -> String {
    let Some(offset) = offset else {
        return format!("{name}: {message}");
    };
    let (line, column) = line_column(text, offset);
    let path = match format {
        Format::Json => json_path_at(text, offset),
        Format::Toml => toml_path_at(text, offset),
    };
    let field = if path.is_empty() {
        String::new()
    } else {
        format!(" {}:", render_path(&path))
    };
    format!("{name}:{line}:{column}:{field} {message}")
}

/// A problem the fleet found while building, on the line of its place.
pub(crate) fn config_error(name: &str, text: &str, format: Format, e: &ConfigError) -> String {
    let line = match format {
        Format::Json => json_line(text, e.segments()),
        Format::Toml => toml_line(text, e.segments()),
    };
    let place = line.map_or(String::new(), |l| format!(":{l}"));
    format!("{name}{place}: {e}")
}

/// The byte offset of a 1-based `line` and `column` (as `serde_json`
/// counts them).
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    start + column.saturating_sub(1)
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A place as [`ConfigError::path`] writes it: `deployments[1].endpoint`.
/// A parser error comes with no [`ConfigError`], only the place found in
/// the text, so this writes it with the same rule.
fn render_path(path: &[PathSegment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSegment::Index(i) => s.push_str(&format!("[{i}]")),
            PathSegment::Key(k)
                if !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSegment::Key(k) => s.push_str(&format!("[{k:?}]")),
            _ => {}
        }
    }
    s
}

/// One entry of a TOML table or array: its place, its key's span, its value.
type Entry<'a, 'i> = (
    PathSegment,
    Option<std::ops::Range<usize>>,
    &'a toml::Spanned<toml::de::DeValue<'i>>,
);

/// The place of the innermost key or value of a TOML document at byte
/// `offset`.
fn toml_path_at(text: &str, offset: usize) -> Vec<PathSegment> {
    use toml::de::{DeTable, DeValue};
    // A table's span is its header only, so every entry is searched.
    fn walk(value: &DeValue<'_>, offset: usize, path: &mut Vec<PathSegment>) -> bool {
        let inside = |span: std::ops::Range<usize>| {
            span.start <= offset && offset < span.end.max(span.start + 1)
        };
        let entries: Vec<Entry<'_, '_>> = match value {
            DeValue::Table(t) => t
                .iter()
                .map(|(k, v)| (PathSegment::Key(k.get_ref().to_string()), Some(k.span()), v))
                .collect(),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (PathSegment::Index(i), None, v))
                .collect(),
            _ => return false,
        };
        for (seg, key, v) in entries {
            path.push(seg);
            if key.is_some_and(inside) || inside(v.span()) {
                walk(v.get_ref(), offset, path);
                return true;
            }
            if walk(v.get_ref(), offset, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    if let Ok(root) = DeTable::parse(text) {
        walk(&DeValue::Table(root.into_inner()), offset, &mut path);
    }
    path
}

/// The place of the innermost key or value of a JSON document at byte
/// `offset`.
fn json_path_at(text: &str, offset: usize) -> Vec<PathSegment> {
    let mut scan = JsonScan {
        text: text.as_bytes(),
        at: 0,
    };
    let mut path = Vec::new();
    scan.space();
    scan.locate(offset, &mut path);
    path
}

/// The line of the deepest part of `path` found in a TOML document.
fn toml_line(text: &str, path: &[PathSegment]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut here = DeValue::Table(root.into_inner());
    for seg in path {
        let next = match seg {
            PathSegment::Key(k) => here.get(k.as_str()),
            PathSegment::Index(i) => here.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        here = next.get_ref().clone();
    }
    span.map(|s| line_column(text, s.start).0)
}

/// The line of the deepest part of `path` found in a JSON document.
fn json_line(text: &str, path: &[PathSegment]) -> Option<usize> {
    let mut scan = JsonScan {
        text: text.as_bytes(),
        at: 0,
    };
    scan.space();
    let mut found = None;
    for seg in path {
        if !scan.enter(seg) {
            break;
        }
        found = Some(scan.at);
    }
    found.map(|offset| line_column(text, offset).0)
}

/// Just enough of a JSON reader to find where a value starts (the text is
/// known to be valid JSON).
struct JsonScan<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonScan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.space();
        let ok = self.peek() == Some(b);
        if ok {
            self.at += 1;
            self.space();
        }
        ok
    }

    /// Reads a string and returns it decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => break,
                _ => {}
            }
        }
        let raw = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        serde_json::from_str(raw).ok()
    }

    fn skip_value(&mut self) {
        self.space();
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.space();
                if self.eat(close) {
                    return;
                }
                loop {
                    if open == b'{' {
                        self.string();
                        self.eat(b':');
                    }
                    self.skip_value();
                    if !self.eat(b',') {
                        self.eat(close);
                        return;
                    }
                }
            }
            _ => {
                while matches!(self.peek(), Some(b) if !b",}] \t\r\n".contains(&b)) {
                    self.at += 1;
                }
            }
        }
        self.space();
    }

    /// Walks the value here, recording in `path` the keys and indices
    /// leading to byte `offset` (a key counts as part of its entry).
    fn locate(&mut self, offset: usize, path: &mut Vec<PathSegment>) -> bool {
        self.space();
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.space();
                if self.eat(close) {
                    return false;
                }
                let mut i = 0;
                loop {
                    let start = self.at;
                    let seg = if open == b'{' {
                        let k = self.string().unwrap_or_default();
                        self.eat(b':');
                        PathSegment::Key(k)
                    } else {
                        PathSegment::Index(i)
                    };
                    if offset < start {
                        return false;
                    }
                    path.push(seg);
                    let value_start = self.at;
                    if offset < value_start || self.locate(offset, path) {
                        return true;
                    }
                    if offset < self.at {
                        return true;
                    }
                    path.pop();
                    i += 1;
                    if !self.eat(b',') {
                        self.eat(close);
                        return false;
                    }
                }
            }
            _ => {
                self.skip_value();
                false
            }
        }
    }

    /// Moves to the start of the value at `seg` inside the current value.
    fn enter(&mut self, seg: &PathSegment) -> bool {
        self.space();
        match (seg, self.peek()) {
            (PathSegment::Key(key), Some(b'{')) => {
                self.at += 1;
                self.space();
                while self.peek() == Some(b'"') {
                    let k = self.string();
                    self.eat(b':');
                    if k.as_deref() == Some(key.as_str()) {
                        return true;
                    }
                    self.skip_value();
                    if !self.eat(b',') {
                        break;
                    }
                }
                false
            }
            (PathSegment::Index(i), Some(b'[')) => {
                self.at += 1;
                self.space();
                for _ in 0..*i {
                    self.skip_value();
                    if !self.eat(b',') {
                        return false;
                    }
                }
                !matches!(self.peek(), Some(b']') | None)
            }
            _ => false,
        }
    }
}
