//! cgminer's reply shapes: the STATUS envelope, report sections, `+` joined replies, in
//! JSON and in cgminer's text form.
//!
//! Numbers are printed with cgminer's fixed precisions (`MHS` two decimals, difficulties
//! eight, percentages four, elapsed none) so that parsers written against cgminer read the
//! same text. Strings are escaped as each form needs: JSON fully (control characters too,
//! which cgminer leaves raw), text with a backslash before `|`, `,`, `=` and `\`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One value of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    Uint(u64),
    /// A float printed with this many decimals (non-finite values print as 0).
    Fixed(f64, usize),
    Bool(bool),
}

/// One record: named values in cgminer's order.
pub type Record = Vec<(Cow<'static, str>, Val)>;

/// Severity letter of a STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Success,
    Info,
    Warning,
    Error,
}

impl Severity {
    fn letter(self) -> &'static str {
        match self {
            Severity::Success => "S",
            Severity::Info => "I",
            Severity::Warning => "W",
            Severity::Error => "E",
        }
    }
}

/// The STATUS record that opens every reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub severity: Severity,
    /// cgminer's message code (api.c's `MSG_*`).
    pub code: i64,
    pub msg: String,
}

/// The reply to one command: its status and its report section, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub status: Status,
    /// Section name (`SUMMARY`, `DEVS`, ...); `None`: a status-only reply.
    pub name: Option<&'static str>,
    /// Text form only: the section name precedes its single record (`SUMMARY,Elapsed=..|`)
    /// instead of each record standing alone (`POOL=0,URL=..|`).
    pub text_header: bool,
    pub records: Vec<Record>,
}

/// What every STATUS carries besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Unix time of the request.
    pub when: u64,
    /// The `Description` (cgminer's version string, here the firmware's).
    pub description: &'a str,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn text_str(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '|' | ',' | '=' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn number(out: &mut String, v: &Val) {
    let _ = match v {
        Val::Int(i) => write!(out, "{i}"),
        Val::Uint(u) => write!(out, "{u}"),
        Val::Fixed(f, p) => {
            let f = if f.is_finite() { *f } else { 0.0 };
            write!(out, "{f:.p$}", p = *p)
        }
        Val::Bool(b) => write!(out, "{b}"),
        Val::Str(_) => Ok(()),
    };
}

fn json_record(out: &mut String, rec: &Record) {
    out.push('{');
    for (i, (k, v)) in rec.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        match v {
            Val::Str(s) => json_str(out, s),
            v => number(out, v),
        }
    }
    out.push('}');
}

fn text_fields(out: &mut String, rec: &Record) {
    for (i, (k, v)) in rec.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        match v {
            Val::Str(s) => text_str(out, s),
            v => number(out, v),
        }
    }
}

fn status_record(status: &Status, env: Envelope<'_>) -> Record {
    let mut r: Record = vec![
        ("STATUS".into(), Val::Str(status.severity.letter().into())),
        ("When".into(), Val::Uint(env.when)),
        ("Code".into(), Val::Int(status.code)),
        ("Msg".into(), Val::Str(status.msg.clone())),
    ];
    // cgminer leaves the description out of "Invalid command", so that probes of an open
    // port learn nothing about the miner.
    if status.code != super::MSG_INVCMD {
        r.push(("Description".into(), Val::Str(env.description.into())));
    }
    r
}

/// One command's reply as a JSON object (`{"STATUS":[..],"SUMMARY":[..],"id":1}`).
pub fn json_section(out: &mut String, s: &Section, env: Envelope<'_>) {
    out.push_str("{\"STATUS\":[");
    json_record(out, &status_record(&s.status, env));
    out.push(']');
    if let Some(name) = s.name {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":[");
        for (i, r) in s.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_record(out, r);
        }
        out.push(']');
    }
    out.push_str(",\"id\":1}");
}

/// One command's reply in cgminer's text form (`STATUS=S,...|SUMMARY,Elapsed=...|`).
pub fn text_section(out: &mut String, s: &Section, env: Envelope<'_>) {
    text_fields(out, &status_record(&s.status, env));
    out.push('|');
    if let Some(name) = s.name {
        for r in &s.records {
            if s.text_header {
                out.push_str(name);
                out.push(',');
            }
            text_fields(out, r);
            out.push('|');
        }
    }
}

/// A whole reply: one section, or for a joined request one per command
/// (`{"summary":[{..}],"devs":[{..}],"id":1}` / `CMD=summary|...|CMD=devs|...`).
pub fn reply(
    json: bool,
    joined: bool,
    sections: &[(String, Section)],
    env: Envelope<'_>,
) -> String {
    let mut out = String::with_capacity(4096);
    if !joined {
        if let Some((_, s)) = sections.first() {
            if json {
                json_section(&mut out, s, env);
            } else {
                text_section(&mut out, s, env);
            }
        }
        return out;
    }
    if json {
        out.push('{');
        for (i, (cmd, s)) in sections.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, cmd);
            out.push_str(":[");
            json_section(&mut out, s, env);
            out.push(']');
        }
        if !sections.is_empty() {
            out.push(',');
        }
        out.push_str("\"id\":1}");
    } else {
        for (cmd, s) in sections {
            out.push_str("CMD=");
            text_str(&mut out, cmd);
            out.push('|');
            text_section(&mut out, s, env);
        }
    }
    out
}
