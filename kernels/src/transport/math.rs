//! The kernel's own transcendental functions, built only from IEEE-754 operations that every
//! device rounds identically: `+ - * /`, comparisons and bit reinterpretation. No libm call,
//! so the CUDA port (compiled with `--fmad=false`) computes the same bits. No fused
//! multiply-add either: x86-64 baseline CPUs (what mining-rig hosts often are) have no FMA
//! instruction and Rust's software `mul_add` fallback made the photon loop 20 % slower.
//!
//! Accuracy (measured by the tests in this module against `f64` std over dense sweeps; ulp =
//! spacing of f32 at the exact value; measured maximum in brackets):
//! - [`exp`]: at most 1.5 ulp on `[-87.3, 88.7]` and on every f32 in `[-1, 0]` (1.19 ulp);
//!   returns `0` below `-87.33` (no subnormal results) and `+inf` above `88.72`.
//! - [`ln`]: at most 1 ulp for every positive finite f32, subnormals included (0.83 ulp);
//!   `ln(0)` is `-inf`, negative inputs give NaN.
//! - [`sincos_turns`]: `sin(2 pi u)` and `cos(2 pi u)` with absolute error at most `1.5e-7`
//!   (9.8e-8) for `u` in `[-4, 4]` (the kernel only passes `[0, 1)`), and at most 2 ulp
//!   (1.87 ulp) where the result exceeds `2^-10` in magnitude.
//! - [`neg_ln_1m`]: `-ln(1 - y)` within 2.5 ulp (2.38) on `[0, 1)`, sampled every 5e-7.
//! - [`cos`]: via `sincos_turns(x / 2 pi)`; absolute error at most `5e-7` (3.8e-7) for
//!   `|x| <= 2 pi` (set-up use only).
//!
//! The `*_bf` forms compute the same bits without branches (selects and bit operations), for
//! the photon-lane loops that the compiler vectorises; scalar code keeps the branching forms,
//! which are faster there.
//!
//! Rounding to an integer uses the `1.5 * 2^23` trick (round to nearest even), valid for
//! `|x| < 2^22`, instead of `f32::round`, whose tie rule differs from CUDA's `rintf`.

/// `1.5 * 2^23`: adding then subtracting it rounds an f32 of magnitude `< 2^22` to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

#[inline(always)]
fn round_even(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `k * LN2_HI` is exact for `|k| < 2^8`.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);

/// `e^x`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    if x < -87.33 {
        return 0.0;
    }
    if x > 88.72 {
        return f32::INFINITY;
    }
    if x.is_nan() {
        return x;
    }
    let k = round_even(x * LOG2_E);
    // Cody-Waite: k * LN2_HI is exact (LN2_HI has 9 trailing zero bits), so is x - k * LN2_HI.
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = exp_poly(r);
    let ki = k as i32;
    if ki > 127 {
        // x in (88.38, 88.72]: split the scale so the exponent field stays in range.
        return p * f32::from_bits(((ki - 1 + 127) as u32) << 23) * 2.0;
    }
    p * f32::from_bits(((ki + 127) as u32) << 23)
}

/// `e^r` for `|r| <= 0.347` (the reduced argument of [`exp`]): Taylor series to degree 7,
/// truncation < 5e-9 relative.
#[inline(always)]
fn exp_poly(r: f32) -> f32 {
    let mut p = r * (1.0 / 5040.0) + 1.0 / 720.0;
    p = r * p + 1.0 / 120.0;
    p = r * p + 1.0 / 24.0;
    p = r * p + 1.0 / 6.0;
    p = r * p + 0.5;
    p = r * p + 1.0;
    r * p + 1.0
}

const SQRT2: f32 = std::f32::consts::SQRT_2;

