//! The console over the network (`CONSOLE_LISTEN`, port 7734): a Noise session with the rig
//! as responder, open only to the operator keys in `CONSOLE_KEYS`.
//!
//! A session: handshake (at most [`HANDSHAKE_LIMIT`]), the operator's `Hello` (its version
//! checked first), then `Welcome` or `Refused`. A key not in `CONSOLE_KEYS` gets the frozen
//! `Refused` shape with code `NOT_ALLOWED`, is logged with its key and address, and counted.
//! After `Welcome` each `Line` gets one `Reply`; a session idle for [`IDLE_LIMIT`] is closed.
//! A frame that fails authentication (replayed, reordered, altered) poisons the channel and
//! ends the session: nothing in it is executed. At most [`SESSIONS`] sessions at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::hex;
use compushare_protocol::msg::{
    refusal, CodecError, OperatorToRig, OperatorWelcome, Refusal, RigToOperator, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{accept_tcp, TcpChannel};
use compushare_protocol::secure::{ChannelError, Identity};
use compushare_protocol::types::{bounded, PublicKey};
use tokio::net::{TcpListener, TcpStream};

use crate::command::CommandTx;
use crate::ops::{bump, Door, OpsStats};
use crate::status::StatusRx;

/// Network console sessions at once.
pub const SESSIONS: usize = 4;
/// Longest a handshake plus `Hello` may take.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// A session with no line for this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Longest one session may last, however busy.
pub const SESSION_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// Serves the network console on `listener` for ever.
pub async fn serve(
    listener: TcpListener,
    keys: Arc<[PublicKey]>,
    identity: Arc<Identity>,
    status: StatusRx,
    commands: CommandTx,
    stats: Arc<OpsStats>,
) {
    let door = Door {
        name: "network console",
        connections: SESSIONS,
        time: SESSION_LIMIT,
        counts: |s| &s.console,
    };
    let st = stats.clone();
    crate::ops::serve(listener, door, stats, move |stream, peer| {
        session(
            stream,
            peer,
            keys.clone(),
            identity.clone(),
            status.clone(),
            commands.clone(),
            st.clone(),
        )
    })
    .await
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    keys: Arc<[PublicKey]>,
    identity: Arc<Identity>,
    status: StatusRx,
    commands: CommandTx,
    stats: Arc<OpsStats>,
) {
    let welcomed = tokio::time::timeout(HANDSHAKE_LIMIT, async {
        let mut ch = match accept_tcp(stream, &identity, HANDSHAKE_LIMIT).await {
            Ok(ch) => ch,
            Err(e) => {
                bump(&stats.console_handshake_errors);
                crate::debug!("network console: {peer}: handshake failed: {e}");
                return None;
            }
        };
        let operator = ch.peer();
        let hello = ch.recv_hello::<OperatorToRig>().await;
        let refused = match hello.as_deref() {
            Ok(OperatorToRig::Hello { .. }) if keys.contains(&operator) => None,
            Ok(OperatorToRig::Hello { .. }) => {
                bump(&stats.console_refused_key);
                crate::warn!(
                    "network console: {peer}: refused operator key {} (not in CONSOLE_KEYS)",
                    hex::encode(&operator)
                );
                Some(Refusal::new(
                    refusal::NOT_ALLOWED,
                    "this operator key is not in the rig's CONSOLE_KEYS",
                ))
            }
            Err(ChannelError::Codec(CodecError::UnsupportedVersion { got, .. })) => {
                bump(&stats.console_refused_version);
                crate::info!("network console: {peer}: refused protocol version {got}");
                Some(Refusal::new(
                    refusal::UNSUPPORTED_VERSION,
                    &format!("protocol version {got} is not supported"),
                ))
            }
            Ok(_) | Err(ChannelError::Codec(_)) => {
                bump(&stats.console_protocol_errors);
                Some(Refusal::new(
                    refusal::PROTOCOL,
                    "the first message must be Hello",
                ))
            }
            Err(e) => {
                count_channel_error(&stats, e);
                crate::debug!("network console: {peer}: {e}");
                return None;
            }
        };
        if let Some(r) = refused {
            let _ = ch.send(&RigToOperator::Refused(r)).await;
            return None;
        }
        let welcome = {
            let s = status.borrow();
            OperatorWelcome {
                version: PROTOCOL_VERSION,
                name: bounded(&s.name),
                firmware: bounded(&s.firmware),
                key: identity.public(),
            }
        };
        ch.send(&RigToOperator::Welcome(welcome)).await.ok()?;
        Some((ch, operator))
    })
    .await;
    let Ok(Some((ch, operator))) = welcomed else {
        return;
    };
    bump(&stats.console_sessions);
    crate::info!(
        "network console: {peer}: operator {} logged in",
        hex::encode(&operator)
    );
    let end = lines(ch, &status, &commands, &stats).await;
    crate::info!(
        "network console: {peer}: operator {} left ({end})",
        hex::encode(&operator)
    );
}

/// Answers lines until the session ends; returns why it ended.
async fn lines(
    mut ch: TcpChannel,
    status: &StatusRx,
    commands: &CommandTx,
    stats: &OpsStats,
) -> String {
    loop {
        let msg = match tokio::time::timeout(IDLE_LIMIT, ch.recv::<OperatorToRig>()).await {
            Err(_) => {
                bump(&stats.console_idle);
                return format!("idle for {} s", IDLE_LIMIT.as_secs());
            }
            Ok(Err(ChannelError::Closed)) => return "closed".into(),
            Ok(Err(e)) => {
                count_channel_error(stats, &e);
                if let ChannelError::Codec(_) = e {
                    let r = Refusal::new(refusal::PROTOCOL, &format!("bad message: {e}"));
                    let _ = ch.send(&RigToOperator::Refused(r)).await;
                }
                return e.to_string();
            }
            Ok(Ok(m)) => m,
        };
        let OperatorToRig::Line { request, text } = *msg else {
            bump(&stats.console_protocol_errors);
            let r = Refusal::new(refusal::PROTOCOL, "Hello twice");
            let _ = ch.send(&RigToOperator::Refused(r)).await;
            return "protocol error: Hello twice".into();
        };
        let snapshot = status.borrow().clone();
        let reply = super::answer(text.as_bytes(), &snapshot, commands).await;
        stats.count_console_line(reply.ok);
        if let Err(e) = ch.send(&RigToOperator::Reply(reply.to_wire(request))).await {
            return e.to_string();
        }
    }
}

fn count_channel_error(stats: &OpsStats, e: &ChannelError) {
    bump(match e {
        ChannelError::Codec(_) => &stats.console_protocol_errors,
        ChannelError::Decrypt | ChannelError::Poisoned => &stats.console_auth_errors,
        _ => &stats.console_handshake_errors,
    });
}
