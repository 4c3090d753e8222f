//! Wire-message parsing: id kinds, error shapes, unknown methods, round trips, the capped
//! line reader, and property tests that random and mutated pool lines never panic the
//! parser or the job builder and never make them allocate without bound.

use compushare_controller::stratum::job::{coinbase_output_value, economics, share_header, Work};
use compushare_controller::stratum::lines::{Line, LineReader};
use compushare_controller::stratum::message::*;
use compushare_controller::stratum::target::ShareTarget;
use proptest::prelude::*;
use serde_json::json;

const NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["674320f700005d59","1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff08044c86041b","ffffffff0100f2052a010000004341041b0e8c2567c12536aa13357b79a073dc4444acb83c4ec7a0e2f99dd7457516c5817242da796924ca4e99947d087fedf9ce467cb9f7c6287078f801df276fdf84ac00000000",["c40297f730dd7b5a99567eb8d27b78758f607507c52292d02d4031895b52f2ff","49aef42d78e3e9999c9e6ec9e1dddd6cb880bf3b076a03be1318ca789089308e"],"00000001","1b04864c","4d1b2237",true]}"#;

fn request(line: &str) -> Request {
    match parse_line(line).unwrap() {
        Message::Request(r) => r,
        m => panic!("not a request: {m:?}"),
    }
}

fn response(line: &str) -> Response {
    match parse_line(line).unwrap() {
        Message::Response(r) => r,
        m => panic!("not a response: {m:?}"),
    }
}

