//! One client session against a scripted raw-TCP pool on 127.0.0.1 that behaves like real
//! pools do at their oddest: mining.configure refused with a 2-element error, the job sent
//! before the subscribe answer, ids echoed back as strings, a null-id error, a get_version
//! request. The published work must reproduce vector V7, and the submit line must carry the
//! V7 fields byte for byte in wire order.

use std::time::Duration;

use compushare_controller::stratum::board::{FoundShare, MiningStats, WorkBoard};
use compushare_controller::stratum::client::{
    run_session, ClientConfig, MiningLink, PoolConfig, SessionEnd,
};
use compushare_controller::stratum::conn::PoolUrl;
use compushare_controller::stratum::hex::encode;
use compushare_controller::stratum::job::with_nonce;
use compushare_controller::stratum::target::{reversed, sha256d};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const V7_NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["674320f700005d59","1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff08044c86041b","ffffffff0100f2052a010000004341041b0e8c2567c12536aa13357b79a073dc4444acb83c4ec7a0e2f99dd7457516c5817242da796924ca4e99947d087fedf9ce467cb9f7c6287078f801df276fdf84ac00000000",["c40297f730dd7b5a99567eb8d27b78758f607507c52292d02d4031895b52f2ff","49aef42d78e3e9999c9e6ec9e1dddd6cb880bf3b076a03be1318ca789089308e"],"00000001","1b04864c","4d1b2237",true]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quirky_pool_v7_job_and_submit_wire_format() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (submits_tx, mut submits_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (version_tx, mut version_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = tcp.into_split();
        let mut lines = BufReader::new(rd).lines();
        let mut submits = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).unwrap();
            let id = v["id"].clone();
            let sid = json!(id.to_string());
            let out = match v["method"].as_str() {
                Some("mining.configure") => {
                    json!({"id": id, "result": null, "error": [20, "Unsupported method"]})
                        .to_string()
                }
                Some("mining.subscribe") => format!(
                    "{V7_NOTIFY}\n{}\n{}",
                    json!({"id": null, "result": null, "error": [20, "hiccup", null]}),
                    json!({"id": sid, "result": [[["mining.notify", "1"]], "02", 2], "error": null})
                ),
                Some("mining.authorize") => {
                    format!(
                        "{}\n{}",
                        json!({"id": sid, "result": true, "error": null}),
                        json!({"id": 99, "method": "client.get_version", "params": []})
                    )
                }
                Some("mining.extranonce.subscribe") => {
                    json!({"id": id, "result": false, "error": [20, "Not supported"]}).to_string()
                }
                Some("mining.submit") => {
                    submits += 1;
                    submits_tx.send(v["params"].clone()).unwrap();
                    match submits {
                        1 => json!({"id": id, "result": true, "error": null}).to_string(),
                        2 => {
                            json!({"id": id, "result": null, "error": [23, "Low difficulty share"]})
                                .to_string()
                        }
                        3 => json!({"id": sid, "result": null, "error": [21, "Stale"]}).to_string(),
                        _ => json!({"id": null, "method": "client.reconnect", "params": []})
                            .to_string(),
                    }
                }
                None if v["id"] == 99 => {
                    version_tx.send(v["result"].clone()).unwrap();
                    continue;
                }
                other => panic!("unexpected {other:?}: {line}"),
            };
            wr.write_all(format!("{out}\n").as_bytes()).await.unwrap();
        }
    });

    let pool = PoolConfig {
        url: PoolUrl::parse(&format!("stratum+tcp://127.0.0.1:{port}")).unwrap(),
        user: "w".into(),
        pass: "x".into(),
    };
    let cfg = ClientConfig {
        job_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    let board = WorkBoard::new(1);
    let stats = MiningStats::new(1);
    let (share_tx, mut share_rx) = tokio::sync::mpsc::channel::<FoundShare>(8);
    let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let session = {
        let (board, stats, pool) = (board.clone(), stats.clone(), pool.clone());
        tokio::spawn(async move {
            let url = pool.url.clone();
            run_session(
                0,
                1,
                &pool,
                &url,
                &cfg,
                &stats,
                Some(MiningLink {
                    board: &board,
                    shares: &mut share_rx,
                }),
                &mut stop,
            )
            .await
        })
    };

    // The job published to the devices reproduces V7 at extranonce2 0602.
    let work = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(w) = board.current() {
                return w;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("work published");
    assert_eq!(work.extranonce1, vec![0x02]);
    assert_eq!(work.extranonce2_size, 2);
    assert_eq!(work.version_mask, None, "configure was refused");
    let range = work.slot_range(0, 1);
    let unit = work.unit(&range, 0x0602, 32).unwrap();
    let nonce = 0x10572b0f;
    assert_eq!(
        encode(&reversed(&sha256d(&with_nonce(&unit.header, nonce)))),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    );

    let share = |n: u32| FoundShare {
        pool: 0,
        session: 1,
        job_id: work.notify.job_id.clone(),
        extranonce2: unit.extranonce2.clone(),
        ntime: unit.ntime,
        nonce: n,
        version_bits: unit.version_bits,
        slot: 0,
        difficulty: 1.0,
    };
    for n in [nonce, nonce + 1, nonce + 2] {
        share_tx.send(share(n)).await.unwrap();
    }
    let first = submits_rx.recv().await.unwrap();
    assert_eq!(
        first,
        json!(["w", "674320f700005d59", "0602", "4d1b2237", "10572b0f"])
    );
    submits_rx.recv().await.unwrap();
    submits_rx.recv().await.unwrap();
    // A share for a job the session does not have is never sent.
    let mut gone = share(nonce + 3);
    gone.job_id = "old".into();
    share_tx.send(gone).await.unwrap();
    // The fourth submit triggers a reconnect request.
    share_tx.send(share(nonce + 4)).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), session)
        .await
        .expect("session ends")
        .unwrap();
    assert!(matches!(end, SessionEnd::Reconnect { .. }), "{end:?}");
    let c = stats.pool(0);
    assert_eq!((c.accepted, c.rejected, c.stale), (1, 1, 2), "{c:?}");
    assert_eq!(c.malformed, 0);
    let version = version_rx.recv().await.unwrap();
    assert!(version.as_str().unwrap().starts_with("compushare/"));
    let fourth = submits_rx.recv().await.unwrap();
    assert_eq!(fourth[4], "10572b13");
    assert!(
        submits_rx.try_recv().is_err(),
        "the share for the unknown job was not sent"
    );
    server.abort();
}
