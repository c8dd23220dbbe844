//! Tokens printed the way a person writes them, for messages.

use proc_macro2::TokenStream;

/// The atoms of a token stream: `->`, `::`, `'a`, brackets, words.
fn atoms(tokens: TokenStream, out: &mut Vec<String>) {
    use proc_macro2::{Delimiter, Spacing, TokenTree};
    let mut joint = String::new();
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                if !open.is_empty() {
                    out.push(open.to_owned());
                }
                atoms(g.stream(), out);
                if !close.is_empty() {
                    out.push(close.to_owned());
                }
            }
            TokenTree::Punct(p) => {
                joint.push(p.as_char());
                if p.spacing() == Spacing::Alone && p.as_char() != '\'' {
                    split_ops(&std::mem::take(&mut joint), out);
                }
            }
            TokenTree::Ident(i) => {
                let before = std::mem::take(&mut joint);
                match before.strip_suffix('\'') {
                    // A lifetime: `'` joint with its name.
                    Some(rest) => {
                        split_ops(rest, out);
                        out.push(format!("'{i}"));
                    }
                    None => {
                        split_ops(&before, out);
                        out.push(i.to_string());
                    }
                }
            }
            TokenTree::Literal(l) => out.push(l.to_string()),
        }
    }
    if !joint.is_empty() {
        split_ops(&joint, out);
    }
}

/// Splits joint punctuation (`->::`) into its operators (`->`, `::`).
fn split_ops(mut joint: &str, out: &mut Vec<String>) {
    const OPS: [&str; 6] = ["::", "->", "=>", "==", "!=", ".."];
    while !joint.is_empty() {
        let n = OPS.iter().find(|op| joint.starts_with(*op)).map_or_else(
            || joint.chars().next().map_or(1, char::len_utf8),
            |op| op.len(),
        );
        out.push(joint[..n].to_owned());
        joint = &joint[n..];
    }
}

/// Tokens as a person writes them (`fn sum(a: i32) -> i32`), for messages.
pub fn pretty(tokens: &TokenStream) -> String {
    let mut list = Vec::new();
    atoms(tokens.clone(), &mut list);
    let mut out = String::new();
    let mut prev = String::new();
    for tok in list {
        let p = prev.as_str();
        let t = tok.as_str();
        let keyword = matches!(p, "dyn" | "impl" | "mut" | "as" | "for" | "fn" | "unsafe");
        let path_sep_after_word = t == "::"
            && !keyword
            && p != "->"
            && p.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '>');
        let glue = matches!(p, "" | "(" | "<" | "&" | "::" | "[" | "#" | "!")
            || matches!(t, "," | ")" | ">" | "]" | ":" | ";")
            || path_sep_after_word
            || (t == "(" && !matches!(p, "->" | "=" | "," | "+"))
            || (t == "<" && !matches!(p, "=" | "->" | "+"));
        if !glue {
            out.push(' ');
        }
        out.push_str(t);
        prev = tok;
    }
    // The paths generated code spells in full, as a person writes them.
    for prefix in [
        ":: core :: pin ::",
        ":: std :: boxed ::",
        ":: core :: future ::",
        ":: core :: marker ::",
    ] {
        out = out.replace(&prefix.replace(' ', ""), "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    fn pretty_of(text: &str) -> String {
        pretty(&text.parse().expect("tokens"))
    }

    #[test]
    fn prints_as_written() {
        assert_eq!(
            pretty_of("fn sum ( a : i32 , b : & 'a mut Vec < u8 > ) -> i32"),
            "fn sum(a: i32, b: &'a mut Vec<u8>) -> i32"
        );
        assert_eq!(
            pretty_of(
                "for<'a> fn(&'a str) -> ::core::pin::Pin<::std::boxed::Box<dyn \
                 ::core::future::Future<Output = u64> + ::core::marker::Send + 'a>>"
            ),
            "for<'a> fn(&'a str) -> Pin<Box<dyn Future<Output = u64> + Send + 'a>>"
        );
        assert_eq!(
            pretty_of("<my::Player as my::Describe>::describe"),
            "<my::Player as my::Describe>::describe"
        );
    }
}
