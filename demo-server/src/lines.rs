//! Reading request lines of bounded length from a byte stream.

use std::io::{self, BufRead, BufReader, Read};

/// One line read by [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line's bytes, without the newline.
    Text(&'a [u8]),
    /// A line longer than the limit; it was skipped up to its newline.
    TooLong,
}

/// Reads newline-terminated lines, at most `limit` bytes each, without ever
/// buffering more than that: a longer line is reported as [`Line::TooLong`]
/// once its newline (or the end of the stream) arrives.
pub struct LineReader<R> {
    inner: BufReader<R>,
    limit: usize,
    line: Vec<u8>,
}

impl<R: Read> LineReader<R> {
    /// A reader of lines of at most `limit` bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner: BufReader::new(inner),
            limit,
            line: Vec::new(),
        }
    }

    /// The next line, or `None` at the end of the stream. A last line without
    /// a newline is returned as a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut too_long = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(if too_long {
                    Some(Line::TooLong)
                } else if self.line.is_empty() {
                    None
                } else {
                    Some(Line::Text(&self.line))
                });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if self.line.len() + chunk.len() > self.limit {
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = newline.map_or(available.len(), |i| i + 1);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(if too_long {
                    Line::TooLong
                } else {
                    Line::Text(&self.line)
                }));
            }
        }
    }

    /// Whether bytes already read from the stream are waiting (more requests
    /// were pipelined), so a reply need not be flushed yet.
    pub fn has_buffered(&self) -> bool {
        !self.inner.buffer().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, LineReader};

    #[test]
    fn splits_lines_and_skips_long_ones() {
        let input = b"a\nbbbbbbbbbb\ncc\nlast".as_slice();
        let mut r = LineReader::new(input, 4);
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"a")));
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong));
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"cc")));
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"last")));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn a_long_line_at_the_end_is_reported() {
        let mut r = LineReader::new(b"\n0123456789".as_slice(), 4);
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"")));
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong));
        assert_eq!(r.next_line().unwrap(), None);
    }
}
