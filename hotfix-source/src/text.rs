//! Small text helpers: bounded file reads and token text without the spaces
//! `to_string` puts between tokens.

use std::io::Read;
use std::path::Path;

/// The text of `path` if it is at most `max` bytes of UTF-8.
pub fn read_bounded(path: &Path, max: u64) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    f.take(max + 1).read_to_string(&mut text).ok()?;
    (text.len() as u64 <= max).then_some(text)
}

/// Removes the spaces `to_string` puts between tokens, for stable, readable text.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let s = s.replace('\n', " ");
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let tight =
                |ch: char| matches!(ch, '(' | ')' | '<' | '>' | '&' | ',' | ':' | '[' | ']');
            if (tight(prev) && prev != ',') || (tight(next) && next != '&') {
                continue;
            }
        }
        out.push(c);
    }
    out
}
