//! Micro-costs of the photon loop's building blocks on this machine (ns per call).

use compushare_kernels::transport::math;
use compushare_kernels::transport::rng::PhotonRng;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n = 20_000_000u32;
    let mut r = PhotonRng::new(1, 2);
    let t = Instant::now();
    let mut acc = 0u32;
    for _ in 0..n {
        acc ^= r.next_u32();
    }
    black_box(acc);
    println!(
        "rng word {:.2} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
    let t = Instant::now();
    let mut s = 0.0f32;
    for i in 0..n {
        s += math::ln(black_box(i as f32 * 1e-7 + 1e-9));
    }
    black_box(s);
    println!("ln {:.2} ns", t.elapsed().as_nanos() as f64 / f64::from(n));
    let t = Instant::now();
    for i in 0..n {
        s += math::exp(black_box(-(i as f32) * 1e-7));
    }
    black_box(s);
    println!("exp {:.2} ns", t.elapsed().as_nanos() as f64 / f64::from(n));
    let t = Instant::now();
    for i in 0..n {
        let (a, b) = math::sincos_turns(black_box(i as f32 * 1e-8));
        s += a + b;
    }
    black_box(s);
    println!(
        "sincos {:.2} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
    let t = Instant::now();
    for i in 0..n {
        s += black_box(i as f32 + 1.0) / black_box(3.0f32 + s);
    }
    black_box(s);
    println!(
        "dependent div+add {:.2} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
}
