//! TEST DOUBLE of a dishonest rig: a CPU device that makes up a given fraction of the
//! histories it is paid for instead of simulating them (plausible records and tally
//! contributions, no physics), and makes up the same ones again when asked for proofs. The
//! management node's cheater tests run real rigs on it; the firmware never sees this type
//! except as one more [`Device`].

use std::ops::Range;

use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::{
    Device, DeviceDescription, DeviceError, LoadedJob, Output, Scan, TransportOutput,
};
use compushare_hardware::Telemetry;
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally::{Tally, WEIGHT_ONE};
use compushare_kernels::transport::{Fate, PhotonRecord};
use sha2::{Digest as _, Sha256};

/// Which histories a dishonest rig makes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fabricate {
    /// Fabricated histories per million.
    pub per_million: u32,
    /// Varies which histories are fabricated.
    pub salt: u64,
}

impl Fabricate {
    /// Whether photon `index` is one this dishonest rig makes up.
    pub fn fabricates(&self, index: u64) -> bool {
        if self.per_million == 0 {
            return false;
        }
        let h = Sha256::new()
            .chain_update(self.salt.to_le_bytes())
            .chain_update(index.to_le_bytes())
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        u64::from_le_bytes(b) % 1_000_000 < u64::from(self.per_million)
    }

    /// A plausible made-up record: the photon went straight through and left by -z.
    fn record(index: u64) -> PhotonRecord {
        PhotonRecord {
            index,
            fate: Fate::Escaped { face: 4 },
            launched: WEIGHT_ONE,
            specular: 0,
            deposited: 0,
            exit_weight: WEIGHT_ONE,
            roulette_gain: 0,
            scatters: 3,
            end_gate: 0,
            detector: None,
        }
    }
}

/// A CPU device that fabricates.
pub struct FabricatingDevice {
    inner: CpuDevice,
    fab: Fabricate,
}

impl FabricatingDevice {
    /// CPU device `index` of `cores` cores that fabricates as `fab` says.
    pub fn new(index: usize, cores: usize, fab: Fabricate) -> FabricatingDevice {
        let cpu = compushare_hardware::cpu_device();
        FabricatingDevice {
            inner: CpuDevice::new(index, cores, cpu.memory_bytes, &cpu.name),
            fab,
        }
    }
}

impl Device for FabricatingDevice {
    fn describe(&self) -> &DeviceDescription {
        self.inner.describe()
    }

    fn telemetry(&self) -> Telemetry {
        self.inner.telemetry()
    }

    fn scan(&self, s: Scan<'_>) -> Result<u64, DeviceError> {
        self.inner.scan(s)
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        Ok(Box::new(FabJob {
            inner: self.inner.load(job)?,
            fab: self.fab,
        }))
    }
}

struct FabJob<'j> {
    inner: Box<dyn LoadedJob + 'j>,
    fab: Fabricate,
}

impl LoadedJob for FabJob<'_> {
    fn run(&mut self, photons: Range<u64>, output: Output) -> Result<TransportOutput, DeviceError> {
        if self.fab.per_million == 0 || output == Output::Tally {
            return self.inner.run(photons, output);
        }
        let records_only = output == Output::RecordsOnly;
        // Runs of honest photons are simulated; fabricated ones get made-up records and add
        // their made-up weight to the tally (escaped through -z).
        let mut tally: Option<Tally> = None;
        let mut records = Vec::new();
        let mut fake = Tally::default();
        let mut run_start = photons.start;
        let mut flush = |from: u64,
                         to: u64,
                         tally: &mut Option<Tally>,
                         records: &mut Vec<PhotonRecord>|
         -> Result<(), DeviceError> {
            if from >= to {
                return Ok(());
            }
            let out = self.inner.run(from..to, output)?;
            if let Some(t) = out.tally {
                match tally {
                    Some(acc) => acc.merge(&t)?,
                    None => *tally = Some(t),
                }
            }
            records.extend(out.records);
            Ok(())
        };
        for i in photons.clone() {
            if self.fab.fabricates(i) {
                flush(run_start, i, &mut tally, &mut records)?;
                let rec = Fabricate::record(i);
                fake.photons += 1;
                fake.launched += rec.launched;
                fake.escaped[4] += rec.exit_weight;
                records.push(rec);
                run_start = i + 1;
            }
        }
        flush(run_start, photons.end, &mut tally, &mut records)?;
        if records_only {
            return Ok(TransportOutput {
                tally: None,
                records,
            });
        }
        let mut tally = match tally {
            Some(t) => t,
            // Everything fabricated: still one (empty) run for the tally's shape.
            None => self
                .inner
                .run(photons.start..photons.start, Output::Tally)?
                .tally
                .unwrap_or_default(),
        };
        fake.deposit = vec![0; tally.deposit.len()];
        tally.merge(&fake)?;
        Ok(TransportOutput {
            tally: Some(tally),
            records,
        })
    }
}
