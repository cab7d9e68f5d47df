//! Single-thread throughput of each kernel implementation (not a test; for measuring).
//!
//!     cargo run --release -p kiln-quant --example bench_gemm [-- TYPE... | quantize]
//!
//! m = 1: a ~100 MB weight matrix, reported as GB/s of weights streamed, in one call and in
//! calls of 16 rows. m = 64: a 2048-row slice called in chunks of 64 rows, reported as GFLOP/s
//! (2·rows·m·k). Times are the best of repeated runs. `quantize`: activation quantizers.
//! Environment: BENCH_K (row length), BENCH_MB (matrix size for m = 1), BENCH_M1 (m = 1 only),
//! BENCH_THREADS (m = 1 on one and on two threads), BENCH_SCALAR (include the scalar reference).

use kiln_quant::blocks::f32_to_f16_bits;
use kiln_quant::{kernels, quantize_row, row_bytes, vec_dot_type, GgmlType, Kernels};
use std::time::Instant;

fn fill(ty: GgmlType, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out: Vec<u8> = (0..rows * row_bytes(ty, k))
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    // Sane f16 scales wherever a block keeps them, so the numbers stay finite.
    let fields: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    };
    if ty.block_size() > 1 {
        for b in out.chunks_exact_mut(ty.type_size()) {
            for &at in fields {
                b[at..at + 2].copy_from_slice(&f32_to_f16_bits(0.01).to_le_bytes());
            }
        }
    } else if ty == GgmlType::F16 || ty == GgmlType::BF16 {
        for b in out.chunks_exact_mut(2) {
            b[1] &= 0x3f;
        }
    } else {
        for b in out.chunks_exact_mut(4) {
            b[3] &= 0x3f;
        }
    }
    out
}

fn acts(ty: GgmlType, m: usize, k: usize) -> Vec<u8> {
    let act = vec_dot_type(ty);
    let xs: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let rb = row_bytes(act, k);
    let mut q = vec![0u8; m * rb];
    for (src, dst) in xs.chunks_exact(k).zip(q.chunks_exact_mut(rb)) {
        quantize_row(act, src, dst);
    }
    q
}

/// The fastest of repeated runs over `min_secs`: the machine this runs on may be shared, and
/// the minimum is the run that was least disturbed.
fn time<F: FnMut()>(mut f: F, min_secs: f64) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::MAX;
    while start.elapsed().as_secs_f64() < min_secs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn bench(kern: &Kernels, ty: GgmlType, k: usize) {
    // m = 1 over ~100 MB of weights.
    let mbytes: usize = std::env::var("BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let rows = (mbytes * 1_000_000 / row_bytes(ty, k)).max(2048) / 64 * 64;
    let w = fill(ty, rows, k, 1);
    let x = acts(ty, 1, k);
    let mut y = vec![0.0f32; rows];
    let t = time(|| kern.gemm(ty, k, rows, &w, 1, &x, &mut y), 1.0);
    let gbs = w.len() as f64 / t / 1e9;
    // m = 1 with the rows split between two threads (aggregate bandwidth).
    if std::env::var("BENCH_THREADS").is_ok() {
        let rb = row_bytes(ty, k);
        let half = rows / 2;
        let (w0, w1) = w.split_at(half * rb);
        let (y0, y1) = y.split_at_mut(half);
        let t2 = time(
            || {
                std::thread::scope(|s| {
                    s.spawn(|| kern.gemm(ty, k, half, w0, 1, &x, y0));
                    kern.gemm(ty, k, rows - half, w1, 1, &x, y1);
                })
            },
            1.0,
        );
        println!(
            "{:<10} {:<5} k={:<5} m=1: {:6.2} GB/s one thread, {:6.2} GB/s two threads",
            kern.name(),
            ty.name(),
            k,
            gbs,
            w.len() as f64 / t2 / 1e9
        );
        return;
    }
    if std::env::var("BENCH_M1").is_ok() {
        println!("{:<10} {:<5} k={:<5} m=1: {:6.2} GB/s", kern.name(), ty.name(), k, gbs);
        return;
    }
    // The same m = 1 pass in calls of 16 rows (how a threaded caller splits the work).
    let rb = row_bytes(ty, k);
    let t16 = time(
        || {
            for (wc, yc) in w.chunks(16 * rb).zip(y.chunks_mut(16)) {
                kern.gemm(ty, k, wc.len() / rb, wc, 1, &x, yc);
            }
        },
        1.0,
    );
    let gbs16 = w.len() as f64 / t16 / 1e9;

    // m = 64 over 2048 rows in chunks of 64 rows.
    let (rows2, m, chunk) = (2048, 64, 64);
    let w2 = &w[..rows2 * rb];
    let x2 = acts(ty, m, k);
    let mut y2 = vec![0.0f32; rows2 * m];
    let t2 = time(
        || {
            for (wc, yc) in w2.chunks(chunk * rb).zip(y2.chunks_mut(chunk * m)) {
                kern.gemm(ty, k, wc.len() / rb, wc, m, &x2, yc);
            }
        },
        1.0,
    );
    let gflops = 2.0 * rows2 as f64 * m as f64 * k as f64 / t2 / 1e9;
    println!(
        "{:<10} {:<5} k={:<5} m=1: {:6.2} GB/s ({:7.2} ms), in 16-row calls {:6.2} GB/s   m=64: {:7.2} GFLOP/s",
        kern.name(),
        ty.name(),
        k,
        gbs,
        t * 1e3,
        gbs16,
        gflops
    );
}

/// Activation quantization speed (elements per second) for each activation type.
fn bench_quantize() {
    let k = 2048;
    let xs: Vec<f32> = (0..64 * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    for act in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16] {
        let rb = row_bytes(act, k);
        let mut q = vec![0u8; 64 * rb];
        let t = time(
            || {
                for (src, dst) in xs.chunks_exact(k).zip(q.chunks_exact_mut(rb)) {
                    quantize_row(act, src, dst);
                }
            },
            0.5,
        );
        println!("quantize_row {:<5} {:7.1} M elements/s", act.name(), xs.len() as f64 / t / 1e6);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "quantize") {
        bench_quantize();
        return;
    }
    let all = [
        ("Q4_1", 1536),
        ("Q4_K", 2048),
        ("Q6_K", 2048),
        ("Q5_0", 2048),
        ("Q8_0", 640),
        ("Q4_0", 2048),
        ("Q5_1", 2048),
        ("Q2_K", 2048),
        ("Q3_K", 2048),
        ("Q5_K", 2048),
        ("F16", 2048),
        ("BF16", 2048),
        ("F32", 2048),
    ];
    let k_override: Option<usize> = std::env::var("BENCH_K").ok().and_then(|v| v.parse().ok());
    for (name, k) in all {
        let k = k_override.unwrap_or(k);
        if !args.is_empty() && !args.iter().any(|a| a == name) {
            continue;
        }
        let ty = (0..40).filter_map(GgmlType::from_id).find(|t| t.name() == name).unwrap();
        for kern in kernels() {
            if kern.name() == "scalar" && std::env::var("BENCH_SCALAR").is_err() {
                continue;
            }
            bench(kern, ty, k);
        }
    }
}
