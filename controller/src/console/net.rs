//! The console over the network (`CONSOLE_LISTEN`, port 7734): a Noise session with the rig
//! as responder, open only to the operator keys in `CONSOLE_KEYS`.
//!
//! Who may log in is read at each handshake: the keys the console was started with
//! (rig.conf's `CONSOLE_KEYS`) and those of the rig's status snapshot
//! ([`RigStatus::console_keys`]: rig.conf's, or the applied flight sheet's where rig.conf sets
//! none). A sheet applied live therefore admits its keys from the next handshake and refuses
//! the keys it dropped from the next handshake; an open session whose key was dropped is
//! closed at once with `Refused` (`NOT_ALLOWED`), logged and counted, as an operator who
//! removes a key expects. A farm rig whose keys all come from its sheet starts listening when
//! a sheet first lists one ([`serve_when_allowed`]); once open, the console stays open and
//! refuses everyone while no key is listed.
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
use crate::status::{RigStatus, StatusRx};

/// Network console sessions at once.
pub const SESSIONS: usize = 4;
/// Longest a handshake plus `Hello` may take.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// A session with no line for this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Longest one session may last, however busy.
pub const SESSION_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// A console opened by a flight sheet that cannot bind its address tries again this often.
pub const BIND_RETRY: Duration = Duration::from_secs(10);

/// Whether `key` may use the console now: one of `fixed` (the keys it was started with) or
/// of the snapshot's `CONSOLE_KEYS` in force.
pub fn allows(fixed: &[PublicKey], s: &RigStatus, key: &PublicKey) -> bool {
    fixed.contains(key) || s.console_keys.contains(key)
}

/// Whether anyone may use the console now.
pub fn anyone(fixed: &[PublicKey], s: &RigStatus) -> bool {
    !fixed.is_empty() || !s.console_keys.is_empty()
}

/// For a rig whose operator keys come only from its farm's flight sheet: waits until a
/// snapshot lists a key, then binds `listen` (told on `bound`) and serves as [`serve`]. A
/// bind that fails is logged, counted and tried again after [`BIND_RETRY`] while a key is
/// listed. Returns when the rig core is gone.
pub async fn serve_when_allowed(
    listen: SocketAddr,
    keys: Arc<[PublicKey]>,
    identity: Arc<Identity>,
    mut status: StatusRx,
    commands: CommandTx,
    stats: Arc<OpsStats>,
    bound: tokio::sync::watch::Sender<Option<SocketAddr>>,
) {
    loop {
        while !anyone(&keys, &status.borrow_and_update()) {
            if status.changed().await.is_err() {
                return;
            }
        }
        match TcpListener::bind(listen).await {
            Ok(l) => {
                let at = l.local_addr().unwrap_or(listen);
                bound.send_replace(Some(at));
                crate::info!("network console on {at}: the flight sheet lists operator keys");
                return serve(l, keys, identity, status, commands, stats).await;
            }
            Err(e) => {
                bump(&stats.console.bind_errors);
                crate::warn!(
                    "network console: cannot listen on {listen}: {e}; retrying in {} s",
                    BIND_RETRY.as_secs()
                );
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    }
}

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
        let allowed = allows(&keys, &status.borrow(), &operator);
        let refused = match hello.as_deref() {
            Ok(OperatorToRig::Hello { .. }) if allowed => None,
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
    let end = lines(ch, operator, &keys, &status, &commands, &stats).await;
    crate::info!(
        "network console: {peer}: operator {} left ({end})",
        hex::encode(&operator)
    );
}

/// The sending half of a session.
type Writer = compushare_protocol::secure::SecureWriter<
    embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedWriteHalf>,
>;

/// What ended a wait for the operator's next message.
enum Next {
    Message(Result<Box<OperatorToRig>, ChannelError>),
    Idle,
    /// The operator's key is no longer allowed.
    Removed,
}

/// Answers lines until the session ends; returns why it ended.
async fn lines(
    ch: TcpChannel,
    operator: PublicKey,
    keys: &[PublicKey],
    status: &StatusRx,
    commands: &CommandTx,
    stats: &OpsStats,
) -> String {
    let (mut rx, mut tx) = ch.split();
    let mut watch = status.clone();
    let mut watching = true;
    loop {
        // One receive per message, kept across status changes: a receive dropped half-way
        // would lose the frame (and poison the channel).
        let next = {
            let recv = rx.recv::<OperatorToRig>();
            let idle = tokio::time::sleep(IDLE_LIMIT);
            tokio::pin!(recv, idle);
            loop {
                tokio::select! {
                    m = &mut recv => break Next::Message(m),
                    () = &mut idle => break Next::Idle,
                    r = watch.changed(), if watching => {
                        // A gone rig core publishes nothing more: the keys stay as they are.
                        watching = r.is_ok();
                        if !allows(keys, &watch.borrow_and_update(), &operator) {
                            break Next::Removed;
                        }
                    }
                }
            }
        };
        let msg = match next {
            Next::Idle => {
                bump(&stats.console_idle);
                return format!("idle for {} s", IDLE_LIMIT.as_secs());
            }
            Next::Removed => return removed(&mut tx, stats).await,
            Next::Message(Err(ChannelError::Closed)) => return "closed".into(),
            Next::Message(Err(e)) => {
                count_channel_error(stats, &e);
                if let ChannelError::Codec(_) = e {
                    let r = Refusal::new(refusal::PROTOCOL, &format!("bad message: {e}"));
                    let _ = tx.send(&RigToOperator::Refused(r)).await;
                }
                return e.to_string();
            }
            Next::Message(Ok(m)) => m,
        };
        let OperatorToRig::Line { request, text } = *msg else {
            bump(&stats.console_protocol_errors);
            let r = Refusal::new(refusal::PROTOCOL, "Hello twice");
            let _ = tx.send(&RigToOperator::Refused(r)).await;
            return "protocol error: Hello twice".into();
        };
        let snapshot = status.borrow().clone();
        // A line that raced the key's removal is not executed.
        if !allows(keys, &snapshot, &operator) {
            return removed(&mut tx, stats).await;
        }
        let reply = super::answer(text.as_bytes(), &snapshot, commands).await;
        stats.count_console_line(reply.ok);
        if let Err(e) = tx.send(&RigToOperator::Reply(reply.to_wire(request))).await {
            return e.to_string();
        }
    }
}

/// Ends a session whose key left `CONSOLE_KEYS`: tells the operator, counts it.
async fn removed(tx: &mut Writer, stats: &OpsStats) -> String {
    bump(&stats.console_key_removed);
    let r = Refusal::new(
        refusal::NOT_ALLOWED,
        "this operator key was removed from the rig's CONSOLE_KEYS",
    );
    let _ = tx.send(&RigToOperator::Refused(r)).await;
    "key removed from CONSOLE_KEYS".into()
}

fn count_channel_error(stats: &OpsStats, e: &ChannelError) {
    bump(match e {
        ChannelError::Codec(_) => &stats.console_protocol_errors,
        ChannelError::Decrypt | ChannelError::Poisoned => &stats.console_auth_errors,
        _ => &stats.console_handshake_errors,
    });
}
