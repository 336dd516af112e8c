//! Text to raw structs, reporting every structural problem rather than only the first.
//!
//! serde stops at its first error. So the text is parsed once into toml's spanned document
//! tree (`DeTable`, which also collects every syntax error), and deserialized from that tree.
//! When serde fails at a position (an unknown key, a value of the wrong type), the offending
//! entry is removed from the tree, the problem is recorded, and deserialization runs again,
//! up to [`MAX_PROBLEMS`] times. The paths of removed entries are kept so validation does not
//! report their absence as a second problem.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, Deserializer};

use crate::error::Collector;
use crate::raw::RawConfig;

/// Structural problems reported before giving up on a file.
const MAX_PROBLEMS: usize = 100;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Key(String),
    Index(usize),
}

/// The entries recovery took out: their dotted paths (`services.app.pools`, `listen.http[1]`),
/// and for each array the original indices of the items taken out of it.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    paths: Vec<String>,
    indices: BTreeMap<String, Vec<usize>>,
}

impl Removed {
    /// True when the entry at the dotted `path`, or anything inside it, was removed.
    pub(crate) fn touched(&self, path: &str) -> bool {
        self.paths.iter().any(|removed| {
            removed.strip_prefix(path).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }

    /// The index in the file of the `index`th item left in the array at `array`.
    pub(crate) fn original_index(&self, array: &str, index: usize) -> usize {
        let gone = self.indices.get(array).map_or(&[][..], Vec::as_slice);
        let mut remaining = index;
        let mut original = 0;
        loop {
            if !gone.contains(&original) {
                if remaining == 0 {
                    return original;
                }
                remaining -= 1;
            }
            original += 1;
        }
    }

    /// Records a removal at `parts` (indices as they were in the shrunk arrays); returns the
    /// parts with the indices they have in the file.
    fn record(&mut self, parts: &[Part]) -> Vec<Part> {
        let mut original = Vec::with_capacity(parts.len());
        for part in parts {
            original.push(match part {
                Part::Key(key) => Part::Key(key.clone()),
                Part::Index(index) => Part::Index(self.original_index(&dotted(&original), *index)),
            });
        }
        if let Some((Part::Index(index), array)) = original.split_last() {
            let gone = self.indices.entry(dotted(array)).or_default();
            gone.push(*index);
        }
        self.paths.push(dotted(&original));
        original
    }
}

/// Deserializes `text`, recording every problem in `errors`. Returns the raw config (with the
/// bad entries left out) unless the text is not TOML at all.
pub(crate) fn parse_raw(text: &str, errors: &mut Collector<'_>) -> Option<(RawConfig, Removed)> {
    let (mut doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            let message = error.message().trim_end();
            errors.error(
                &error.span().unwrap_or(0..0),
                format!("TOML syntax error: {message}"),
            );
        }
        return None;
    }
    let mut removed = Removed::default();
    // (span, dotted path, message) of each structural problem.
    let mut problems: Vec<(Range<usize>, String, String)> = Vec::new();
    let mut outcome = None;
    for _ in 0..=MAX_PROBLEMS {
        let error = match RawConfig::deserialize(Deserializer::from(doc.clone())) {
            Ok(raw) => {
                outcome = Some(raw);
                break;
            }
            Err(error) => error,
        };
        let span = error.span().unwrap_or(0..0);
        if problems.len() == MAX_PROBLEMS {
            problems.push((
                span,
                String::new(),
                format!("too many problems; stopped after {MAX_PROBLEMS}"),
            ));
            break;
        }
        let mut path = Vec::new();
        let Some((hit, found)) = detach_from_table(doc.get_mut(), &span, &mut path) else {
            // Not an entry we can take out: report it and stop here.
            problems.push((span, String::new(), error.message().to_string()));
            break;
        };
        let hit = removed.record(&hit);
        let name = dotted(&hit);
        // A problem with a whole entry replaces those found inside it earlier (for example an
        // array written where a table belongs: first its items fail, then the array itself).
        problems.retain(|(_, inner, _)| !is_inside(inner, &name));
        problems.push((span, name, describe(error.message(), &hit, found)));
    }
    for (span, _, message) in problems {
        errors.error(&span, message);
    }
    outcome.map(|raw| (raw, removed))
}

/// True when the dotted path `inner` lies strictly inside `outer`.
fn is_inside(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Where an entry was taken out, and the TOML type of its value (`"integer"`, `"table"`, …).
type Hit = (Vec<Part>, &'static str);

/// Removes the deepest entry whose key or value is exactly at `span`.
fn detach_from_table(
    table: &mut DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Part>,
) -> Option<Hit> {
    let mut target = None;
    for (key, value) in table.iter_mut() {
        path.push(Part::Key(key.get_ref().to_string()));
        if let Some(hit) = detach_from_value(value.get_mut(), span, path) {
            return Some(hit);
        }
        path.pop();
        if key.span() == *span || value.span() == *span {
            target = Some(key.clone());
            break;
        }
    }
    let key = target?;
    let found = table
        .remove(&key)
        .map_or("value", |value| value.get_ref().type_str());
    let mut hit = path.clone();
    hit.push(Part::Key(key.into_inner().into_owned()));
    Some((hit, found))
}

fn detach_from_value(
    value: &mut DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Part>,
) -> Option<Hit> {
    let array = match value {
        DeValue::Table(table) => return detach_from_table(table, span, path),
        DeValue::Array(array) => array,
        _ => return None,
    };
    let mut target = None;
    for (index, item) in array.iter_mut().enumerate() {
        path.push(Part::Index(index));
        if let Some(hit) = detach_from_value(item.get_mut(), span, path) {
            return Some(hit);
        }
        path.pop();
        if item.span() == *span {
            target = Some(index);
            break;
        }
    }
    let index = target?;
    let found = array
        .get(index)
        .map_or("value", |item| item.get_ref().type_str());
    let mut kept = DeArray::new();
    for (i, item) in array.iter().enumerate() {
        if i != index {
            kept.push(Spanned::clone(item));
        }
    }
    *array = kept;
    let mut hit = path.clone();
    hit.push(Part::Index(index));
    Some((hit, found))
}

/// `services.app.pools.blue.servers[1]` from its parts.
fn dotted(path: &[Part]) -> String {
    let mut out = String::new();
    for part in path {
        match part {
            Part::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Part::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// Rewrites serde's message for the entry removed at `path`.
fn describe(message: &str, path: &[Part], found: &str) -> String {
    let name = dotted(path);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (key, table) = match path.split_last() {
            Some((Part::Key(key), table)) => (key.as_str(), dotted(table)),
            _ => ("?", String::new()),
        };
        let place = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in table `{table}`")
        };
        let allowed = quoted_names(rest.split_once("expected").map_or("", |(_, list)| list));
        let hint = closest(key, &allowed)
            .map(|near| format!(" (did you mean `{near}`?)"))
            .unwrap_or_default();
        return if allowed.is_empty() {
            format!("unknown key `{key}` {place}{hint}: this table takes no keys")
        } else {
            format!(
                "unknown key `{key}` {place}{hint}; allowed keys: {}",
                allowed.join(", ")
            )
        };
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((serde_found, expected)) = rest.split_once(", expected ") {
            return format!(
                "{name}: wrong type: expected {}, found {}",
                plain_expected(expected),
                plain_found(found, serde_found)
            );
        }
    }
    if message.starts_with("invalid length") {
        // A struct's visitor was handed an array: the user wrote an array for a table.
        return format!(
            "{name}: wrong type: expected a table, found {}",
            plain_found(found, "")
        );
    }
    format!("{name}: {message}")
}

/// serde's "expected" in the words of a TOML user.
fn plain_expected(expected: &str) -> &str {
    match expected {
        _ if expected.starts_with("struct ") => "a table",
        "a map" => "a table",
        "a sequence" => "an array",
        "i64" | "u64" | "i32" | "u32" | "usize" => "an integer",
        "f64" => "a number",
        other => other,
    }
}

/// What was found: serde's words for a plain value (they include it), else the TOML type.
fn plain_found(toml_type: &str, serde_found: &str) -> String {
    match toml_type {
        "table" => "a table".to_string(),
        "array" => "an array".to_string(),
        "datetime" => "a date-time".to_string(),
        _ if !serde_found.is_empty() => serde_found.to_string(),
        other => format!("a value of type {other}"),
    }
}

/// The names between backticks in serde's "expected one of `a`, `b`".
fn quoted_names(list: &str) -> Vec<String> {
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The allowed key nearest to a misspelt one, if it is near enough to be a likely typo.
fn closest(key: &str, allowed: &[String]) -> Option<String> {
    allowed
        .iter()
        .map(|name| (edit_distance(key, name), name))
        .filter(|(distance, name)| *distance <= 2 && *distance < name.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.clone())
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let insert = current[j] + 1;
            let delete = previous[j + 1] + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("intervall", "interval"), 1);
        assert_eq!(edit_distance("listne", "listen"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        let allowed = vec!["interval".to_string(), "timeout".to_string()];
        assert_eq!(closest("intreval", &allowed).as_deref(), Some("interval"));
        assert_eq!(closest("zzz", &allowed), None);
    }

    #[test]
    fn removed_paths_cover_their_insides() {
        let mut removed = Removed::default();
        removed.record(&[Part::Key("a".into()), Part::Key("b".into())]);
        removed.record(&[Part::Key("c".into()), Part::Index(1)]);
        assert!(removed.touched("a"));
        assert!(removed.touched("a.b"));
        assert!(!removed.touched("a.b.c"));
        assert!(!removed.touched("b"));
        assert!(!removed.touched("a.bc"));
        assert!(removed.touched("c"));
    }

    #[test]
    fn indices_are_those_of_the_file() {
        let key = |k: &str| Part::Key(k.to_string());
        let mut removed = Removed::default();
        // Items 1 and then (of what is left) 2, i.e. 3 in the file, of `a.list`.
        assert_eq!(
            dotted(&removed.record(&[key("a"), key("list"), Part::Index(1)])),
            "a.list[1]"
        );
        assert_eq!(
            dotted(&removed.record(&[key("a"), key("list"), Part::Index(2)])),
            "a.list[3]"
        );
        // A key inside item 2 of what is left (4 in the file).
        let inner = removed.record(&[key("a"), key("list"), Part::Index(2), key("x")]);
        assert_eq!(dotted(&inner), "a.list[4].x");
        let left: Vec<usize> = (0..3)
            .map(|i| removed.original_index("a.list", i))
            .collect();
        assert_eq!(left, [0, 2, 4]);
        assert_eq!(removed.original_index("other", 5), 5);
    }
}
