//! TEST DOUBLE of the management node's side of a rig session, for tests that script the
//! manager on the protocol itself (real Noise over loopback TCP): [`accept_rig`] takes one
//! rig's connection, its Hello, and answers with a Welcome; the test then speaks for the
//! manager on the returned channel.

use std::time::Duration;

use compushare_protocol::msg::{ManagerToRig, RigHello, RigToManager, Welcome};
use compushare_protocol::secure::net::{accept_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{bounded, TrustLevel};
use tokio::net::TcpListener;

/// How long a rig may take to connect.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Accepts one rig on `listener` as the manager `me`: handshake, the rig's Hello, then a
/// Welcome (untrusted, label `rig-1`, heartbeat every second, 1 credit = 1 msat). Panics (a
/// test helper) when the rig does not connect in [`CONNECT_WAIT`] or opens with another
/// message.
pub async fn accept_rig(listener: &TcpListener, me: &Identity) -> (TcpChannel, RigHello) {
    let (stream, _) = tokio::time::timeout(CONNECT_WAIT, listener.accept())
        .await
        .expect("rig connects")
        .expect("accept");
    let mut ch = accept_tcp(stream, me, HANDSHAKE_TIMEOUT)
        .await
        .expect("handshake");
    let hello: Box<RigToManager> = ch.recv_hello().await.expect("Hello");
    let RigToManager::Hello(h) = *hello else {
        panic!("first message not Hello: {hello:?}");
    };
    ch.send(&ManagerToRig::Welcome(Welcome {
        version: h.version,
        trust: TrustLevel::Untrusted,
        label: bounded("rig-1"),
        heartbeat_s: 1,
        credit_msat: 1,
    }))
    .await
    .expect("Welcome sent");
    (ch, h)
}
