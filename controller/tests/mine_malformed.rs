//! Malformed pool messages on a live connection: bad hex, wrong lengths, huge lines,
//! invalid JSON, wrong types. Each is counted and skipped; the connection stays up and
//! mining continues on the next good job.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_do_not_drop_the_connection() {
    let pool = pool(settings()).await;
    let engine = engine(vec![pool_config(&pool, "w")], client(), fast_failover());
    wait_for("first shares", LIMIT, || pool.stats().accepted >= 3).await;

    let good = r#"{"id":null,"method":"mining.notify","params":["ff01","1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000","0100","ff00",[],"20000000","1d00ffff","5f000000",true]}"#;
    let bad: Vec<String> = vec![
        "this is not json".into(),
        "[1,2,3]".into(),
        r#"{"id":1}"#.into(),
        good.replace("\"0100\"", "\"01zz\""),
        good.replace("\"0100\"", "\"010\""),
        good.replace(
            "1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000",
            "19011250",
        ),
        good.replace("[]", "[\"abcd\"]"),
        good.replace("\"20000000\"", "\"2000000\""),
        good.replace("true]", "\"true\"]"),
        good.replace(",true]", "]"),
        r#"{"id":null,"method":"mining.set_difficulty","params":["abc"]}"#.into(),
        r#"{"id":null,"method":"mining.set_difficulty","params":[-1]}"#.into(),
        r#"{"id":null,"method":"mining.set_difficulty","params":[]}"#.into(),
        r#"{"id":null,"method":"mining.set_extranonce","params":["xyz",4]}"#.into(),
        r#"{"id":null,"method":"mining.set_extranonce","params":["00",100000]}"#.into(),
        r#"{"id":null,"method":"client.reconnect","params":["127.0.0.1","port",0]}"#.into(),
        format!(
            r#"{{"id":null,"method":"mining.notify","params":["{}"]}}"#,
            "a".repeat(300_000)
        ),
        "[".repeat(50_000),
        r#"{"id":1,"method":"x","params":{"not":"an array"}}"#.into(),
    ];
    for line in &bad {
        pool.send_raw(line);
    }
    // Not malformed, but odd: a null-id error and an answer to nothing we asked.
    pool.send_raw(r#"{"id":null,"result":null,"error":[20,"something went wrong",null]}"#);
    pool.send_raw(r#"{"id":987654,"result":true,"error":null}"#);
    wait_for("all bad lines counted", LIMIT, || {
        engine.stats().pool(0).malformed >= bad.len() as u64
    })
    .await;
    assert_eq!(engine.stats().pool(0).malformed, bad.len() as u64);

    let job = pool.new_job(true);
    wait_for("shares on the next good job", LIMIT, || {
        pool.accepted_shares()
            .iter()
            .any(|a| job_at_or_after(&a.job_id, &job))
    })
    .await;
    let report = engine.stop().await;
    let s = pool.stats();
    assert_eq!(s.connections, 1, "the connection survived");
    assert_clean("pool", &s);
    assert_eq!(report.pools[0].rejected, 0);
}
