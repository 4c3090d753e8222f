//! Proptest strategies for every message type (shared by the round-trip and fuzz tests).
#![allow(dead_code)]

use compushare_protocol::chunk::Chunk;
use compushare_protocol::limits::*;
use compushare_protocol::msg::*;
use compushare_protocol::types::*;
use heapless::{String, Vec};
use proptest::collection::vec;
use proptest::prelude::*;

pub fn hstr<const N: usize>() -> impl Strategy<Value = String<N>> {
    prop_oneof!["\\PC{0,24}", "[a-z0-9 ._-]{0,200}"].prop_map(|s: std::string::String| {
        let mut h = String::new();
        for c in s.chars() {
            if h.push(c).is_err() {
                break;
            }
        }
        h
    })
}

pub fn hvec<T: core::fmt::Debug + Clone, const N: usize>(
    s: impl Strategy<Value = T>,
    max: usize,
) -> impl Strategy<Value = Vec<T, N>> {
    vec(s, 0..=max.min(N)).prop_map(|v| v.into_iter().collect())
}

pub fn key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

/// Chunk data: small random bytes, or a full 60 KiB chunk filled from a seed (fast to make).
pub fn chunk() -> impl Strategy<Value = Chunk> {
    let data = prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(|v| Vec::from_slice(&v).unwrap_or_default()),
        (0..=CHUNK_DATA, any::<u8>())
            .prop_map(|(n, seed)| { (0..n).map(|i| (i as u8).wrapping_mul(seed | 1)).collect() }),
    ];
    (key(), any::<u32>(), any::<u32>(), data).prop_map(|(content, total_len, offset, data)| Chunk {
        content,
        total_len,
        offset,
        data,
    })
}

fn device_kind() -> impl Strategy<Value = DeviceKind> {
    prop_oneof![Just(DeviceKind::Cpu), Just(DeviceKind::CudaGpu)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Auto),
        Just(Role::Mine),
        Just(Role::Transport),
        Just(Role::Off)
    ]
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    (
        any::<u8>(),
        device_kind(),
        hstr(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(index, kind, name, compute_units, cores, memory, hash_rate, histories_per_s)| {
                DeviceInfo {
                    index,
                    kind,
                    name,
                    compute_units,
                    cores,
                    memory,
                    hash_rate,
                    histories_per_s,
                }
            },
        )
}

pub fn device_status() -> impl Strategy<Value = DeviceStatus> {
    (
        any::<u8>(),
        role(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<i16>>(),
        any::<Option<u16>>(),
    )
        .prop_map(
            |(index, role, hash_rate, histories_per_s, temperature_dc, power_w)| DeviceStatus {
                index,
                role,
                hash_rate,
                histories_per_s,
                temperature_dc,
                power_w,
            },
        )
}

pub fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (
        any::<u64>(),
        hvec(device_status(), MAX_DEVICES),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(uptime_s, devices, vault_used, vault_slots)| Heartbeat {
            uptime_s,
            devices,
            vault_used,
            vault_slots,
        })
}

fn reject_reason() -> impl Strategy<Value = RejectReason> {
    prop_oneof![
        Just(RejectReason::Busy),
        Just(RejectReason::NoSuchDevice),
        Just(RejectReason::OutOfMemory),
        Just(RejectReason::Unsupported),
        Just(RejectReason::PriceTooLow),
        Just(RejectReason::VaultFull),
    ]
}

fn refusal() -> impl Strategy<Value = Refusal> {
    (any::<u16>(), any::<u16>(), any::<u16>(), hstr()).prop_map(
        |(code, min_version, max_version, reason)| Refusal {
            code,
            min_version,
            max_version,
            reason,
        },
    )
}

fn proof() -> impl Strategy<Value = HistoryProof> {
    (
        any::<u64>(),
        hvec(any::<u8>(), HISTORY_RECORD),
        hvec(key(), MERKLE_DEPTH),
    )
        .prop_map(|(photon, record, path)| HistoryProof {
            photon,
            record,
            path,
        })
}

