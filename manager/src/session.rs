//! One session's loop after routing: a rig's (a reader here, a writer task draining a bounded
//! queue the market fills) or a client's (request, reply).
//!
//! A frame that authenticates but does not decode (oversize, garbage, a message of the other
//! direction) is logged, answered with `Refused(PROTOCOL)` and ends the session: the peer is
//! broken or hostile, and a clean restart costs an honest rig little. Messages about
//! assignments the rig does not hold, and replays, are answered `Ack::Unknown` and the session
//! stays open (a reconnecting rig may resend in good faith).

use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::chunk::{content_address, Chunker};
use compushare_protocol::msg::{
    self, refusal, ClientToManager, ErrorCode, ManagerToClient, ManagerToRig, RatingOutcome,
    Refusal, RigHello, RigToManager,
};
use compushare_protocol::secure::{seal, SecureReader, SecureWriter};
use compushare_protocol::types::{Amount, AssignmentId, PublicKey};
use embedded_io_adapters::tokio_1::FromTokio;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::runtime::Handle;

use compushare_protocol::chunk::{Growing, Reassembler};

use crate::intake::{prepare_job, PreparedJob};
use crate::market::RigLink;
use crate::node::Shared;
use crate::outbox::{outbox, GeometryFrames, Inbox, Outgoing};
use crate::persist::Persist;
use crate::public_record;
use crate::ratings::{self, Rated, RatingError};
use crate::tasks::dispatch;

/// The receiving half of a TCP session.
pub type Reader = SecureReader<FromTokio<OwnedReadHalf>>;
/// The sending half of a TCP session.
pub type Writer = SecureWriter<FromTokio<OwnedWriteHalf>>;

use compushare_protocol::hex::short as hex4;

/// Serves a rig until it leaves, breaks the protocol or goes silent.
pub async fn rig(
    shared: Arc<Shared>,
    peer: PublicKey,
    hello: Box<RigHello>,
    mut rd: Reader,
    mut wr: Writer,
) {
    let handle = Handle::current();
    // A rig with FARM_KEY joins its farm before it is welcomed: a key no farm has is refused
    // (the rig stops transport and says why; it keeps hashing on its last sheet).
    let farm = match shared.fleet.enrol(&peer, &hello) {
        Ok(f) => f,
        Err(e) => {
            compushare_protocol::warn!("rig {}: refused: {e}", hex4(&peer));
            let code = match e {
                crate::fleet::EnrolError::UnknownFarmKey => refusal::NOT_ALLOWED,
                _ => refusal::UNAVAILABLE,
            };
            let m =
                crate::outbox::encode(&ManagerToRig::Refused(Refusal::new(code, &e.to_string())));
            if let Ok(bytes) = m {
                let _ = wr.send_bytes(&bytes).await;
            }
            return;
        }
    };
    let (out, inbox) = outbox(
        shared.cfg.market.session_queue.max(8),
        shared.cfg.market.session_queue_bytes,
    );
    let (session, welcome) = {
        let mut m = shared.market();
        let session = m.new_session();
        let link = RigLink {
            session,
            outbox: out.clone(),
        };
        (session, m.rig_hello(peer, &hello, link))
    };
    let fleet_session = shared.fleet.rig_joined(peer, farm, &hello, out.clone());
    // The market copied what it keeps; the Hello (~3 KiB) need not live as long as the session.
    drop(hello);
    // Encoded before the await: a message enum is ~60 KiB (its largest variant holds a chunk
    // inline), and one held across an await would sit in every session's task for its life.
    let welcome = crate::outbox::encode(&ManagerToRig::Welcome(welcome));
    let sent = match welcome {
        Ok(bytes) => wr.send_bytes(&bytes).await.is_ok(),
        Err(_) => false,
    };
    if !sent {
        shared.market().rig_gone(&peer, session);
        shared.fleet.rig_gone(&peer, fleet_session);
        return;
    }
    let writer = tokio::spawn(write_queued(inbox, wr));
    let idle = shared.cfg.idle_timeout;
    loop {
        let bytes = match tokio::time::timeout(idle, rd.recv_bytes()).await {
            Err(_) => {
                compushare_protocol::warn!("rig {} silent for {idle:?}; closing", hex4(&peer));
                break;
            }
            Ok(Err(_)) => break,
            Ok(Ok(b)) => b,
        };
        if out.is_closed() {
            // The market dropped this rig (its send queue refused); the rig reconnects.
            compushare_protocol::warn!("rig {}: dropped by the market; closing", hex4(&peer));
            break;
        }
        let message = match msg::decode_boxed::<RigToManager>(bytes) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("undecodable frame ({} bytes): {e}", bytes.len());
                shared.market().stats.abuse += 1;
                compushare_protocol::warn!("rig {}: protocol abuse: {why}; closing", hex4(&peer));
                let _ = out.push_last(&ManagerToRig::Refused(Refusal::new(
                    refusal::PROTOCOL,
                    &why,
                )));
                break;
            }
        };
        if shared.fleet.rig_message(&peer, &message) {
            continue;
        }
        if let RigToManager::RateClient { assignment, stars } = *message {
            let outcome = rate_client(&shared, &peer, assignment, stars);
            if out
                .push(&ManagerToRig::Rated {
                    assignment,
                    outcome,
                })
                .is_err()
            {
                // As the market does with a rig whose queue refuses: too slow to serve.
                compushare_protocol::warn!("rig {}: send queue full; closing", hex4(&peer));
                break;
            }
            continue;
        }
        let outcome = shared.market().rig_message(&peer, message);
        match outcome {
            Ok(work) => dispatch(&handle, &shared, work),
            Err(abuse) => {
                let _ = out.push_last(&ManagerToRig::Refused(Refusal::new(
                    refusal::PROTOCOL,
                    &abuse.to_string(),
                )));
                break;
            }
        }
    }
    shared.market().rig_gone(&peer, session);
    shared.fleet.rig_gone(&peer, fleet_session);
    drop(out);
    // Let the writer flush what is queued (a refusal, acks), but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Drains a rig session's queue onto its socket until the queue closes, a write fails, or