/// Natural logarithm.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i32 = -127;
    if bits < 0x0080_0000 {
        // Subnormal: scale by 2^23 exactly.
        bits = (x * 8_388_608.0).to_bits();
        e -= 23;
    }
    e += (bits >> 23) as i32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > SQRT2 {
        m *= 0.5;
        e += 1;
    }
    // m in (sqrt(1/2), sqrt(2)]; f = m - 1 is exact (Sterbenz).
    let f = m - 1.0;
    let (s, hfsq, r) = ln_kernel(f);
    let ef = e as f32;
    // fdlibm's arrangement: f - hfsq carries the big part, s*(hfsq+R) the small; e * LN2_HI is
    // exact (9 trailing zero bits, |e| < 2^8).
    ef * LN2_HI + (f - (hfsq - (s * (hfsq + r) + ef * LN2_LO)))
}

/// `-ln(1 - y)` for `y` in `[0, 1)`: a degree-5 series below `1/64` (truncation below
/// `1.1e-9` relative), the `ln` kernel on `1 + f` with `f = -y` exact up to `0.29`, [`ln`] of
/// `1 - y` above (where `1 - y` loses at most half an ulp of a number >= 0.5).
#[inline(always)]
pub fn neg_ln_1m(y: f32) -> f32 {
    if y < 1.0 / 64.0 {
        return neg_ln_1m_series(y);
    }
    if y < 0.29 {
        return -ln1p_kernel(-y);
    }
    -ln(1.0 - y)
}

/// `-ln(1 - y)` for `y < 1/64`: degree-5 series, truncation below `1.1e-9` relative.
#[inline(always)]
fn neg_ln_1m_series(y: f32) -> f32 {
    let mut p = y * (1.0 / 5.0) + 0.25;
    p = y * p + 1.0 / 3.0;
    p = y * p + 0.5;
    p = y * p + 1.0;
    y * p
}

/// `ln(1 + f)` for `f` in `[-0.2929, 0.4142]` (fdlibm's kernel, as in [`ln`] with `e = 0`).
#[inline(always)]
fn ln1p_kernel(f: f32) -> f32 {
    let (s, hfsq, r) = ln_kernel(f);
    f - (hfsq - s * (hfsq + r))
}

/// `pi / 2` split in two so that `r * (PIO2_HI + PIO2_LO)` keeps extra bits.
const PIO2_HI: f32 = std::f32::consts::FRAC_PI_2;
const PIO2_LO: f32 = -4.371_139e-8;

/// `(sin, cos)` of `r` quarter turns, `|r| <= 0.5`: odd and even Taylor polynomials in
/// `a = r * pi/2` (degree 9 and 10).
#[inline(always)]
fn sincos_quarter(r: f32) -> (f32, f32) {
    let a = r * PIO2_HI + r * PIO2_LO;
    let z = a * a;
    let mut sp = z * (1.0 / 362_880.0) - 1.0 / 5040.0;
    sp = z * sp + 1.0 / 120.0;
    sp = z * sp - 1.0 / 6.0;
    let s = (a * z) * sp + a;
    let mut cp = z * (-1.0 / 3_628_800.0) + 1.0 / 40_320.0;
    cp = z * cp - 1.0 / 720.0;
    cp = z * cp + 1.0 / 24.0;
    cp = z * cp - 0.5;
    (s, z * cp + 1.0)
}