pub fn rig_to_manager() -> impl Strategy<Value = RigToManager> {
    let id = any::<u64>().prop_map(AssignmentId);
    prop_oneof![
        (
            any::<u16>(),
            hstr(),
            hstr(),
            key(),
            hvec(device_info(), MAX_DEVICES),
            proptest::option::of(key()),
            any::<Option<u64>>(),
        )
            .prop_map(|(version, firmware, name, payout, devices, farm, sheet)| {
                RigToManager::Hello(RigHello {
                    version,
                    firmware,
                    name,
                    payout,
                    devices,
                    farm,
                    sheet,
                })
            }),
        heartbeat().prop_map(RigToManager::Heartbeat),
        (
            any::<u64>(),
            any::<u8>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(j, device, cores, h, p)| {
                RigToManager::Bid(Bid {
                    job: JobId(j),
                    device,
                    cores,
                    histories_per_s: h,
                    min_price: Amount(p),
                })
            }),
        id.clone()
            .prop_map(|assignment| RigToManager::AssignmentAccepted { assignment }),
        (id.clone(), reject_reason()).prop_map(|(assignment, reason)| {
            RigToManager::AssignmentRejected { assignment, reason }
        }),
        (
            id.clone(),
            any::<u64>(),
            key(),
            key(),
            key(),
            any::<u32>(),
            any::<[u64; 3]>()
        )
            .prop_map(
                |(assignment, histories, tally, merkle_root, sealed, sealed_len, s)| {
                    RigToManager::ResultCommit(ResultCommit {
                        assignment,
                        histories,
                        tally,
                        merkle_root,
                        sealed,
                        sealed_len,
                        stats: CostStats {
                            elapsed_ms: s[0],
                            voxel_steps: s[1],
                            scatters: s[2],
                        },
                    })
                }
            ),
        chunk().prop_map(RigToManager::ResultChunk),
        (id.clone(), hvec(proof(), PROOFS_PER_MESSAGE)).prop_map(|(assignment, proofs)| {
            RigToManager::SampleProof(SampleProof { assignment, proofs })
        }),
        (key(), hvec(id, CLAIMS_PER_MESSAGE)).prop_map(|(payout, assignments)| {
            RigToManager::PaymentClaim(PaymentClaim {
                payout,
                assignments,
            })
        }),
        (any::<u32>(), any::<bool>(), hstr()).prop_map(|(request, ok, text)| {
            RigToManager::ConsoleReply(ConsoleReply { request, ok, text })
        }),
        key().prop_map(|content| RigToManager::GeometryRequest { content }),
        (any::<u64>().prop_map(AssignmentId), any::<u8>())
            .prop_map(|(assignment, stars)| RigToManager::RateClient { assignment, stars }),
        any::<u64>().prop_map(|version| RigToManager::SheetApplied { version }),
        (any::<u64>(), hstr())
            .prop_map(|(version, reason)| RigToManager::SheetRefused { version, reason }),
    ]
}

fn sheet_pool() -> impl Strategy<Value = compushare_protocol::sheet::SheetPool> {
    (hstr(), hstr(), hstr()).prop_map(|(url, user, pass)| compushare_protocol::sheet::SheetPool {
        url,
        user,
        pass,
    })
}

fn setting() -> impl Strategy<Value = compushare_protocol::sheet::Setting> {
    (hstr(), hstr()).prop_map(|(key, value)| compushare_protocol::sheet::Setting { key, value })
}

