//! The request grammar: one request per line, words separated by spaces.
//!
//! ```text
//! SUM a b      SCORE name n      DIV a b      CLASS      PATCHES
//! ```

/// Longest player name accepted by `SCORE`, in bytes.
pub const MAX_NAME: usize = 64;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `SUM a b`.
    Sum(i64, i64),
    /// `SCORE name n`.
    Score(String, i64),
    /// `DIV a b`.
    Div(i64, i64),
    /// `CLASS`.
    Class,
    /// `PATCHES`.
    Patches,
}

impl Request {
    /// Parses one line (without its newline). The error says what is wrong.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some((command, args)) = words.split_first() else {
            return Err("empty request".to_owned());
        };
        let upper = command.to_ascii_uppercase();
        match upper.as_str() {
            "SUM" => {
                let [a, b] = arity(args, "SUM a b")?;
                Ok(Request::Sum(number(a)?, number(b)?))
            }
            "DIV" => {
                let [a, b] = arity(args, "DIV a b")?;
                Ok(Request::Div(number(a)?, number(b)?))
            }
            "SCORE" => {
                let [name, n] = arity(args, "SCORE name n")?;
                if name.len() > MAX_NAME {
                    return Err(format!("player name longer than {MAX_NAME} bytes"));
                }
                Ok(Request::Score((*name).to_owned(), number(n)?))
            }
            "CLASS" => {
                let [] = arity(args, "CLASS")?;
                Ok(Request::Class)
            }
            "PATCHES" => {
                let [] = arity(args, "PATCHES")?;
                Ok(Request::Patches)
            }
            _ => Err(format!(
                "unknown command {}; expected SUM, SCORE, DIV, CLASS or PATCHES",
                shorten(command)
            )),
        }
    }
}

/// The arguments as an array of exactly `N`, or a usage error.
fn arity<'a, const N: usize>(args: &[&'a str], usage: &str) -> Result<[&'a str; N], String> {
    <[&str; N]>::try_from(args).map_err(|_| {
        format!(
            "wrong number of arguments: got {}, usage: {usage}",
            args.len()
        )
    })
}

/// A signed 64-bit integer, or an error naming the word.
fn number(word: &str) -> Result<i64, String> {
    word.parse::<i64>()
        .map_err(|e| format!("{} is not a 64-bit integer: {e}", shorten(word)))
}

/// A word quoted for an error message, cut to a readable length.
fn shorten(word: &str) -> String {
    const MAX: usize = 32;
    match word.char_indices().nth(MAX) {
        Some((i, _)) => format!("`{}...`", &word[..i]),
        None => format!("`{word}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn parses_every_command() {
        assert_eq!(Request::parse("SUM 1 -2"), Ok(Request::Sum(1, -2)));
        assert_eq!(Request::parse("  sum  1 2 "), Ok(Request::Sum(1, 2)));
        assert_eq!(
            Request::parse("SCORE bob 5"),
            Ok(Request::Score("bob".into(), 5))
        );
        assert_eq!(Request::parse("DIV 7 2"), Ok(Request::Div(7, 2)));
        assert_eq!(Request::parse("CLASS"), Ok(Request::Class));
        assert_eq!(Request::parse("PATCHES"), Ok(Request::Patches));
    }

    #[test]
    fn refuses_bad_requests() {
        for bad in [
            "",
            "   ",
            "SUM",
            "SUM 1",
            "SUM 1 2 3",
            "SUM a 2",
            "SUM 99999999999999999999 1",
            "CLASS x",
            "NOPE",
            "SCORE bob",
            "SCORE bob x",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("SCORE {} 1", "n".repeat(super::MAX_NAME + 1));
        assert!(Request::parse(&long).is_err());
    }
}
