//! Scalar dequantization of hand-built blocks: each test packs chosen logical values (quants,
//! scales, mins) into a block following the layout, and checks every output element against the
//! format's formula computed from the logical values. Scales are powers of two or small
//! integers, so every expected value is exact.

// The packers index by element number on purpose: they spell out the layouts' index formulas.
#![allow(clippy::needless_range_loop)]

use kiln_quant::blocks::f32_to_f16_bits;
use kiln_quant::{dequantize_row, GgmlType};

fn f16(v: f32) -> [u8; 2] {
    f32_to_f16_bits(v).to_le_bytes()
}

fn dequant(ty: GgmlType, block: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    dequantize_row(ty, block, &mut out);
    out
}

/// 32 values of up to 5 bits to (qh, 16 bytes of nibbles): element j < 16 in the low nibble of
/// byte j, j >= 16 in the high nibble of byte j - 16, bit 4 of element j in bit j of qh.
fn pack32(q: &[u8; 32]) -> (u32, [u8; 16]) {
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for j in 0..32 {
        qs[j % 16] |= (q[j] & 0xf) << (4 * (j / 16));
        qh |= ((q[j] >> 4) as u32 & 1) << j;
    }
    (qh, qs)
}

fn ramp<const N: usize>(modulo: u8) -> [u8; N] {
    std::array::from_fn(|j| ((j * 7 + 3) % modulo as usize) as u8)
}

#[test]
fn q4_0() {
    let q: [u8; 32] = ramp(16);
    let (_, qs) = pack32(&q);
    let block = [&f16(0.5)[..], &qs].concat();
    let out = dequant(GgmlType::Q4_0, &block, 32);
    for j in 0..32 {
        assert_eq!(out[j], 0.5 * (q[j] as f32 - 8.0), "element {j}");
    }
}

#[test]
fn q4_1() {
    let q: [u8; 32] = ramp(16);
    let (_, qs) = pack32(&q);
    let block = [&f16(0.25)[..], &f16(-1.5), &qs].concat();
    let out = dequant(GgmlType::Q4_1, &block, 32);
    for j in 0..32 {
        assert_eq!(out[j], 0.25 * q[j] as f32 - 1.5, "element {j}");
    }
}

#[test]
fn q5_0() {
    let q: [u8; 32] = ramp(32);
    let (qh, qs) = pack32(&q);
    let block = [&f16(2.0)[..], &qh.to_le_bytes(), &qs].concat();
    let out = dequant(GgmlType::Q5_0, &block, 32);
    for j in 0..32 {
        assert_eq!(out[j], 2.0 * (q[j] as f32 - 16.0), "element {j}");
    }
}

#[test]
fn q5_1() {
    let q: [u8; 32] = ramp(32);
    let (qh, qs) = pack32(&q);
    let block = [&f16(0.125)[..], &f16(3.0), &qh.to_le_bytes(), &qs].concat();
    let out = dequant(GgmlType::Q5_1, &block, 32);
    for j in 0..32 {
        assert_eq!(out[j], 0.125 * q[j] as f32 + 3.0, "element {j}");
    }
}

#[test]
fn q8_0() {
    let q: [i8; 32] = std::array::from_fn(|j| [-128i8, -1, 0, 1, 127, 64, -64, 5][j % 8]);
    let block = [&f16(-0.5)[..], &q.map(|v| v as u8)].concat();
    let out = dequant(GgmlType::Q8_0, &block, 32);
    for j in 0..32 {
        assert_eq!(out[j], -0.5 * q[j] as f32, "element {j}");
    }
}

#[test]
fn q2_k() {
    // Element e: 2-bit quant in qs[32 * (e / 128) + e % 32] at bit 2 * ((e / 32) % 4);
    // sub-block i = e / 16 has 4-bit scale sc[i] and min mn[i] in scales[i].
    let q: [u8; 256] = ramp(4);
    let sc: [u8; 16] = std::array::from_fn(|i| (i as u8 * 5 + 1) % 16);
    let mn: [u8; 16] = std::array::from_fn(|i| (i as u8 * 3 + 2) % 16);
    let mut qs = [0u8; 64];
    for e in 0..256 {
        qs[32 * (e / 128) + e % 32] |= q[e] << (2 * ((e / 32) % 4));
    }
    let scales: Vec<u8> = (0..16).map(|i| sc[i] | (mn[i] << 4)).collect();
    let block = [&scales[..], &qs, &f16(0.5), &f16(0.25)].concat();
    let out = dequant(GgmlType::Q2_K, &block, 256);
    for e in 0..256 {
        let i = e / 16;
        let want = 0.5 * sc[i] as f32 * q[e] as f32 - 0.25 * mn[i] as f32;
        assert_eq!(out[e], want, "element {e}");
    }
}