/// Sheets from empty to every field at its capacity.
pub fn sheet_settings() -> impl Strategy<Value = compushare_protocol::sheet::SheetSettings> {
    use proptest::option::of;
    (
        of(hvec(sheet_pool(), SHEET_POOLS)),
        of(key()),
        of(hvec(role(), MAX_DEVICES)),
        any::<(Option<u32>, Option<u64>, Option<u32>, Option<u32>)>(),
        of(hvec(key(), SHEET_CONSOLE_KEYS)),
        any::<(Option<u8>, Option<u8>)>(),
        hvec(setting(), SHEET_EXTRA),
    )
        .prop_map(|(pools, payout, roles, n, console_keys, t, extra)| {
            compushare_protocol::sheet::SheetSettings {
                pools,
                payout,
                roles,
                switch_margin_ppm: n.0,
                min_price: n.1.map(Amount),
                console_keys,
                watchdog_sick_s: n.2,
                watchdog_dead_s: n.3,
                temp_limit_c: t.0,
                temp_resume_c: t.1,
                extra,
            }
        })
}

pub fn admin_to_manager() -> impl Strategy<Value = AdminToManager> {
    use proptest::option::of;
    prop_oneof![
        (any::<u16>(), any::<[u8; 8]>())
            .prop_map(|(version, door)| AdminToManager::Hello { version, door }),
        hstr().prop_map(|name| AdminToManager::FarmCreate { name }),
        Just(AdminToManager::Farms),
        hstr().prop_map(|farm| AdminToManager::SheetGet { farm }),
        (hstr(), sheet_settings())
            .prop_map(|(farm, settings)| AdminToManager::SheetSet { farm, settings }),
        (hstr(), key(), of(sheet_settings())).prop_map(|(farm, rig, settings)| {
            AdminToManager::OverrideSet {
                farm,
                rig,
                settings,
            }
        }),
        (of(hstr()), of(key())).prop_map(|(farm, after)| AdminToManager::Rigs { farm, after }),
        (key(), any::<u64>()).prop_map(|(account, a)| AdminToManager::Grant {
            account,
            amount: Amount(a)
        }),
        (key(), any::<Option<u8>>(), role()).prop_map(|(rig, device, role)| AdminToManager::Role {
            rig,
            device,
            role
        }),
        (key(), hstr()).prop_map(|(rig, line)| AdminToManager::Console { rig, line }),
        (key(), of(hstr())).prop_map(|(key, farm)| AdminToManager::OperatorAdd { key, farm }),
        key().prop_map(|key| AdminToManager::OperatorRemove { key }),
        any::<u64>().prop_map(|from| AdminToManager::Audit { from }),
        (
            of(job_filter()),
            of(key()),
            of(any::<u64>().prop_map(JobId))
        )
            .prop_map(|(state, client, after)| AdminToManager::Jobs {
                state,
                client,
                after
            }),
        any::<u64>().prop_map(|j| AdminToManager::JobCancel { job: JobId(j) }),
        Just(AdminToManager::Ledger),
        Just(AdminToManager::Settings),
        any::<(Option<u32>, Option<u64>, Option<u64>)>().prop_map(|(f, p, c)| {
            AdminToManager::SettingsSet(compushare_protocol::msg::SettingsChange {
                fee_bp: f,
                price_per_unit: p.map(Amount),
                credit_msat: c,
            })
        }),
    ]
}

fn job_state() -> impl Strategy<Value = JobState> {
    prop_oneof![
        Just(JobState::Queued),
        Just(JobState::Running),
        Just(JobState::Verifying),
        Just(JobState::Done),
        Just(JobState::Failed),
        Just(JobState::Cancelled)
    ]
}

fn job_filter() -> impl Strategy<Value = compushare_protocol::msg::JobFilter> {
    use compushare_protocol::msg::JobFilter;
    prop_oneof![
        Just(JobFilter::Open),
        Just(JobFilter::Done),
        Just(JobFilter::Cancelled)
    ]
}

fn job_summary() -> impl Strategy<Value = compushare_protocol::msg::JobSummary> {
    let state = job_state();
    (
        key(),
        state,
        any::<(u64, u64, u64, u64, u64)>(),
        any::<(u64, u64, u64)>(),
    )
        .prop_map(
            |(client, state, n, m)| compushare_protocol::msg::JobSummary {
                job: JobId(n.0),
                client,
                state,
                photons_done: n.1,
                photons_total: n.2,
                escrow: Amount(n.3),
                spent: Amount(n.4),
                price_per_history: Amount(m.0),
                fee_bp: m.1,
                submitted_unix_s: m.2,
            },
        )
}