/// `(sin(2 pi u), cos(2 pi u))`: angle given in turns, so no argument reduction by an
/// irrational is needed.
#[inline(always)]
pub fn sincos_turns(u: f32) -> (f32, f32) {
    let t = 4.0 * u;
    let q = round_even(t);
    // Exact: t and q are within 0.5 of each other.
    let r = t - q;
    let (s, c) = sincos_quarter(r);
    match (q as i32) & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// [`exp`], branch-free (selects only) so that a loop over photon lanes vectorises; the result is [`exp`]'s
/// bit for bit (tested on every 61st f32 and around every branch point).
#[inline(always)]
pub fn exp_bf(x: f32) -> f32 {
    // Evaluate on an in-range argument; out-of-range and NaN inputs are selected at the end.
    let xc = if (-87.33..=88.72).contains(&x) {
        x
    } else {
        0.0
    };
    // round_even, keeping the sum: its low bits are the integer (|k| < 2^22), which spares
    // the saturating float-to-int conversion that does not vectorise.
    let big = xc * LOG2_E + ROUND_MAGIC;
    let k = big - ROUND_MAGIC;
    let ki = big.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    // Cody-Waite: k * LN2_HI is exact (LN2_HI has 9 trailing zero bits), so is x - k * LN2_HI.
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let p = exp_poly(r);
    // x in (88.38, 88.72] gives k = 128: split the scale (2^127 * 2) so the exponent field
    // stays in range; multiplying by 1.0 otherwise is exact.
    let scale = f32::from_bits(((ki.min(127) + 127) as u32) << 23);
    let extra = if ki > 127 { 2.0 } else { 1.0 };
    let y = p * scale * extra;
    if x < -87.33 {
        0.0
    } else if x > 88.72 {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// `x = 2^e * (1 + f)` with `1 + f` in `(sqrt(1/2), sqrt(2)]`, for positive finite `x`
/// (subnormals included); garbage (to be selected away) otherwise.
#[inline(always)]
fn ln_reduce(x: f32) -> (f32, f32) {
    let sub = x.to_bits() < 0x0080_0000;
    // Subnormal: scale by 2^23 exactly.
    let bits = if sub { x * 8_388_608.0 } else { x }.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - if sub { 127 + 23 } else { 127 };
    let mbits = (bits & 0x007f_ffff) | 0x3f80_0000;
    let big = f32::from_bits(mbits) > SQRT2;
    // Halving m in (sqrt 2, 2) by decrementing its exponent is exact (same as m * 0.5).
    let m = f32::from_bits(mbits - (u32::from(big) << 23));
    e += i32::from(big);
    // m in (sqrt(1/2), sqrt(2)]; f = m - 1 is exact (Sterbenz).
    (m - 1.0, e as f32)
}

/// `(s, hfsq, R)` of fdlibm's `ln(1 + f)` kernel: `s = f / (2 + f)`, `hfsq = f^2 / 2`, and
/// `2 atanh(s) = 2s + s * R(z)` truncated after `z^4` (below 1e-9 relative).
#[inline(always)]
fn ln_kernel(f: f32) -> (f32, f32, f32) {
    let s = f / (2.0 + f);
    let z = s * s;
    let mut r = z * (2.0 / 9.0) + 2.0 / 7.0;
    r = z * r + 2.0 / 5.0;
    r = z * r + 2.0 / 3.0;
    r *= z;
    let hfsq = 0.5 * f * f;
    (s, hfsq, r)
}

/// [`ln`], branch-free (see [`exp_bf`]).
#[inline(always)]
pub fn ln_bf(x: f32) -> f32 {
    let (f, ef) = ln_reduce(x);
    let (s, hfsq, r) = ln_kernel(f);
    // fdlibm's arrangement: f - hfsq carries the big part, s*(hfsq+R) the small; e * LN2_HI is
    // exact (9 trailing zero bits, |e| < 2^8).
    let y = ef * LN2_HI + (f - (hfsq - (s * (hfsq + r) + ef * LN2_LO)));
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        x
    } else {
        y
    }
}

/// [`neg_ln_1m`], branch-free: the `ln` kernel runs once on the `f` of the range `y` is in.
#[inline(always)]
pub fn neg_ln_1m_bf(y: f32) -> f32 {
    let series = neg_ln_1m_series(y);
    let x = 1.0 - y;
    let (fl, ef) = ln_reduce(x);
    let mid = y < 0.29;
    let f = if mid { -y } else { fl };
    let (s, hfsq, r) = ln_kernel(f);
    let l1p = f - (hfsq - s * (hfsq + r));
    let lnx = ef * LN2_HI + (f - (hfsq - (s * (hfsq + r) + ef * LN2_LO)));
    // `ln` of `1 - y` for `y` >= 0.29 (1 - y is positive and normal there; special inputs as
    // `ln`: y = 1 gives +inf, y > 1 or NaN gives NaN).
    let top = if x == 0.0 {
        f32::INFINITY
    } else if x.is_nan() || x < 0.0 {
        f32::NAN
    } else {
        -lnx
    };
    if y < 1.0 / 64.0 {
        series
    } else if mid {
        -l1p
    } else {
        top
    }
}

/// [`sincos_turns`] for `|u| < 2^20` (where it is exact; the kernel passes `[0, 1)`),
/// branch-free: the quadrant swaps and negates by bit operations.
#[inline(always)]
pub fn sincos_turns_bf(u: f32) -> (f32, f32) {
    let t = 4.0 * u;
    let big = t + ROUND_MAGIC;
    let q = big - ROUND_MAGIC;
    // Exact: t and q are within 0.5 of each other.
    let r = t - q;
    let (s, c) = sincos_quarter(r);
    // Quadrant n: 0 (s, c), 1 (c, -s), 2 (-s, -c), 3 (-c, s). The low bits of `big` are q's
    // (for |t| < 2^22, where q is exact at all), without a float-to-int conversion.
    let n = big.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let swap = 0u32.wrapping_sub(n & 1);
    let (sb, cb) = (s.to_bits(), c.to_bits());
    let first = (sb & !swap) | (cb & swap);
    let second = (cb & !swap) | (sb & swap);
    let sign_first = (n & 2) << 30;
    let sign_second = (n.wrapping_add(1) & 2) << 30;
    (
        f32::from_bits(first ^ sign_first),
        f32::from_bits(second ^ sign_second),
    )
}

/// `cos(x)`, radians; for set-up (cone half angles), not the hot loop.
pub fn cos(x: f32) -> f32 {
    sincos_turns(x * (0.5 / std::f32::consts::PI)).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every 61st f32 bit pattern (both signs, specials, subnormals), plus dense runs where
    /// each function's branches switch.
    fn sweep() -> impl Iterator<Item = f32> {
        let specials = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1.0,
            -87.33,
            88.72,
            0.29,
            1.0 / 64.0,
            std::f32::consts::SQRT_2,
        ];
        let dense = |c: f32| {
            let b = c.to_bits();
            (b.saturating_sub(5000)..b + 5000).map(f32::from_bits)
        };
        (0..u32::MAX / 61)
            .map(|i| f32::from_bits(i * 61))
            .chain(specials)
            .chain(dense(87.33f32).map(|x| -x))
            .chain(dense(88.72))
            .chain(dense(88.38))
            .chain(dense(0.29))
            .chain(dense(1.0 / 64.0))
            .chain(dense(std::f32::consts::SQRT_2))
            .chain(dense(0.125))
            .chain(dense(0.25))
            .chain(dense(0.375))
    }

    #[test]
    fn branch_free_forms_equal_reference_bit_for_bit() {
        for x in sweep() {
            assert!(same(exp_bf(x), exp(x)), "exp({x:e})");
            assert!(same(ln_bf(x), ln(x)), "ln({x:e})");
            assert!(same(neg_ln_1m_bf(x), neg_ln_1m(x)), "neg_ln_1m({x:e})");
            if x.abs() < 1_048_576.0 {
                let (s, c) = sincos_turns_bf(x);
                let (rs, rc) = sincos_turns(x);
                assert!(same(s, rs) && same(c, rc), "sincos_turns({x:e})");
            }
        }
    }

    /// Error of `got` in units of the f32 spacing at the exact value.
    fn ulps(got: f32, exact: f64) -> f64 {
        let e = exact as f32;
        let ulp = if e == 0.0 {
            f64::from(f32::from_bits(1))
        } else {
            let b = e.abs().to_bits();
            f64::from(f32::from_bits(b + 1)) - f64::from(f32::from_bits(b))
        };
        (f64::from(got) - exact).abs() / ulp
    }

    #[test]
    fn exp_max_error_dense_sweep() {
        let mut worst = 0.0f64;
        let n = 2_000_000;
        for i in 0..=n {
            let x = -87.3f32 + (88.7 + 87.3) * (i as f32 / n as f32);
            let u = ulps(exp(x), f64::from(x).exp());
            worst = worst.max(u);
        }
        // Every f32 in the kernel's common range [-1, 0].
        let mut b = 0.0f32.to_bits();
        while b <= 1.0f32.to_bits() {
            let x = f32::from_bits(b | 0x8000_0000);
            worst = worst.max(ulps(exp(x), f64::from(x).exp()));
            b += 7;
        }
        eprintln!("exp worst {worst} ulp");
        assert!(worst <= 1.5, "exp worst {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
    }

    #[test]
    fn ln_max_error_dense_sweep() {
        let mut worst = 0.0f64;
        // Every 3rd f32 in [0.25, 4) plus a stride over all positive finite values.
        let mut b = 0.25f32.to_bits();
        while b < 4.0f32.to_bits() {
            let x = f32::from_bits(b);
            worst = worst.max(ulps(ln(x), f64::from(x).ln()));
            b += 3;
        }
        let mut b = 1u32;
        while b < f32::INFINITY.to_bits() {
            let x = f32::from_bits(b);
            worst = worst.max(ulps(ln(x), f64::from(x).ln()));
            b += 997;
        }
        eprintln!("ln worst {worst} ulp");
        assert!(worst <= 1.0, "ln worst {worst} ulp");
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
    }

    #[test]
    fn sincos_turns_max_error_dense_sweep() {
        let mut worst_abs = 0.0f64;
        let mut worst_ulp = 0.0f64;
        let n = 4_000_000;
        for i in 0..n {
            let u = -4.0f32 + 8.0 * (i as f32 / n as f32);
            let (s, c) = sincos_turns(u);
            let a = 2.0 * std::f64::consts::PI * f64::from(u);
            for (got, exact) in [(s, a.sin()), (c, a.cos())] {
                worst_abs = worst_abs.max((f64::from(got) - exact).abs());
                if exact.abs() > 1.0 / 1024.0 {
                    worst_ulp = worst_ulp.max(ulps(got, exact));
                }
            }
        }
        // The lattice the RNG produces: k * 2^-24.
        for k in (0..(1u32 << 24)).step_by(5) {
            let u = k as f32 / 16_777_216.0;
            let (s, c) = sincos_turns(u);
            let a = 2.0 * std::f64::consts::PI * f64::from(u);
            worst_abs = worst_abs.max((f64::from(s) - a.sin()).abs());
            worst_abs = worst_abs.max((f64::from(c) - a.cos()).abs());
        }
        eprintln!("sincos worst abs {worst_abs}, worst {worst_ulp} ulp");
        assert!(worst_abs <= 1.5e-7, "sincos worst abs {worst_abs}");
        assert!(worst_ulp <= 2.0, "sincos worst {worst_ulp} ulp");
    }

    #[test]
    fn neg_ln_1m_matches() {
        let mut worst = 0.0f64;
        for i in 0..2_000_000 {
            let y = i as f32 / 2_000_000.0;
            let exact = -(1.0 - f64::from(y)).ln();
            // Relative to the exact value: the argument 1 - y is itself rounded above 1/64.
            if y > 0.0 {
                worst = worst.max(ulps(neg_ln_1m(y), exact));
            }
        }
        eprintln!("neg_ln_1m worst {worst} ulp");
        assert!(worst <= 2.5, "neg_ln_1m worst {worst} ulp");
    }

    #[test]
    fn cos_radians() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let x = -std::f32::consts::TAU + 2.0 * std::f32::consts::TAU * (i as f32 / 1e5);
            worst = worst.max((f64::from(cos(x)) - f64::from(x).cos()).abs());
        }
        eprintln!("cos worst abs {worst}");
        assert!(worst <= 5e-7, "cos worst {worst}");
    }
}