#[test]
fn ids_may_be_numbers_strings_or_null() {
    assert_eq!(
        response(r#"{"id":7,"result":true,"error":null}"#).id,
        Id::Num(7)
    );
    assert_eq!(
        response(r#"{"id":"abc","result":true}"#).id,
        Id::Str("abc".into())
    );
    assert_eq!(
        request(r#"{"id":null,"method":"x","params":[]}"#).id,
        Id::Null
    );
    assert_eq!(request(r#"{"method":"x"}"#).id, Id::Null);
    assert_eq!(
        parse_line(r#"{"id":1.5,"result":true}"#),
        Err(MessageError::BadId)
    );
    assert_eq!(
        parse_line(r#"{"id":[1],"result":true}"#),
        Err(MessageError::BadId)
    );
}

#[test]
fn error_shapes() {
    let two = response(r#"{"id":4,"result":null,"error":[23,"Low difficulty share"]}"#);
    assert_eq!(two.error.as_ref().map(|e| e.code), Some(23));
    let three = response(r#"{"id":4,"result":null,"error":[21,"Job not found",null]}"#);
    assert!(three.error.unwrap().is_stale());
    let obj = response(r#"{"id":4,"result":null,"error":{"code":22,"message":"Duplicate"}}"#);
    assert_eq!(obj.error.map(|e| e.code), Some(22));
    let null_id = response(r#"{"id":null,"result":null,"error":[20,"Other",null]}"#);
    assert_eq!(null_id.id, Id::Null);
    assert_eq!(null_id.error.map(|e| e.message), Some("Other".to_string()));
    let text = response(r#"{"id":2,"result":false,"error":"nope"}"#);
    assert_eq!(text.error.map(|e| e.message), Some("nope".to_string()));
    assert_eq!(
        response(r#"{"id":2,"result":true,"error":null}"#).error,
        None
    );
}

#[test]
fn unknown_methods_are_typed_not_fatal() {
    let r = request(r#"{"id":3,"method":"mining.frobnicate","params":[1,2]}"#);
    assert_eq!(
        ServerMessage::from_request(&r),
        Ok(ServerMessage::Unknown("mining.frobnicate".into()))
    );
    let r = request(
        r#"{"id":3,"method":"mining.frobnicate","params":{"a":1}}"#
            .replace("params\":{\"a\":1}", "params\":[]")
            .as_str(),
    );
    assert!(ServerMessage::from_request(&r).is_ok());
    assert!(matches!(
        parse_line(r#"{"id":3,"method":"x","params":{"a":1}}"#),
        Err(MessageError::ParamsNotArray { .. })
    ));
}

#[test]
fn server_messages() {
    let d = |l: &str| ServerMessage::from_request(&request(l));
    assert_eq!(
        d(r#"{"id":null,"method":"mining.set_difficulty","params":[0.001]}"#),
        Ok(ServerMessage::SetDifficulty(0.001))
    );
    assert!(d(r#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#).is_err());
    assert!(d(r#"{"id":null,"method":"mining.set_difficulty","params":["1"]}"#).is_err());
    assert_eq!(
        d(r#"{"id":null,"method":"mining.set_extranonce","params":["0a0b",6]}"#),
        Ok(ServerMessage::SetExtranonce {
            extranonce1: vec![10, 11],
            extranonce2_size: 6
        })
    );
    assert!(d(r#"{"id":null,"method":"mining.set_extranonce","params":["0a0b",1000]}"#).is_err());
    assert_eq!(
        d(r#"{"id":null,"method":"client.reconnect","params":["pool.example",3334,5]}"#),
        Ok(ServerMessage::Reconnect(Reconnect {
            host: Some("pool.example".into()),
            port: Some(3334),
            wait_s: 5
        }))
    );
    assert_eq!(
        d(r#"{"id":null,"method":"client.reconnect","params":[]}"#),
        Ok(ServerMessage::Reconnect(Reconnect {
            host: None,
            port: None,
            wait_s: 0
        }))
    );
    assert!(d(r#"{"id":null,"method":"client.reconnect","params":["h","x"]}"#).is_err());
    assert_eq!(
        d(r#"{"id":9,"method":"client.get_version","params":[]}"#),
        Ok(ServerMessage::GetVersion)
    );
    assert_eq!(
        d(r#"{"id":null,"method":"client.show_message","params":["hi"]}"#),
        Ok(ServerMessage::ShowMessage("hi".into()))
    );
    assert_eq!(
        d(r#"{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}"#),
        Ok(ServerMessage::SetVersionMask(0x1fffe000))
    );
}

#[test]
fn notify_round_trip_and_bad_fields() {
    let r = request(NOTIFY);
    let ServerMessage::Notify(n) = ServerMessage::from_request(&r).unwrap() else {
        panic!()
    };
    let again = Notify::from_params(n.to_params().as_array().unwrap()).unwrap();
    assert_eq!(n, again);
    let mut bad = [
        NOTIFY.replace("\"00000001\"", "\"0000001\""), // odd length version
        NOTIFY.replace("\"1b04864c\"", "\"1b04864c00\""), // long nbits
        NOTIFY.replace("1901125004612a", "19011250046z2a"), // bad hex digit
        NOTIFY.replace(
            "\"1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000\"",
            "\"1901\"",
        ), // short prevhash
        NOTIFY.replace(
            "c40297f730dd7b5a99567eb8d27b78758f607507c52292d02d4031895b52f2ff",
            "c40297",
        ), // short branch
        NOTIFY.replace("true]}", "\"yes\"]}"),         // clean_jobs not bool
        NOTIFY.replace(",true]}", "]}"),               // missing clean_jobs
    ];
    for (i, l) in bad.iter_mut().enumerate() {
        let r = request(l);
        assert!(
            ServerMessage::from_request(&r).is_err(),
            "case {i} accepted: {l}"
        );
    }
}

#[test]
fn client_messages_and_results() {
    let s = Submit {
        worker: "w".into(),
        job_id: "bf".into(),
        extranonce2: vec![0, 0, 0, 1],
        ntime: 0x504e86ed,
        nonce: 0xb2957c02,
        version_bits: Some(0x0000_2000),
    };
    assert_eq!(
        s.to_params(),
        json!(["w", "bf", "00000001", "504e86ed", "b2957c02", "00002000"])
    );
    assert_eq!(
        Submit::from_params(s.to_params().as_array().unwrap()),
        Ok(s)
    );
    let sub = SubscribeResult::from_result(&json!([
        [["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]],
        "08000002",
        4
    ]))
    .unwrap();
    assert_eq!(sub.extranonce1, vec![8, 0, 0, 2]);
    assert_eq!(sub.extranonce2_size, 4);
    assert!(SubscribeResult::from_result(&json!([[], "080", 4])).is_err());
    assert!(SubscribeResult::from_result(&json!([[], "08", 400])).is_err());
    assert_eq!(
        configure_result_mask(
            &json!({"version-rolling": true, "version-rolling.mask": "1fffe000"})
        ),
        Ok(Some(0x1fffe000))
    );
    assert_eq!(
        configure_result_mask(&json!({"version-rolling": false})),
        Ok(None)
    );
    let line = request_line(&Id::Num(1), "mining.subscribe", json!(["x"]));
    assert!(line.ends_with('\n'));
    let r = request(line.trim_end());
    assert_eq!(
        ClientMessage::from_request(&r),
        Ok(ClientMessage::Subscribe)
    );
    let r = request(
        request_line(
            &Id::Num(2),
            "mining.configure",
            configure_params(0x1fffe000),
        )
        .trim_end(),
    );
    assert_eq!(
        ClientMessage::from_request(&r),
        Ok(ClientMessage::Configure {
            extensions: vec!["version-rolling".into()],
            version_mask: Some(0x1fffe000)
        })
    );
}

#[test]
fn too_long_lines_are_rejected() {
    let huge = format!("{{\"id\":1,\"result\":\"{}\"}}", "a".repeat(MAX_LINE_BYTES));
    assert!(matches!(
        parse_line(&huge),
        Err(MessageError::LineTooLong(_))
    ));
    let deep = "[".repeat(100_000);
    assert!(matches!(parse_line(&deep), Err(MessageError::Json(_))));
}

async fn read_all(input: Vec<u8>, max: usize) -> Vec<Line> {
    let mut r = LineReader::new(tokio::io::BufReader::with_capacity(64, &input[..]), max);
    let mut out = Vec::new();
    loop {
        let l = r.next_line().await.unwrap();
        if l == Line::Eof {
            return out;
        }
        out.push(l);
    }
}

#[tokio::test]
async fn line_reader_skips_long_lines_and_keeps_going() {
    let mut input = b"first\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10_000));
    input.extend(b"\n\nsecond\n\xff\xfe\nthird");
    let lines = read_all(input, 1000).await;
    assert_eq!(
        lines,
        vec![
            Line::Text("first".into()),
            Line::TooLong(10_000),
            Line::Text("second".into()),
            Line::NotUtf8,
        ]
    );
}

fn exercise(line: &str) {
    // Whatever the line, parsing and typing it must return, not panic.
    if let Ok(Message::Request(r)) = parse_line(line) {
        if let Ok(ServerMessage::Notify(n)) = ServerMessage::from_request(&r) {
            let _ = share_header(&n, &[1, 2, 3, 4], &[0; 4], n.ntime, n.version, 0);
            let _ = economics(&n, &[1, 2, 3, 4], 4);
            let work = Work {
                pool: 0,
                session: 1,
                notify: std::sync::Arc::new(n),
                extranonce1: vec![1],
                extranonce2_size: 2,
                difficulty: 1.0,
                target: ShareTarget::from_difficulty(1.0).unwrap(),
                version_mask: Some(0x1fffe000),
                received: std::time::Instant::now(),
            };
            let range = work.slot_range(1, 3);
            let _ = work.unit(&range, 12345, 20);
        }
        let _ = ClientMessage::from_request(&r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_lines_never_panic(s in "\\PC{0,400}") {
        exercise(&s);
    }

    #[test]
    fn json_shaped_random_lines_never_panic(
        id in prop_oneof![Just("null".to_string()), any::<i64>().prop_map(|n| n.to_string()), "\"[a-z0-9]{0,8}\""],
        method in prop_oneof![
            Just("mining.notify"), Just("mining.set_difficulty"), Just("mining.set_extranonce"),
            Just("client.reconnect"), Just("mining.set_version_mask"), Just("mining.submit"),
            Just("mining.configure"), Just("mining.authorize"), Just("client.show_message")],
        params in prop::collection::vec(prop_oneof![
            "[0-9a-f]{0,80}".prop_map(|s| format!("\"{s}\"")),
            any::<f64>().prop_map(|f| if f.is_finite() { f.to_string() } else { "1".into() }),
            any::<bool>().prop_map(|b| b.to_string()),
            Just("null".to_string()),
            prop::collection::vec("[0-9a-f]{62,66}", 0..4).prop_map(|v| format!("{:?}", v)),
        ], 0..11),
    ) {
        let line = format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":[{}]}}", params.join(","));
        exercise(&line);
    }

    #[test]
    fn mutated_notify_never_panics(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)) {
        let mut b = NOTIFY.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match kind {
                0 => b[i] = byte,
                1 => { b.remove(i); }
                _ => b.insert(i, byte),
            }
        }
        exercise(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn random_coinbases_never_panic(tx in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = coinbase_output_value(&tx);
    }

    #[test]
    fn higher_difficulty_never_raises_the_target(d in 1e-12f64..1e15) {
        let ours = ShareTarget::from_difficulty(d).unwrap();
        let bigger = ShareTarget::from_difficulty(d * 2.0).unwrap();
        prop_assert!(bigger.to_be_bytes() <= ours.to_be_bytes());
    }

    #[test]
    fn nbits_never_panic(n in any::<u32>()) {
        if let Ok(t) = ShareTarget::from_nbits(n) { let _ = t.difficulty(); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn line_reader_bounds_random_input(input in prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..4000), max in 1usize..200) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let lines = rt.block_on(read_all(input.clone(), max));
        for l in &lines {
            if let Line::Text(t) = l { prop_assert!(t.len() <= max); }
        }
        prop_assert!(lines.len() <= input.iter().filter(|b| **b == b'\n').count() + 1);
    }
}