fn admin_error() -> impl Strategy<Value = AdminError> {
    prop_oneof![
        Just(AdminError::NotAllowed),
        Just(AdminError::UnknownFarm),
        Just(AdminError::FarmExists),
        Just(AdminError::UnknownRig),
        Just(AdminError::RigOffline),
        Just(AdminError::Timeout),
        Just(AdminError::BadSheet),
        Just(AdminError::BadRequest),
        Just(AdminError::Protocol),
        Just(AdminError::Internal),
        Just(AdminError::UnknownJob),
        Just(AdminError::JobEnded),
    ]
}

fn sheet_state() -> impl Strategy<Value = SheetState> {
    prop_oneof![
        Just(SheetState::None),
        any::<u64>().prop_map(|version| SheetState::Pushed { version }),
        any::<u64>().prop_map(|version| SheetState::Applied { version }),
        (any::<u64>(), hstr())
            .prop_map(|(version, reason)| SheetState::Refused { version, reason }),
    ]
}

fn rig_summary() -> impl Strategy<Value = RigSummary> {
    let trust = prop_oneof![Just(TrustLevel::Untrusted), Just(TrustLevel::Trusted)];
    (
        key(),
        hstr(),
        proptest::option::of(hstr()),
        any::<(bool, u64, u64)>(),
        hstr(),
        trust,
        sheet_state(),
        hvec(device_status(), MAX_DEVICES),
    )
        .prop_map(
            |(key, name, farm, n, firmware, trust, sheet, devices)| RigSummary {
                key,
                name,
                farm,
                online: n.0,
                last_seen_unix_s: n.1,
                firmware,
                trust,
                earned: Amount(n.2),
                sheet,
                devices,
            },
        )
}

pub fn manager_to_admin() -> impl Strategy<Value = ManagerToAdmin> {
    let scope = prop_oneof![Just(Scope::Node), hstr().prop_map(Scope::Farm)];
    let farm = (hstr(), any::<(u64, u32, u32)>()).prop_map(|(name, n)| FarmSummary {
        name,
        version: n.0,
        rigs: n.1,
        online: n.2,
    });
    let audit = (any::<(u64, u64, bool)>(), key(), hstr(), hstr()).prop_map(
        |(n, operator, request, outcome)| AuditRecord {
            seq: n.0,
            at_unix_s: n.1,
            operator,
            request,
            allowed: n.2,
            outcome,
        },
    );
    prop_oneof![
        refusal().prop_map(ManagerToAdmin::Refused),
        (any::<u16>(), scope)
            .prop_map(|(version, scope)| ManagerToAdmin::Welcome { version, scope }),
        (admin_error(), hstr()).prop_map(|(code, message)| ManagerToAdmin::Error { code, message }),
        (hstr(), key()).prop_map(|(farm, key)| ManagerToAdmin::FarmCreated { farm, key }),
        hvec(farm, FARMS_PER_PAGE).prop_map(|farms| ManagerToAdmin::Farms { farms }),
        (hstr(), any::<u64>(), sheet_settings(), any::<u32>()).prop_map(
            |(farm, version, settings, overrides)| ManagerToAdmin::Sheet {
                farm,
                version,
                settings,
                overrides
            }
        ),
        (hstr(), any::<u64>(), any::<u32>()).prop_map(|(farm, version, pushed)| {
            ManagerToAdmin::SheetStored {
                farm,
                version,
                pushed,
            }
        }),
        (hvec(rig_summary(), RIGS_PER_PAGE), any::<bool>())
            .prop_map(|(rigs, more)| ManagerToAdmin::Rigs { rigs, more }),
        (key(), any::<i64>())
            .prop_map(|(account, balance)| ManagerToAdmin::Granted { account, balance }),
        hstr().prop_map(|message| ManagerToAdmin::Done { message }),
        (any::<u32>(), any::<bool>(), hstr()).prop_map(|(request, ok, text)| {
            ManagerToAdmin::ConsoleReply(ConsoleReply { request, ok, text })
        }),
        (hvec(audit, AUDIT_PER_PAGE), any::<u64>(), any::<bool>()).prop_map(
            |(records, next, more)| ManagerToAdmin::Audit {
                records,
                next,
                more
            }
        ),
        (hvec(job_summary(), JOBS_PER_PAGE), any::<bool>())
            .prop_map(|(jobs, more)| ManagerToAdmin::Jobs { jobs, more }),
        any::<(u64, u64, u64, u64)>().prop_map(|n| ManagerToAdmin::JobCancelled {
            job: JobId(n.0),
            paid: Amount(n.1),
            fee: Amount(n.2),
            refund: Amount(n.3),
        }),
        (any::<(u64, [u8; 32], bool)>(), hstr(), any::<[u64; 9]>()).prop_map(|(h, fault, t)| {
            ManagerToAdmin::Ledger(compushare_protocol::msg::LedgerReport {
                entries: h.0,
                head: h.1,
                verified: h.2,
                fault,
                granted: t[0],
                clients: t[1],
                escrow: t[2],
                pending: t[3],
                spendable: t[4],
                fees: t[5],
                paid: t[6],
                refunded: t[7],
                forfeited: t[8],
            })
        }),
        any::<(u32, u64, u64)>().prop_map(|(f, p, c)| {
            ManagerToAdmin::Settings(compushare_protocol::msg::NodeSettings {
                fee_bp: f,
                price_per_unit: Amount(p),
                credit_msat: c,
            })
        }),
    ]
}

