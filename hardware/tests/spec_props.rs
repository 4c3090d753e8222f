//! `--device` parsing survives arbitrary input: never panics, and every value it accepts
//! prints back to a string that parses to the same device.

use compushare_hardware::DeviceSpec;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,40}") {
        if let Ok(spec) = s.parse::<DeviceSpec>() {
            prop_assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
        }
    }

    #[test]
    fn near_misses_never_panic(prefix in "(cuda|cpu|CUDA|gpu)?:?", n in any::<u64>(), tail in "[0-9a-z+-]{0,4}") {
        let s = format!("{prefix}{n}{tail}");
        let _ = s.parse::<DeviceSpec>();
    }

    #[test]
    fn every_index_round_trips(k in any::<u32>()) {
        prop_assert_eq!(format!("cuda:{k}").parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(k)));
    }
}
