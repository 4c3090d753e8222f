//! The operator console: one line shell behind every door (serial port, network, and lines
//! the manager relays as `ConsoleCommand`).
//!
//! [`answer`] is the whole shell: it parses a line ([`parse`]), answers read-only commands
//! from the status snapshot it is given ([`render`]) and sends changes to the rig core over
//! the [`CommandTx`]. The doors ([`serial`], [`net`]) only move lines and replies; they
//! share this function, so every door accepts and refuses the same things.
//!
//! Bounds: a line over the protocol's `CONSOLE_LINE` (256) bytes is refused; a reply is at
//! most [`CONSOLE_REPLY`] bytes, cut with [`CUT_MARKER`] when longer.

pub mod line;
pub mod net;
pub mod parse;
pub mod render;
pub mod serial;
mod sys;

use compushare_protocol::limits::CONSOLE_REPLY;
use compushare_protocol::msg::ConsoleReply;

use crate::command::{Command, CommandTx};
use crate::status::RigStatus;
pub use parse::{parse, ParseError, Request};

/// Ends a reply that was cut to [`CONSOLE_REPLY`] bytes.
pub const CUT_MARKER: &str = "\n[... reply cut at 8 KiB]";

/// What the console says back to one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Whether the line was a valid command that succeeded.
    pub ok: bool,
    /// The text for the operator, at most [`CONSOLE_REPLY`] bytes (empty for a blank line).
    pub text: String,
}

impl Reply {
    fn ok(text: String) -> Self {
        Reply {
            ok: true,
            text: fit(text),
        }
    }

    fn err(text: String) -> Self {
        Reply {
            ok: false,
            text: fit(format!("error: {text}")),
        }
    }

    /// The reply as the protocol's `ConsoleReply` (what a relayed `ConsoleCommand` is
    /// answered with).
    pub fn to_wire(&self, request: u32) -> ConsoleReply {
        ConsoleReply {
            request,
            ok: self.ok,
            // `text` already fits CONSOLE_REPLY: nothing is cut.
            text: compushare_protocol::types::bounded(&self.text),
        }
    }
}

/// Cuts `text` to [`CONSOLE_REPLY`] bytes at a character boundary, ending with
/// [`CUT_MARKER`] when anything was cut.
pub fn fit(mut text: String) -> String {
    if text.len() <= CONSOLE_REPLY {
        return text;
    }
    let mut end = CONSOLE_REPLY - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT_MARKER);
    text
}

/// Answers one console line: the shell behind every door.
///
/// `line` is the line without its ending (any bytes: a line over `CONSOLE_LINE` bytes, or one
/// that is not UTF-8, is refused with a message saying so). Read-only commands are
/// answered from `status`; changes go to the rig core through `commands` and its answer is
/// returned. The caller takes `status` from the watch channel (`rx.borrow().clone()`) and
/// must not be the task that serves the command channel, which would wait on itself.
pub async fn answer(line: &[u8], status: &RigStatus, commands: &CommandTx) -> Reply {
    let request = match parse(line) {
        Ok(r) => r,
        Err(e) => return Reply::err(e.to_string()),
    };
    let change = match request {
        Request::Nothing => return Reply::ok(String::new()),
        Request::Status => return Reply::ok(render::status(status)),
        Request::Devices => return Reply::ok(render::devices(status)),
        Request::Pools => return Reply::ok(render::pools(status)),
        Request::Manager => return Reply::ok(render::manager(status)),
        Request::Vault => return Reply::ok(render::vault(status)),
        Request::Help => return Reply::ok(parse::HELP.to_owned()),
        Request::Log { lines } => {
            let lines = crate::log::recent(lines);
            if lines.is_empty() {
                return Reply::ok("(log is empty)".into());
            }
            // Newest lines matter most: when they do not all fit, the oldest go.
            const CUT_OLDER: &str = "[... older lines cut]\n";
            let budget = CONSOLE_REPLY - CUT_OLDER.len();
            let mut kept: Vec<&str> = Vec::new();
            let mut size = 0usize;
            for l in lines.iter().rev() {
                if size + l.len() + 1 > budget {
                    break;
                }
                size += l.len() + 1;
                kept.push(l);
            }
            kept.reverse();
            let mut text = String::new();
            if kept.len() < lines.len() {
                text.push_str(CUT_OLDER);
            }
            text.push_str(&kept.join("\n"));
            return Reply::ok(text);
        }
        Request::Role { device, role } => Command::Role { device, role },
        Request::PoolAdd { url, user, pass } => Command::PoolAdd {
            number: None,
            url,
            user,
            pass,
        },
        Request::PoolRemove { number } => Command::PoolRemove { number },
        Request::Reboot => Command::Reboot,
        #[allow(unreachable_patterns)]
        _ => return Reply::err("command not supported by this console".into()),
    };
    match commands.call(change).await {
        Ok(text) => Reply::ok(text),
        Err(e) => Reply::err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_with_a_marker_at_a_char_boundary() {
        let short = fit("abc".into());
        assert_eq!(short, "abc");
        let long = fit("é".repeat(CONSOLE_REPLY));
        assert!(long.len() <= CONSOLE_REPLY, "{}", long.len());
        assert!(long.ends_with(CUT_MARKER));
        let exact = fit("x".repeat(CONSOLE_REPLY));
        assert_eq!(exact.len(), CONSOLE_REPLY);
        assert!(!exact.ends_with(CUT_MARKER));
    }

    #[test]
    fn a_reply_always_fits_the_wire() {
        let r = Reply::ok("ü".repeat(10_000));
        let w = r.to_wire(7);
        assert_eq!(w.text.as_str(), r.text);
        assert_eq!(w.request, 7);
    }
}
