//! stratum+ssl on 127.0.0.1: a pool with a certificate from a throw-away CA (rcgen). The
//! miner trusts it through a CA file and mines; with another CA the handshake fails and no
//! share is sent.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use compushare_controller::stratum::board::MiningStats;
use compushare_controller::stratum::client::{run_session, SessionEnd, SessionError};
use compushare_controller::stratum::conn::{ConnectError, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

fn server_config(ca: &Ca) -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .unwrap();
    Arc::new(cfg)
}

fn ca_file(name: &str, pem: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("compushare-test-{}-{name}.pem", std::process::id()));
    std::fs::write(&p, pem).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mines_over_tls_with_a_configured_ca() {
    let ca = ca();
    let mut st = settings();
    st.tls = Some(server_config(&ca));
    let pool = pool(st).await;
    assert!(pool.url().starts_with("stratum+ssl://127.0.0.1:"));
    let mut cfg = client();
    let file = ca_file("good", &ca.pem);
    cfg.tls = TlsSettings {
        ca_file: Some(file.clone()),
    };
    let engine = engine(vec![pool_config(&pool, "w")], cfg, fast_failover());
    wait_for("shares over TLS", LIMIT, || pool.stats().accepted >= 3).await;
    engine.stop().await;
    assert_clean("pool", &pool.stats());
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_refused() {
    let ca_pool = ca();
    let other = ca();
    let mut st = settings();
    st.tls = Some(server_config(&ca_pool));
    let pool = pool(st).await;
    let mut cfg = client();
    let file = ca_file("other", &other.pem);
    cfg.tls = TlsSettings {
        ca_file: Some(file.clone()),
    };
    let stats = MiningStats::new(1);
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    let pc = pool_config(&pool, "w");
    let end = run_session(0, 1, &pc, &pc.url, &cfg, &stats, None, &mut stop).await;
    assert!(
        matches!(
            end,
            SessionEnd::Lost {
                error: SessionError::Connect(ConnectError::Handshake { .. }),
                ..
            }
        ),
        "{end:?}"
    );
    // A missing CA file is a clear error naming the file.
    cfg.tls = TlsSettings {
        ca_file: Some("/nonexistent/ca.pem".into()),
    };
    let end = run_session(0, 2, &pc, &pc.url, &cfg, &stats, None, &mut stop).await;
    match end {
        SessionEnd::Lost {
            error: SessionError::Connect(e @ ConnectError::CaFile { .. }),
            ..
        } => {
            assert!(e.to_string().contains("/nonexistent/ca.pem"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.stats().accepted, 0);
    let _ = std::fs::remove_file(file);
}
