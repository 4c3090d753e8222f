//! The serial console's line discipline, as a pure state machine over bytes.
//!
//! The tty runs raw (no kernel echo or editing), so the rig does what a terminal user
//! expects itself: echo, backspace/DEL (one character, UTF-8 aware), CR, LF or CRLF end a
//! line, Ctrl-C drops the line, Ctrl-U erases it, escape sequences (arrow keys) are ignored.
//! A line over [`CONSOLE_LINE`] bytes stops being stored or echoed and is reported as too
//! long when it ends, so memory stays at one line whatever arrives.

use compushare_protocol::limits::CONSOLE_LINE;

/// What a byte completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A whole line, without its ending.
    Line(Vec<u8>),
    /// A line of `len` bytes (more than [`CONSOLE_LINE`]) ended; its bytes were dropped.
    TooLong { len: usize },
    /// Ctrl-C: the line was dropped.
    Interrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [` or `ESC O`, until a final byte.
    Sequence,
}

/// One line being typed.
#[derive(Debug)]
pub struct LineEditor {
    buf: Vec<u8>,
    /// Bytes typed beyond [`CONSOLE_LINE`] (not stored).
    over: usize,
    /// The last byte ended a line with CR: a following LF is the same line end.
    after_cr: bool,
    esc: Esc,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub fn new() -> Self {
        LineEditor {
            buf: Vec::with_capacity(CONSOLE_LINE),
            over: 0,
            after_cr: false,
            esc: Esc::None,
        }
    }

    /// Takes one byte; appends what to echo to `echo` and returns what the byte completed.
    pub fn feed(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<Input> {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' || b == b'O' {
                    Esc::Sequence
                } else {
                    Esc::None
                };
                return None;
            }
            Esc::Sequence => {
                if (0x40..=0x7e).contains(&b) {
                    self.esc = Esc::None;
                }
                return None;
            }
            Esc::None => {}
        }
        match b {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                echo.extend_from_slice(b"\r\n");
                let over = std::mem::take(&mut self.over);
                if over > 0 {
                    let len = self.buf.len() + over;
                    self.buf.clear();
                    Some(Input::TooLong { len })
                } else {
                    let line = std::mem::replace(&mut self.buf, Vec::with_capacity(CONSOLE_LINE));
                    Some(Input::Line(line))
                }
            }
            0x08 | 0x7f => {
                if self.over > 0 {
                    self.over -= 1;
                } else if !self.buf.is_empty() {
                    // Drop a whole UTF-8 character: continuation bytes, then its lead byte.
                    while let Some(last) = self.buf.pop() {
                        if last & 0xc0 != 0x80 {
                            break;
                        }
                    }
                    echo.extend_from_slice(b"\x08 \x08");
                }
                None
            }
            0x03 => {
                self.buf.clear();
                self.over = 0;
                echo.extend_from_slice(b"^C\r\n");
                Some(Input::Interrupt)
            }
            0x15 => {
                let chars = self.buf.iter().filter(|&&c| c & 0xc0 != 0x80).count();
                for _ in 0..chars {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                self.buf.clear();
                self.over = 0;
                None
            }
            0x1b => {
                self.esc = Esc::Start;
                None
            }
            b'\t' => self.push(b' ', echo),
            0x00..=0x1f => None,
            _ => self.push(b, echo),
        }
    }

    fn push(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<Input> {
        if self.over > 0 || self.buf.len() >= CONSOLE_LINE {
            self.over += 1;
        } else {
            self.buf.push(b);
            echo.push(b);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(e: &mut LineEditor, bytes: &[u8]) -> (Vec<Input>, Vec<u8>) {
        let mut echo = Vec::new();
        let out = bytes.iter().filter_map(|&b| e.feed(b, &mut echo)).collect();
        (out, echo)
    }

    #[test]
    fn line_endings_and_editing() {
        let mut e = LineEditor::new();
        let (out, echo) = feed_all(&mut e, b"statuz\x7fs\r\nhelp\nx\ry\x1b[Az\r");
        assert_eq!(
            out,
            [
                Input::Line(b"status".to_vec()),
                Input::Line(b"help".to_vec()),
                Input::Line(b"x".to_vec()),
                Input::Line(b"yz".to_vec()),
            ]
        );
        assert!(echo.starts_with(b"statuz\x08 \x08s\r\nhelp\r\n"));
        let (out, _) = feed_all(&mut e, "d\u{e9}\x08v\x03ok\x15no\n".as_bytes());
        assert_eq!(out, [Input::Interrupt, Input::Line(b"no".to_vec())]);
        let (out, _) = feed_all(&mut e, "é\x08\n".as_bytes());
        assert_eq!(out, [Input::Line(Vec::new())]);
    }

    #[test]
    fn long_lines_are_counted_not_stored() {
        let mut e = LineEditor::new();
        let mut long = vec![b'a'; 300];
        long.push(b'\r');
        let (out, echo) = feed_all(&mut e, &long);
        assert_eq!(out, [Input::TooLong { len: 300 }]);
        assert_eq!(echo.len(), CONSOLE_LINE + 2);
        assert!(e.buf.capacity() <= CONSOLE_LINE);
        let (out, _) = feed_all(&mut e, b"help\r");
        assert_eq!(out, [Input::Line(b"help".to_vec())]);
    }
}
