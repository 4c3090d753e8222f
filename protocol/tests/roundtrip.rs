//! Every message of every direction survives encode -> decode unchanged, and never encodes
//! larger than its compile-time maximum.

mod common;

use compushare_protocol::limits::MAX_MESSAGE;
use compushare_protocol::msg::{self, Message};
use proptest::prelude::*;

fn round_trip<M: Message + PartialEq + core::fmt::Debug>(m: &M) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; M::POSTCARD_MAX_SIZE];
    let bytes = msg::encode(m, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(bytes.len() <= M::POSTCARD_MAX_SIZE && bytes.len() <= MAX_MESSAGE);
    let back: M = msg::decode(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rig_to_manager(m in common::rig_to_manager()) { round_trip(&m)?; }

    #[test]
    fn manager_to_rig(m in common::manager_to_rig()) { round_trip(&m)?; }

    #[test]
    fn client_to_manager(m in common::client_to_manager()) { round_trip(&m)?; }

    #[test]
    fn manager_to_client(m in common::manager_to_client()) { round_trip(&m)?; }

    #[test]
    fn operator_to_rig(m in common::operator_to_rig()) { round_trip(&m)?; }

    #[test]
    fn rig_to_operator(m in common::rig_to_operator()) { round_trip(&m)?; }

    #[test]
    fn admin_to_manager(m in common::admin_to_manager()) { round_trip(&m)?; }

    #[test]
    fn manager_to_admin(m in common::manager_to_admin()) { round_trip(&m)?; }

    /// A sheet laid over itself is itself; an empty override changes nothing; the override's
    /// fields win.
    #[test]
    fn sheet_overlay(base in common::sheet_settings(), over in common::sheet_settings()) {
        use compushare_protocol::sheet::SheetSettings;
        prop_assert_eq!(&base.overlay(&SheetSettings::default()), &base);
        let merged = base.overlay(&over);
        prop_assert_eq!(merged.pools.as_ref(), over.pools.as_ref().or(base.pools.as_ref()));
        if over.payout.is_some() { prop_assert_eq!(merged.payout, over.payout); }
        if over.temp_limit_c.is_none() { prop_assert_eq!(merged.temp_limit_c, base.temp_limit_c); }
        for s in &over.extra { prop_assert!(merged.extra.contains(s)); }
    }

    /// The version of any Hello is readable without decoding the rest.
    #[test]
    fn hello_version_peek(m in common::rig_to_manager()) {
        let mut buf = vec![0u8; 70_000];
        let bytes = msg::encode(&m, &mut buf).unwrap();
        match &m {
            msg::RigToManager::Hello(h) => prop_assert_eq!(msg::peek_version(bytes), Ok(h.version)),
            _ => prop_assert_eq!(msg::peek_version(bytes), Err(msg::CodecError::NotHello)),
        }
    }
}

#[test]
fn every_message_fits_a_sealed_frame() {
    use compushare_protocol::msg::MaxSize;
    use compushare_protocol::msg::*;
    for (name, max) in [
        ("RigToManager", RigToManager::POSTCARD_MAX_SIZE),
        ("ManagerToRig", ManagerToRig::POSTCARD_MAX_SIZE),
        ("ClientToManager", ClientToManager::POSTCARD_MAX_SIZE),
        ("ManagerToClient", ManagerToClient::POSTCARD_MAX_SIZE),
        ("OperatorToRig", OperatorToRig::POSTCARD_MAX_SIZE),
        ("RigToOperator", RigToOperator::POSTCARD_MAX_SIZE),
        ("AdminToManager", AdminToManager::POSTCARD_MAX_SIZE),
        ("ManagerToAdmin", ManagerToAdmin::POSTCARD_MAX_SIZE),
    ] {
        assert!(max <= MAX_MESSAGE, "{name}: {max} > {MAX_MESSAGE}");
        println!("{name}: max {max} bytes");
    }
}

/// Variants added for rig records and ratings were appended: their postcard tags (the wire
/// format) follow every older variant, so older peers' messages keep their meaning.
#[test]
fn record_and_rating_variants_are_appended() {
    use compushare_protocol::msg::*;
    use compushare_protocol::types::AssignmentId;
    fn tag<M: Message>(m: &M) -> u8 {
        let mut buf = vec![0u8; 256];
        msg::encode(m, &mut buf).unwrap()[0]
    }
    assert_eq!(tag(&ClientToManager::RigRecord { rig: [1; 32] }), 6);
    assert_eq!(tag(&ManagerToClient::UnknownRig { rig: [1; 32] }), 8);
    let record = PublicRecord {
        key: [2; 32],
        rig: None,
        as_rig: RatingSummary::default(),
        as_client: RatingSummary { count: 1, sum: 5 },
    };
    assert_eq!(tag(&ManagerToClient::Record(record)), 7);
    let rate = RigToManager::RateClient {
        assignment: AssignmentId(3),
        stars: 4,
    };
    assert_eq!(tag(&rate), 11);
    let rated = ManagerToRig::Rated {
        assignment: AssignmentId(3),
        outcome: RatingOutcome::Replaced,
    };
    assert_eq!(tag(&rated), 12);
    // A record with a full standing still fits one sealed frame with room to spare.
    const { assert!(PublicRecord::POSTCARD_MAX_SIZE < 1024) };
}

/// The operator console's pair: `Refused` is variant 0 (frozen, readable by any version), a
/// Hello's version is readable before the rest, and the largest message is a full reply.
#[test]
fn operator_console_layout() {
    use compushare_protocol::limits::{CONSOLE_LINE, CONSOLE_REPLY};
    use compushare_protocol::msg::*;
    let mut buf = vec![0u8; RigToOperator::POSTCARD_MAX_SIZE];
    let refused = RigToOperator::Refused(Refusal::new(refusal::NOT_ALLOWED, "no"));
    assert_eq!(msg::encode(&refused, &mut buf).unwrap()[0], 0);
    let hello = OperatorToRig::Hello { version: 7 };
    let mut hbuf = [0u8; 16];
    assert_eq!(
        msg::peek_version(msg::encode(&hello, &mut hbuf).unwrap()),
        Ok(7)
    );
    const { assert!(OperatorToRig::POSTCARD_MAX_SIZE < CONSOLE_LINE + 16) };
    const { assert!(RigToOperator::POSTCARD_MAX_SIZE < CONSOLE_REPLY + 32) };
    // The frozen refusal decodes the same as the manager's (one layout for every door).
    let m = ManagerToRig::Refused(Refusal::new(refusal::NOT_ALLOWED, "no"));
    let mut mbuf = vec![0u8; 512];
    assert_eq!(
        msg::encode(&m, &mut mbuf).unwrap(),
        msg::encode(&refused, &mut buf).unwrap()
    );
}

/// Flight sheets (protocol version 2): the rig and manager variants are appended after every
/// older one, the admin family's `Refused` is variant 0 with the one frozen layout, and the
/// largest sizes are pinned so a change to them is a decision, not an accident.
#[test]
fn sheet_and_admin_layout() {
    use compushare_protocol::msg::*;
    use compushare_protocol::sheet::{FlightSheet, SheetSettings};
    fn tag<M: Message>(m: &M) -> u8 {
        let mut buf = vec![0u8; M::POSTCARD_MAX_SIZE];
        msg::encode(m, &mut buf).unwrap()[0]
    }
    assert_eq!(tag(&RigToManager::SheetApplied { version: 1 }), 12);
    assert_eq!(
        tag(&RigToManager::SheetRefused {
            version: 1,
            reason: Default::default()
        }),
        13
    );
    let sheet = FlightSheet {
        farm: Default::default(),
        version: 3,
        settings: SheetSettings::default(),
    };
    assert_eq!(tag(&ManagerToRig::Sheet(sheet)), 13);
    assert_eq!(tag(&ManagerToRig::CreditValue { credit_msat: 1 }), 14);
    let refused = ManagerToAdmin::Refused(Refusal::new(refusal::NOT_ALLOWED, "no"));
    let m = ManagerToRig::Refused(Refusal::new(refusal::NOT_ALLOWED, "no"));
    let (mut a, mut b) = (vec![0u8; 512], vec![0u8; 512]);
    assert_eq!(
        msg::encode(&refused, &mut a).unwrap(),
        msg::encode(&m, &mut b).unwrap()
    );
    let mut h = [0u8; 16];
    assert_eq!(
        msg::peek_version(
            msg::encode(
                &AdminToManager::Hello {
                    version: 2,
                    door: ADMIN_DOOR
                },
                &mut h
            )
            .unwrap()
        ),
        Ok(2)
    );
    // An admin Hello is not a client's, nor the other way round.
    let mut c = [0u8; 8];
    let client = msg::encode(&ClientToManager::Hello { version: 2 }, &mut c).unwrap();
    assert!(msg::decode::<AdminToManager>(client).is_err());
    let mut a = [0u8; 16];
    let admin = msg::encode(
        &AdminToManager::Hello {
            version: 2,
            door: ADMIN_DOOR,
        },
        &mut a,
    )
    .unwrap();
    assert!(msg::decode::<ClientToManager>(admin).is_err());
    // Pinned: a sheet with every field full, the messages that carry it, a page of rigs.
    assert_eq!(SheetSettings::POSTCARD_MAX_SIZE, 4265);
    assert_eq!(FlightSheet::POSTCARD_MAX_SIZE, 4324);
    assert_eq!(AdminToManager::POSTCARD_MAX_SIZE, 4348);
    assert_eq!(ManagerToAdmin::POSTCARD_MAX_SIZE, 11331);
    // A sheet is far from the frame limit: the chunk variants stay the largest messages.
    const { assert!(FlightSheet::POSTCARD_MAX_SIZE < ManagerToRig::POSTCARD_MAX_SIZE / 8) };
}