#[test]
fn q3_k() {
    // Element e: low 2 bits as Q2_K, high bit in hmask[e % 32] at bit e / 32, value
    // low - (high ? 0 : 4); sixteen 6-bit scales (offset by 32): low nibble of scale i in byte
    // i % 8 (high half when i >= 8), top two bits in byte 8 + i % 4 at bit 2 * (i / 4).
    let v: [i8; 256] = std::array::from_fn(|e| ((e * 5 + 1) % 8) as i8 - 4);
    let sc: [i8; 16] = std::array::from_fn(|i| ((i * 9) % 64) as i8 - 32);
    let (mut hmask, mut qs, mut scales) = ([0u8; 32], [0u8; 64], [0u8; 12]);
    for e in 0..256 {
        let (low, high) = if v[e] >= 0 { (v[e] as u8, 1) } else { ((v[e] + 4) as u8, 0) };
        qs[32 * (e / 128) + e % 32] |= low << (2 * ((e / 32) % 4));
        hmask[e % 32] |= high << (e / 32);
    }
    for i in 0..16 {
        let u = (sc[i] + 32) as u8;
        scales[i % 8] |= (u & 0xf) << (4 * (i / 8));
        scales[8 + i % 4] |= (u >> 4) << (2 * (i / 4));
    }
    let block = [&hmask[..], &qs, &scales, &f16(0.5)].concat();
    let out = dequant(GgmlType::Q3_K, &block, 256);
    for e in 0..256 {
        assert_eq!(out[e], 0.5 * sc[e / 16] as f32 * v[e] as f32, "element {e}");
    }
}

/// Q4_K/Q5_K 6-bit scales and mins: j < 4 in the low 6 bits of bytes j (scale) and j + 4
/// (min); j >= 4 with low nibbles in byte j + 4 (scale low, min high) and top two bits in the
/// top bits of bytes j - 4 (scale) and j (min).
fn pack_scales_mins(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
    }
    s
}

fn q45_k(five_bits: bool) {
    // Element e: nibble of qs[32 * (e / 64) + e % 32], low for (e / 32) even; for Q5_K bit
    // e / 32 of qh[e % 32] adds 16; chunk c = e / 32 has scale sc[c] and min mn[c].
    let q: [u8; 256] = ramp(if five_bits { 32 } else { 16 });
    let sc: [u8; 8] = [1, 63, 17, 40, 5, 33, 62, 48];
    let mn: [u8; 8] = [0, 7, 63, 21, 50, 2, 31, 60];
    let (mut qs, mut qh) = ([0u8; 128], [0u8; 32]);
    for e in 0..256 {
        qs[32 * (e / 64) + e % 32] |= (q[e] & 0xf) << (4 * ((e / 32) % 2));
        qh[e % 32] |= (q[e] >> 4) << (e / 32);
    }
    let scales = pack_scales_mins(&sc, &mn);
    let head = [&f16(0.25)[..], &f16(0.5), &scales].concat();
    let (ty, block) = if five_bits {
        (GgmlType::Q5_K, [&head[..], &qh, &qs].concat())
    } else {
        (GgmlType::Q4_K, [&head[..], &qs].concat())
    };
    let out = dequant(ty, &block, 256);
    for e in 0..256 {
        let c = e / 32;
        let want = 0.25 * sc[c] as f32 * q[e] as f32 - 0.5 * mn[c] as f32;
        assert_eq!(out[e], want, "{ty} element {e}");
    }
}

#[test]
fn q4_k() {
    q45_k(false);
}

#[test]
fn q5_k() {
    q45_k(true);
}

#[test]
fn q6_k() {
    // Element e, h = e / 128, t = (e / 32) % 4, l = e % 32: low nibble in
    // ql[64h + 32(t % 2) + l] (high half for t >= 2), two high bits in qh[32h + l] at bit 2t;
    // value q - 32 scaled by the signed scales[e / 16].
    let v: [i8; 256] = std::array::from_fn(|e| ((e * 11 + 5) % 64) as i8 - 32);
    let sc: [i8; 16] = [-128, 127, -1, 0, 1, 64, -64, 33, 2, -2, 100, -100, 7, -7, 50, -50];
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for e in 0..256 {
        let (h, t, l) = (e / 128, (e / 32) % 4, e % 32);
        let u = (v[e] + 32) as u8;
        ql[64 * h + 32 * (t % 2) + l] |= (u & 0xf) << (4 * (t / 2));
        qh[32 * h + l] |= (u >> 4) << (2 * t);
    }
    let block = [&ql[..], &qh, &sc.map(|s| s as u8), &f16(0.125)].concat();
    let out = dequant(GgmlType::Q6_K, &block, 256);
    for e in 0..256 {
        assert_eq!(out[e], 0.125 * sc[e / 16] as f32 * v[e] as f32, "element {e}");
    }
}

#[test]
fn float_types() {
    let vals = [0.0f32, -0.0, 1.0, -2.5, 65504.0, 6.1035156e-5, f32::INFINITY];
    let f16_bytes: Vec<u8> = vals.iter().flat_map(|&v| f16(v)).collect();
    assert_eq!(dequant(GgmlType::F16, &f16_bytes, vals.len()), vals);
    let bf16_bytes: Vec<u8> = vals.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
    let bf = dequant(GgmlType::BF16, &bf16_bytes, vals.len());
    for (b, v) in bf.iter().zip(vals) {
        assert_eq!(b.to_bits(), v.to_bits() & 0xffff_0000);
    }
    let f32_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequant(GgmlType::F32, &f32_bytes, vals.len()), vals);
}

#[test]
#[should_panic]
fn length_mismatch_panics() {
    let mut out = vec![0.0; 32];
    dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut out);
}

#[test]
#[should_panic]
fn partial_block_panics() {
    let mut out = vec![0.0; 16];
    dequantize_row(GgmlType::Q4_0, &[0u8; 9], &mut out);
}
