//! Config errors: each problem with the file, line and column it was found at.

use std::fmt;
use std::ops::Range;

/// One problem in a config, with where it is.
///
/// `line` and `column` are 1-based (the column counts characters, not bytes). Both are 0 when
/// the problem has no place in a file: a file that could not be read, or a `Config` built in
/// code (origin `"<in code>"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file name (or `<embedded default>`, `<in code>`) the problem was found in.
    pub origin: String,
    /// 1-based line, or 0 when there is no position.
    pub line: usize,
    /// 1-based column in characters, or 0 when there is no position.
    pub column: usize,
    /// What is wrong, and usually how to fix it.
    pub message: String,
}

impl ConfigError {
    /// A problem without a position in a file (line 0, column 0).
    pub fn unplaced(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

/// Every problem found in one config, in file order; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no problem (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One problem per line, `FILE:LINE:COL: message`, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Collects problems found in one text, turning byte spans into lines and columns.
#[derive(Debug)]
pub(crate) struct Collector<'t> {
    origin: &'t str,
    text: &'t str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// (byte offset, message) of each problem, in the order found.
    found: Vec<(usize, String)>,
}

impl<'t> Collector<'t> {
    /// A collector for problems in `text`, reported as coming from `origin`.
    pub(crate) fn new(origin: &'t str, text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Collector {
            origin,
            text,
            line_starts,
            found: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.found.push((span.start, message.into()));
    }

    /// The 1-based line and character column of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line.max(1), column + 1)
    }

    /// The problems in file order, or `None` when there were none.
    pub(crate) fn finish(self) -> Option<ConfigErrors> {
        if self.found.is_empty() {
            return None;
        }
        let mut errors: Vec<(usize, ConfigError)> = self
            .found
            .iter()
            .map(|(offset, message)| {
                let (line, column) = self.position(*offset);
                let error = ConfigError {
                    origin: self.origin.to_string(),
                    line,
                    column,
                    message: message.clone(),
                };
                (*offset, error)
            })
            .collect();
        errors.sort_by_key(|(offset, _)| *offset);
        Some(ConfigErrors(errors.into_iter().map(|(_, e)| e).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\nçé = 1\n\nx";
        let c = Collector::new("f", text);
        assert_eq!(c.position(0), (1, 1));
        assert_eq!(c.position(2), (1, 3));
        assert_eq!(c.position(3), (2, 1));
        // "çé" is 4 bytes but 2 characters.
        assert_eq!(c.position(3 + 4), (2, 3));
        assert_eq!(c.position(text.len() - 1), (4, 1));
        assert_eq!(c.position(text.len() + 10), (4, 2));
    }

    #[test]
    fn errors_display_one_per_line_in_file_order() {
        let text = "a\nb\nc\n";
        let mut c = Collector::new("x.toml", text);
        c.error(&(4..5), "third");
        c.error(&(0..1), "first");
        let errors = c.finish().unwrap_or_else(|| ConfigErrors(Vec::new()));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors.to_string(), "x.toml:1:1: first\nx.toml:3:1: third");
    }
}