pub fn manager_to_rig() -> impl Strategy<Value = ManagerToRig> {
    let id = any::<u64>().prop_map(AssignmentId);
    let trust = prop_oneof![Just(TrustLevel::Untrusted), Just(TrustLevel::Trusted)];
    let ack = prop_oneof![
        Just(AckStatus::Received),
        Just(AckStatus::Verified),
        Just(AckStatus::Failed),
        Just(AckStatus::Unknown)
    ];
    prop_oneof![
        refusal().prop_map(ManagerToRig::Refused),
        (any::<u16>(), trust, hstr(), any::<u16>(), any::<u64>()).prop_map(
            |(version, trust, label, heartbeat_s, credit_msat)| {
                ManagerToRig::Welcome(Welcome {
                    version,
                    trust,
                    label,
                    heartbeat_s,
                    credit_msat,
                })
            }
        ),
        (any::<u64>(), any::<u32>()).prop_map(|(p, valid_for_s)| ManagerToRig::PriceAnnounce {
            price_per_unit: Amount(p),
            valid_for_s
        }),
        (
            id.clone(),
            any::<u64>(),
            any::<u8>(),
            key(),
            any::<u32>(),
            any::<[u64; 5]>()
        )
            .prop_map(|(assignment, job, device, geometry, geometry_len, n)| {
                ManagerToRig::Assign(Assign {
                    assignment,
                    job: JobId(job),
                    device,
                    geometry,
                    geometry_len,
                    seed: n[0],
                    photons: PhotonRange {
                        start: n[1],
                        count: n[2],
                    },
                    deadline_unix_s: n[3],
                    payout: Amount(n[4]),
                })
            }),
        chunk().prop_map(ManagerToRig::GeometryChunk),
        (id.clone(), hvec(any::<u64>(), SAMPLES_PER_REQUEST)).prop_map(|(assignment, photons)| {
            ManagerToRig::SampleRequest {
                assignment,
                photons,
            }
        }),
        (id.clone(), ack).prop_map(|(assignment, status)| ManagerToRig::Ack { assignment, status }),
        (any::<Option<u8>>(), role())
            .prop_map(|(device, role)| ManagerToRig::RoleCommand { device, role }),
        (id.clone(), any::<u64>(), any::<bool>()).prop_map(|(assignment, a, spendable)| {
            ManagerToRig::PaymentNotice {
                assignment,
                amount: Amount(a),
                spendable,
            }
        }),
        (any::<u32>(), hstr())
            .prop_map(|(request, line)| ManagerToRig::ConsoleCommand { request, line }),
        id.prop_map(|assignment| ManagerToRig::Cancel { assignment }),
        (any::<u64>(), any::<[u64; 3]>(), key(), any::<u32>()).prop_map(
            |(job, n, geometry, geometry_len)| {
                ManagerToRig::Offer(Offer {
                    job: JobId(job),
                    cost_per_history_milli: n[0],
                    price_per_unit: Amount(n[1]),
                    geometry,
                    geometry_len,
                    photons_left: n[2],
                })
            }
        ),
        (any::<u64>().prop_map(AssignmentId), rating_outcome()).prop_map(
            |(assignment, outcome)| ManagerToRig::Rated {
                assignment,
                outcome
            }
        ),
        (hstr(), any::<u64>(), sheet_settings()).prop_map(|(farm, version, settings)| {
            ManagerToRig::Sheet(compushare_protocol::sheet::FlightSheet {
                farm,
                version,
                settings,
            })
        }),
        any::<u64>().prop_map(|credit_msat| ManagerToRig::CreditValue { credit_msat }),
    ]
}