/// a message marked last (a refusal) is sent.
async fn write_queued(mut inbox: Inbox, mut wr: Writer) {
    while let Some(entry) = inbox.next().await {
        match entry {
            Outgoing::Message { bytes, last } => {
                if wr.send_bytes(&bytes).await.is_err() || last {
                    return;
                }
            }
            Outgoing::Geometry { input, content } => {
                for frame in GeometryFrames::new(&input, content) {
                    let Ok(frame) = frame else { return };
                    if wr.send_bytes(&frame).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A rig's rating of the client whose job `assignment` belonged to: only for work the rig
/// returned, one rating per rig and client.
fn rate_client(
    shared: &Shared,
    rig: &PublicKey,
    assignment: AssignmentId,
    stars: u8,
) -> RatingOutcome {
    if !(1..=5).contains(&stars) {
        return RatingOutcome::BadStars;
    }
    let client = shared.market().client_of_returned_work(rig, assignment);
    let Some(client) = client else {
        compushare_protocol::warn!(
            "rig {} rated the client of assignment {} it returned no work on; refused",
            hex4(rig),
            assignment.0
        );
        return RatingOutcome::NotYourWork;
    };
    match shared.ratings().rate(rig, &client, stars) {
        Ok(Rated::New) => RatingOutcome::Recorded,
        Ok(Rated::Replaced { .. }) => RatingOutcome::Replaced,
        Err(RatingError::BadStars(_)) => RatingOutcome::BadStars,
        Err(RatingError::Store(e)) => {
            // Nothing was recorded; the rig may rate again later.
            compushare_protocol::warn!("rating by rig {}: {e}", hex4(rig));
            RatingOutcome::NotRecorded
        }
    }
}

/// The answer to `ClientToManager::RigRecord`: the stored trust record (events, return
/// statistics) when there is one, the market's live counters otherwise, and the ratings.
fn rig_record(shared: &Shared, key: PublicKey) -> ManagerToClient {
    let live = shared.market().rig_record(&key);
    let stored = match shared.store.read().and_then(|r| r.rig(&key)) {
        Ok(r) => r,
        Err(e) => {
            compushare_protocol::warn!("record of rig {}: {e}", hex4(&key));
            None
        }
    };
    let as_rig = live
        .as_ref()
        .map(|p| ratings::summary(&p.ratings))
        .unwrap_or_default();
    let standing = match (&live, &stored) {
        (Some(p), Some(r)) => {
            let mut s = public_record::standing_from_store(r, &p.label);
            s.paid = Amount(p.paid);
            s.forfeited = Amount(p.forfeited);
            Some(s)
        }
        (Some(p), None) => Some(public_record::standing_from_market(p)),
        (None, _) => None,
    };
    let as_client = shared.ratings().of(&key);
    match public_record::record(key, standing, as_rig, as_client) {
        Some(r) => ManagerToClient::Record(r),
        None => ManagerToClient::UnknownRig { rig: key },
    }
}

/// A job input being uploaded.
struct Upload {
    submit: msg::SubmitJob,
    /// Grows with the bytes that arrived, never with the announced length.
    input: Reassembler<Growing>,
}

/// Sends one reply. Not an `async fn`: the message is boxed before the future exists, so
/// neither this future nor its callers' hold a ~60 KiB message enum across the send.
fn reply(wr: &mut Writer, m: ManagerToClient) -> impl std::future::Future<Output = bool> + '_ {
    let m = Box::new(m);
    async move { wr.send(&*m).await.is_ok() }
}

fn error(code: ErrorCode, message: &str) -> ManagerToClient {
    ManagerToClient::Error {
        code,
        message: compushare_protocol::types::bounded(message),
    }
}

/// Serves a client: one request at a time, in order.
pub async fn client(shared: Arc<Shared>, peer: PublicKey, mut rd: Reader, mut wr: Writer) {
    if !reply(
        &mut wr,
        ManagerToClient::Welcome {
            version: msg::PROTOCOL_VERSION,
        },
    )
    .await
    {
        return;
    }
    let mut upload: Option<Upload> = None;
    let idle = shared.cfg.idle_timeout;
    loop {
        let bytes = match tokio::time::timeout(idle, rd.recv_bytes()).await {
            Ok(Ok(b)) => b,
            _ => break,
        };
        // Boxed: it is matched across awaits below.
        let message = match msg::decode_boxed::<ClientToManager>(bytes) {
            Ok(m) => m,
            Err(e) => {
                compushare_protocol::warn!(
                    "client {}: undecodable frame: {e}; closing",
                    hex4(&peer)
                );
                let _ = reply(
                    &mut wr,
                    ManagerToClient::Refused(Refusal::new(refusal::PROTOCOL, &e.to_string())),
                )
                .await;
                break;
            }
        };
        let ok = match *message {
            ClientToManager::Hello { .. } => {
                reply(&mut wr, error(ErrorCode::Protocol, "second Hello")).await
            }
            ClientToManager::SubmitJob(s) => {
                let max = shared.cfg.market.max_input;
                // Nothing is allocated for a job its client cannot pay for.
                let afford = if s.photons == 0 {
                    Ok(())
                } else {
                    shared.market().can_afford(&peer, s.photons)
                };
                match afford.map(|()| Reassembler::growing(s.input, s.input_len, max)) {
                    Err((code, message)) => {
                        upload = None;
                        reply(&mut wr, error(code, &message)).await
                    }
                    Ok(Ok(a)) if s.photons > 0 => {
                        upload = Some(Upload {
                            submit: s,
                            input: a,
                        });
                        true
                    }
                    Ok(Ok(_)) => {
                        reply(
                            &mut wr,
                            error(ErrorCode::BadJob, "photons: must be at least 1"),
                        )
                        .await
                    }
                    Ok(Err(e)) => {
                        reply(&mut wr, error(ErrorCode::BadJob, &format!("input: {e}"))).await
                    }
                }
            }
            ClientToManager::JobData(chunk) => {
                let Some(up) = upload.as_mut() else {
                    if !reply(
                        &mut wr,
                        error(ErrorCode::Protocol, "JobData without SubmitJob"),
                    )
                    .await
                    {
                        break;
                    }
                    continue;
                };
                match up.input.accept(&chunk) {
                    Ok(false) => true,
                    Err(e) => {
                        upload = None;
                        reply(&mut wr, error(ErrorCode::BadJob, &format!("input: {e}"))).await
                    }
                    Ok(true) => {
                        let Some(up) = upload.take() else { continue };
                        let m = submit(&shared, peer, up).await;
                        reply(&mut wr, m).await
                    }
                }
            }
            ClientToManager::JobStatus { job } => {
                let st = shared.market().status(&peer, job);
                match st {
                    Some(s) => reply(&mut wr, ManagerToClient::JobStatus(s)).await,
                    None => {
                        reply(
                            &mut wr,
                            error(ErrorCode::UnknownJob, "no such job of yours"),
                        )
                        .await
                    }
                }
            }
            ClientToManager::FetchResult { job } => fetch(&shared, peer, job, &mut wr).await,
            ClientToManager::RigRecord { rig } => reply(&mut wr, rig_record(&shared, rig)).await,
            ClientToManager::Rate { job, rig, stars } => {
                let r = rate(&shared, peer, job, rig, stars).await;
                let st = shared.market().status(&peer, job);
                match (r, st) {
                    (Ok(()), Some(s)) => reply(&mut wr, ManagerToClient::JobStatus(s)).await,
                    (Err(code), _) => {
                        reply(
                            &mut wr,
                            error(code, "rating refused (stars 1-5, a rig of this job)"),
                        )
                        .await
                    }
                    (Ok(()), None) => {
                        reply(&mut wr, error(ErrorCode::UnknownJob, "no such job")).await
                    }
                }
            }
        };
        if !ok {
            break;
        }
    }
}

async fn submit(shared: &Arc<Shared>, peer: PublicKey, up: Upload) -> ManagerToClient {
    let bytes = up.input.into_payload();
    let s = up.submit;
    // The balance may have moved during the upload; still nothing built for a job that
    // cannot be paid for.
    if let Err((code, message)) = shared.market().can_afford(&peer, s.photons) {
        return error(code, &message);
    }
    let limits = shared.cfg.market.limits;
    let prepared =
        tokio::task::spawn_blocking(move || prepare_job(bytes, s.photons, s.seed, &limits)).await;
    let PreparedJob { spec, cost_milli } = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return error(ErrorCode::BadJob, &e.to_string()),
        Err(_) => return error(ErrorCode::Internal, "job preparation failed"),
    };
    // Decided under the market's lock, committed off it (the escrow's write waits for the
    // disk, and for any other write before it), applied under it again.
    let decision =
        shared
            .market()
            .decide_job(peer, spec, s.photons, s.mode, s.max_price, cost_milli);
    let store = Arc::clone(&shared.store);
    let committed = match tokio::task::spawn_blocking(move || decision.commit(&store)).await {
        Ok(c) => c,
        Err(_) => return error(ErrorCode::Internal, "the manager could not record the job"),
    };
    let r = shared.market().job_committed(committed);
    match r {
        Ok((job, price_per_history, escrowed)) => ManagerToClient::JobAccepted {
            job,
            price_per_history,
            escrowed,
        },
        Err((code, message)) => error(code, &message),
    }
}

/// A client's rating of a rig: checked under the market's lock, committed off it, absorbed
/// into the rig's record under it again.
async fn rate(
    shared: &Arc<Shared>,
    peer: PublicKey,
    job: compushare_protocol::types::JobId,
    rig: PublicKey,
    stars: u8,
) -> Result<(), ErrorCode> {
    shared.market().may_rate(&peer, job, &rig, stars)?;
    let store = Arc::clone(&shared.store);
    let committed =
        tokio::task::spawn_blocking(move || Persist::new(store).rate(&rig, &peer, stars)).await;
    match committed {
        Ok(r) => shared.market().rated(&rig, r),
        Err(_) => Err(ErrorCode::Internal),
    }
}

async fn fetch(
    shared: &Arc<Shared>,
    peer: PublicKey,
    job: compushare_protocol::types::JobId,
    wr: &mut Writer,
) -> bool {
    let r = shared.market().client_result(&peer, job);
    let bytes = match r {
        Ok(b) => b,
        Err(ErrorCode::NotReady) => {
            return reply(wr, error(ErrorCode::NotReady, "result not ready")).await
        }
        Err(code) => return reply(wr, error(code, "no such job of yours")).await,
    };
    let sealed = tokio::task::spawn_blocking(move || seal::seal(&peer, &bytes)).await;
    let sealed = match sealed {
        Ok(Ok(s)) => s,
        _ => return reply(wr, error(ErrorCode::Internal, "could not seal the result")).await,
    };
    let chunker = match Chunker::new(&sealed) {
        Ok(c) => c,
        Err(e) => return reply(wr, error(ErrorCode::Internal, &format!("result: {e}"))).await,
    };
    let ready = ManagerToClient::ResultReady {
        job,
        content: content_address(&sealed),
        len: sealed.len() as u32,
    };
    if !reply(wr, ready).await {
        return false;
    }
    for c in chunker {
        if !reply(wr, ManagerToClient::ResultChunk(c)).await {
            return false;
        }
    }
    true
}
