//! Answers one request line: decode, parse, run the handler, format the reply.

use crate::handlers::{add_score, div, sum};
use crate::protocol::Request;
use crate::role;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The reply to one request line (without its newline, which the caller adds).
/// Never panics: a panic in a handler becomes `ERR <panic message>`.
pub fn respond(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return "ERR request is not valid UTF-8".to_owned();
    };
    let request = match Request::parse(text) {
        Ok(r) => r,
        Err(reason) => return err(&reason),
    };
    match catch_unwind(AssertUnwindSafe(|| execute(request))) {
        Ok(Ok(reply)) => one_line(reply),
        Ok(Err(reason)) => err(&reason),
        Err(payload) => err(&hotfix_core::panic_message(&*payload)),
    }
}

/// Runs a parsed request: the reply text, or the reason for an `ERR`.
fn execute(request: Request) -> Result<String, String> {
    match request {
        Request::Sum(a, b) => sum(a, b)
            .map(|v| v.to_string())
            .ok_or_else(|| "overflow: the sum does not fit in 64 bits".to_owned()),
        Request::Score(name, n) => add_score(&name, n)
            .map(|v| v.to_string())
            .ok_or_else(|| "overflow: the score does not fit in 64 bits".to_owned()),
        Request::Div(a, b) => div(a, b)
            .map(|v| v.to_string())
            .ok_or_else(|| "overflow: the quotient does not fit in 64 bits".to_owned()),
        Request::Class => role::class_name().map_err(|e| e.to_string()),
        Request::Patches => Ok(hotfix_core::status().to_string()),
    }
}

/// An `ERR` reply.
fn err(reason: &str) -> String {
    one_line(format!("ERR {reason}"))
}

/// Keeps a reply on one line: line breaks become spaces.
fn one_line(mut reply: String) -> String {
    if reply.contains(['\n', '\r']) {
        reply = reply.replace(['\n', '\r'], " ");
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::respond;

    #[test]
    fn replies_and_errors() {
        assert_eq!(respond(b"SUM 1 2"), "-1");
        assert_eq!(respond(b"SUM 1 2\r"), "-1");
        assert_eq!(respond(b"DIV 7 2"), "3");
        assert_eq!(respond(b"DIV 1 0"), "ERR attempt to divide by zero");
        assert!(respond(&format!("DIV {} -1", i64::MIN).into_bytes()).starts_with("ERR"));
        assert!(respond(&format!("SUM {} 1", i64::MIN).into_bytes()).starts_with("ERR"));
        assert!(respond(b"SUM \xff 1").starts_with("ERR"));
        assert!(respond(b"HELLO").starts_with("ERR"));
        assert_eq!(respond(b"CLASS"), "Role");
        assert_eq!(respond(b"PATCHES"), "none");
    }

    #[test]
    fn score_accumulates_and_refuses_overflow() {
        assert_eq!(respond(b"SCORE unit-test-player 5"), "10");
        assert_eq!(respond(b"SCORE unit-test-player 1"), "12");
        let big = format!("SCORE unit-test-player {}", i64::MAX);
        assert!(respond(big.as_bytes()).starts_with("ERR"));
        assert_eq!(respond(b"SCORE unit-test-player 0"), "12");
    }
}