fn rating_outcome() -> impl Strategy<Value = RatingOutcome> {
    prop_oneof![
        Just(RatingOutcome::Recorded),
        Just(RatingOutcome::Replaced),
        Just(RatingOutcome::NotYourWork),
        Just(RatingOutcome::BadStars),
        Just(RatingOutcome::NotRecorded)
    ]
}

fn rating() -> impl Strategy<Value = RatingSummary> {
    any::<[u64; 2]>().prop_map(|[count, sum]| RatingSummary { count, sum })
}

fn trust_event() -> impl Strategy<Value = TrustEvent> {
    let error = prop_oneof![
        Just(RigErrorKind::SampleMismatch),
        Just(RigErrorKind::BadProof),
        Just(RigErrorKind::DuplicateMismatch),
        Just(RigErrorKind::BadResult)
    ];
    let id = any::<u64>().prop_map(AssignmentId);
    let kind = prop_oneof![
        Just(TrustEventKind::Joined),
        Just(TrustEventKind::Promoted),
        (error, proptest::option::of(id.clone()))
            .prop_map(|(kind, assignment)| TrustEventKind::Error { kind, assignment }),
        id.prop_map(|assignment| TrustEventKind::Late { assignment }),
    ];
    (any::<u64>(), kind).prop_map(|(time_unix_s, kind)| TrustEvent { time_unix_s, kind })
}

fn rig_standing() -> impl Strategy<Value = RigStanding> {
    let trust = prop_oneof![Just(TrustLevel::Untrusted), Just(TrustLevel::Trusted)];
    (
        hstr(),
        trust,
        any::<[u64; 9]>(),
        any::<[Option<u64>; 4]>(),
        hvec(trust_event(), RECORD_EVENTS),
    )
        .prop_map(|(label, trust, n, r, events)| RigStanding {
            label,
            trust,
            histories_verified: n[0],
            consecutive_verified: n[1],
            errors: ErrorCounts {
                verification: n[2],
                late: n[3],
                demotions: n[4],
            },
            returns: ReturnStats {
                count: n[5],
                recent_ns_per_unit: r[0],
                mean_ns_per_unit: r[1],
                min_ns_per_unit: r[2],
                max_ns_per_unit: r[3],
            },
            events,
            paid: Amount(n[6]),
            forfeited: Amount(n[7] ^ n[8]),
        })
}

pub fn public_record() -> impl Strategy<Value = PublicRecord> {
    (
        key(),
        proptest::option::of(rig_standing()),
        rating(),
        rating(),
    )
        .prop_map(|(key, rig, as_rig, as_client)| PublicRecord {
            key,
            rig,
            as_rig,
            as_client,
        })
}

