//! Arbitrary bytes at every operator door: the console line parser, the serial line
//! editor, the console shell and the cgminer API request parser never panic, stay within
//! their bounds, and every refusal names what was wrong.

mod ops_common;

use compushare_controller::api::{self, request};
use compushare_controller::console::line::{Input, LineEditor};
use compushare_controller::console::{self, parse, ParseError};
use compushare_controller::ops::OpsStats;
use compushare_protocol::limits::{CONSOLE_LINE, CONSOLE_REPLY};
use proptest::collection::vec;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Lines built from the console's own words and stray tokens, to reach every branch.
fn console_line() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just("status".to_string()),
        Just("role".into()),
        Just("all".into()),
        Just("mine".into()),
        Just("pool".into()),
        Just("add".into()),
        Just("remove".into()),
        Just("log".into()),
        Just("help".into()),
        Just("reboot".into()),
        "[0-9]{1,4}",
        "[a-zA-Z+:/.]{0,12}",
        "\\PC{0,6}",
    ];
    prop_oneof![
        vec(any::<u8>(), 0..400),
        vec(word, 0..6).prop_map(|w| w.join(" ").into_bytes()),
    ]
}

/// Checks that a refusal's message names what was wrong.
fn names_the_problem(line: &[u8], e: &ParseError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(!msg.is_empty());
    match e {
        ParseError::TooLong { len } => {
            prop_assert_eq!(*len, line.len());
            prop_assert!(msg.contains(&len.to_string()) && msg.contains("256"));
        }
        ParseError::NotUtf8 { at } | ParseError::ControlCharacter { at } => {
            let want = format!("offset {at}");
            prop_assert!(msg.contains(&want));
        }
        ParseError::UnknownCommand(w)
        | ParseError::UnknownPoolAction(w)
        | ParseError::BadDevice(w)
        | ParseError::BadRole(w)
        | ParseError::BadNumber { got: w, .. }
        | ParseError::Extra { arg: w, .. } => {
            // The offending word is quoted (cut to 40 characters).
            let shown: String = w.chars().take(40).collect();
            let quoted = format!("{shown:?}");
            let inner = &quoted[..quoted.len() - 1];
            prop_assert!(msg.contains(inner), "{msg} lacks {inner}");
            prop_assert!(line.windows(w.len().max(1)).any(|x| x == w.as_bytes()) || w.is_empty());
        }
        ParseError::Missing { command, what } => {
            prop_assert!(msg.contains(command) && msg.contains(what));
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn console_parser_takes_any_line(line in console_line()) {
        match parse(&line) {
            Ok(_) => prop_assert!(line.len() <= CONSOLE_LINE),
            Err(e) => names_the_problem(&line, &e)?,
        }
    }

    #[test]
    fn serial_line_editor_takes_any_bytes(bytes in vec(any::<u8>(), 0..2000)) {
        let mut ed = LineEditor::new();
        let mut echo = Vec::new();
        for b in bytes {
            echo.clear();
            match ed.feed(b, &mut echo) {
                Some(Input::Line(l)) => prop_assert!(l.len() <= CONSOLE_LINE),
                Some(Input::TooLong { len }) => prop_assert!(len > CONSOLE_LINE),
                _ => {}
            }
            prop_assert!(echo.len() <= 6 * CONSOLE_LINE);
        }
    }

    #[test]
    fn api_request_parser_takes_any_bytes(bytes in prop_oneof![
        vec(any::<u8>(), 0..600),
        "\\{\"command\":\"[a-z+]{0,30}\"(,\"parameter\":[0-9\"a-z]{0,5})?\\}?".prop_map(String::into_bytes),
        "[a-z+|,0-9]{0,40}".prop_map(String::into_bytes),
    ]) {
        match request::parse(&bytes) {
            Ok(r) => {
                prop_assert!(!r.commands.is_empty() || r.joined);
                prop_assert!(r.commands.len() <= request::MAX_JOINED);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let status = ops_common::sample_status();
        let reply = api::respond(&bytes, &status, &OpsStats::default());
        prop_assert_eq!(reply.iter().filter(|&&b| b == 0).count(), 1);
        prop_assert_eq!(reply.last(), Some(&0));
        if request::wants_json(&bytes) {
            let body = &reply[..reply.len() - 1];
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(body))))?;
            prop_assert_eq!(&v["id"], 1);
        } else {
            prop_assert!(std::str::from_utf8(&reply).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// The whole shell: any line gets a reply that fits the protocol's console reply.
    #[test]
    fn console_shell_answers_any_line(line in console_line()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let core = ops_common::RigCoreDouble::start();
            let status = ops_common::sample_status();
            let r = console::answer(&line, &status, &core.tx).await;
            prop_assert!(r.text.len() <= CONSOLE_REPLY);
            if !r.ok {
                prop_assert!(r.text.starts_with("error: ") && r.text.len() > 7);
            }
            Ok(())
        })?;
    }
}
