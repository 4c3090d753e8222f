//! The in-place sealed transport speaks byte for byte what snow's own Noise transport speaks:
//! a peer driving snow directly (handshake and stateless transport, as the channel did before
//! it sealed in place) and this crate's channel understand each other in both roles and both
//! directions, across frame sizes from a few bytes to the largest message. Large frames
//! between two small ones also check that the buffers shrink back without losing data.

use compushare_protocol::chunk::Chunker;
use compushare_protocol::frame::{read_frame_async, write_frame_async, FrameBuf};
use compushare_protocol::limits::{MAX_FRAME, MAX_MESSAGE};
use compushare_protocol::msg::{self, Heartbeat, ManagerToRig, RigToManager};
use compushare_protocol::secure::{accept, connect, Identity, NOISE_PARAMS, PROLOGUE};
use embedded_io_adapters::tokio_1::FromTokio;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

type R = FromTokio<ReadHalf<DuplexStream>>;
type W = FromTokio<WriteHalf<DuplexStream>>;

fn ends(s: DuplexStream) -> (R, W) {
    let (r, w) = tokio::io::split(s);
    (FromTokio::new(r), FromTokio::new(w))
}

fn messages() -> Vec<RigToManager> {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let chunks: Vec<_> = Chunker::new(&big).unwrap().collect();
    let hb = |uptime_s| {
        RigToManager::Heartbeat(Heartbeat {
            uptime_s,
            devices: Default::default(),
            vault_used: 0,
            vault_slots: 4,
        })
    };
    let mut v = vec![hb(1)];
    v.extend(chunks.into_iter().map(RigToManager::ResultChunk));
    v.push(hb(2));
    v.push(hb(3));
    v
}

/// A peer that is snow and nothing else.
struct SnowPeer {
    r: R,
    w: W,
    buf: Box<FrameBuf>,
    out: Box<FrameBuf>,
}

impl SnowPeer {
    async fn send_hs(&mut self, hs: &mut snow::HandshakeState) {
        let n = hs.write_message(&[], &mut self.out[..]).unwrap();
        write_frame_async(&mut self.w, &self.out[..n])
            .await
            .unwrap();
    }

    async fn recv_hs(&mut self, hs: &mut snow::HandshakeState) {
        let f = read_frame_async(&mut self.r, &mut self.buf).await.unwrap();
        hs.read_message(f, &mut self.out[..]).unwrap();
    }
}

fn builder() -> (snow::Builder<'static>, Vec<u8>) {
    let b = snow::Builder::new(NOISE_PARAMS.parse().unwrap());
    let keys = b.generate_keypair().unwrap();
    (
        snow::Builder::new(NOISE_PARAMS.parse().unwrap()).prologue(PROLOGUE),
        keys.private,
    )
}

async fn exchange(
    snow_t: snow::StatelessTransportState,
    mut peer: SnowPeer,
    ours: compushare_protocol::secure::SecureChannel<R, W>,
) {
    let (mut rd, mut wr) = ours.split();
    // snow -> ours
    for (n, m) in messages().into_iter().enumerate() {
        let mut plain = vec![0u8; MAX_MESSAGE];
        let p = msg::encode(&m, &mut plain).unwrap();
        let len = snow_t
            .write_message(n as u64, p, &mut peer.out[..])
            .unwrap();
        write_frame_async(&mut peer.w, &peer.out[..len])
            .await
            .unwrap();
        let got: RigToManager = *rd.recv().await.unwrap();
        assert_eq!(got, m, "message {n} from snow");
    }
    // ours -> snow
    let back: Vec<ManagerToRig> = messages()
        .into_iter()
        .map(|m| match m {
            RigToManager::ResultChunk(c) => ManagerToRig::GeometryChunk(c),
            _ => ManagerToRig::Cancel {
                assignment: compushare_protocol::types::AssignmentId(9),
            },
        })
        .collect();
    for (n, m) in back.into_iter().enumerate() {
        wr.send(&m).await.unwrap();
        let f = read_frame_async(&mut peer.r, &mut peer.buf).await.unwrap();
        let len = snow_t.read_message(n as u64, f, &mut peer.out[..]).unwrap();
        let got: ManagerToRig = msg::decode(&peer.out[..len]).unwrap();
        assert_eq!(got, m, "message {n} to snow");
    }
}

#[tokio::test]
async fn snow_initiator_and_in_place_responder_agree() {
    let (a, b) = tokio::io::duplex(MAX_FRAME * 2);
    let ((ar, aw), (br, bw)) = (ends(a), ends(b));
    let server = Identity::generate().unwrap();
    let (builder, private) = builder();
    let mut hs = builder
        .local_private_key(&private)
        .build_initiator()
        .unwrap();
    let mut peer = SnowPeer {
        r: ar,
        w: aw,
        buf: Box::new([0; MAX_FRAME]),
        out: Box::new([0; MAX_FRAME]),
    };
    let snow_side = async {
        peer.send_hs(&mut hs).await;
        peer.recv_hs(&mut hs).await;
        peer.send_hs(&mut hs).await;
    };
    let (_, ours) = tokio::join!(snow_side, accept(br, bw, &server));
    let t = hs.into_stateless_transport_mode().unwrap();
    exchange(t, peer, ours.unwrap()).await;
}

#[tokio::test]
async fn in_place_initiator_and_snow_responder_agree() {
    let (a, b) = tokio::io::duplex(MAX_FRAME * 2);
    let ((ar, aw), (br, bw)) = (ends(a), ends(b));
    let client = Identity::generate().unwrap();
    let (builder, private) = builder();
    let server_public = {
        // The responder's public key, for the initiator to pin.
        let secret: [u8; 32] = private.clone().try_into().unwrap();
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes()
    };
    let mut hs = builder
        .local_private_key(&private)
        .build_responder()
        .unwrap();
    let mut peer = SnowPeer {
        r: br,
        w: bw,
        buf: Box::new([0; MAX_FRAME]),
        out: Box::new([0; MAX_FRAME]),
    };
    let snow_side = async {
        peer.recv_hs(&mut hs).await;
        peer.send_hs(&mut hs).await;
        peer.recv_hs(&mut hs).await;
    };
    let (ours, _) = tokio::join!(connect(ar, aw, &client, &server_public), snow_side);
    let t = hs.into_stateless_transport_mode().unwrap();
    exchange(t, peer, ours.unwrap()).await;
}