pub fn client_to_manager() -> impl Strategy<Value = ClientToManager> {
    let job = any::<u64>().prop_map(JobId);
    let mode = prop_oneof![Just(Mode::Cheapest), Just(Mode::Fastest)];
    prop_oneof![
        any::<u16>().prop_map(|version| ClientToManager::Hello { version }),
        (
            key(),
            any::<u32>(),
            any::<u64>(),
            any::<Option<u64>>(),
            mode,
            any::<u64>()
        )
            .prop_map(|(input, input_len, photons, seed, mode, max)| {
                ClientToManager::SubmitJob(SubmitJob {
                    input,
                    input_len,
                    photons,
                    seed,
                    mode,
                    max_price: Amount(max),
                })
            }),
        chunk().prop_map(ClientToManager::JobData),
        job.clone()
            .prop_map(|job| ClientToManager::JobStatus { job }),
        job.clone()
            .prop_map(|job| ClientToManager::FetchResult { job }),
        (job, key(), any::<u8>()).prop_map(|(job, rig, stars)| ClientToManager::Rate {
            job,
            rig,
            stars
        }),
        key().prop_map(|rig| ClientToManager::RigRecord { rig }),
    ]
}

pub fn manager_to_client() -> impl Strategy<Value = ManagerToClient> {
    let job = any::<u64>().prop_map(JobId);
    let state = job_state();
    let code = prop_oneof![
        Just(ErrorCode::BadJob),
        Just(ErrorCode::InsufficientFunds),
        Just(ErrorCode::TooExpensive),
        Just(ErrorCode::UnknownJob),
        Just(ErrorCode::NotReady),
        Just(ErrorCode::Protocol),
        Just(ErrorCode::Internal)
    ];
    prop_oneof![
        refusal().prop_map(ManagerToClient::Refused),
        any::<u16>().prop_map(|version| ManagerToClient::Welcome { version }),
        (job.clone(), any::<u64>(), any::<u64>()).prop_map(|(job, p, e)| {
            ManagerToClient::JobAccepted {
                job,
                price_per_history: Amount(p),
                escrowed: Amount(e),
            }
        }),
        (
            job.clone(),
            state,
            any::<[u64; 3]>(),
            hvec(key(), MAX_DEVICES)
        )
            .prop_map(|(job, state, n, rigs)| {
                ManagerToClient::JobStatus(JobStatus {
                    job,
                    state,
                    photons_done: n[0],
                    photons_total: n[1],
                    spent: Amount(n[2]),
                    rigs,
                })
            }),
        (job, key(), any::<u32>()).prop_map(|(job, content, len)| ManagerToClient::ResultReady {
            job,
            content,
            len
        }),
        chunk().prop_map(ManagerToClient::ResultChunk),
        (code, hstr()).prop_map(|(code, message)| ManagerToClient::Error { code, message }),
        public_record().prop_map(ManagerToClient::Record),
        key().prop_map(|rig| ManagerToClient::UnknownRig { rig }),
    ]
}

pub fn operator_to_rig() -> impl Strategy<Value = OperatorToRig> {
    prop_oneof![
        any::<u16>().prop_map(|version| OperatorToRig::Hello { version }),
        (any::<u32>(), hstr::<CONSOLE_LINE>())
            .prop_map(|(request, text)| OperatorToRig::Line { request, text }),
    ]
}

pub fn rig_to_operator() -> impl Strategy<Value = RigToOperator> {
    prop_oneof![
        refusal().prop_map(RigToOperator::Refused),
        (
            any::<u16>(),
            hstr::<NAME_LEN>(),
            hstr::<FIRMWARE_LEN>(),
            key()
        )
            .prop_map(|(version, name, firmware, key)| RigToOperator::Welcome(
                OperatorWelcome {
                    version,
                    name,
                    firmware,
                    key
                }
            )),
        (any::<u32>(), any::<bool>(), hstr::<CONSOLE_REPLY>()).prop_map(|(request, ok, text)| {
            RigToOperator::Reply(ConsoleReply { request, ok, text })
        }),
    ]
}
