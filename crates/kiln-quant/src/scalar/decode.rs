//! Block decoders: one quantized block to its integer values and float scales. The scalar
//! dequantizer and the scalar dot products are both written on top of these, so a format's
//! bit layout is spelled out exactly once for the reference implementation.

use crate::blocks::{f16_at, off, q3k_scales, q4k_scales_mins, u32_at, QK, QK_K};
use crate::GgmlType;

/// A decoded 32-element block: element `j` is `d * q[j] (+ m)`.
pub struct Block32 {
    pub q: [i8; QK],
    pub d: f32,
    /// `Some(m)` for the formats with an additive min (`Q4_1`, `Q5_1`).
    pub m: Option<f32>,
}

/// Splits `Q4_*` nibbles: element `j < 16` is the low nibble of `qs[j]`, `j >= 16` the high one.
fn nibbles(qs: &[u8]) -> [i8; QK] {
    let mut q = [0i8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0xf) as i8;
        q[j + QK / 2] = (qs[j] >> 4) as i8;
    }
    q
}

/// `Q5_*` values: nibbles plus bit `j` of `qh` as bit 4.
fn nibbles_with_high_bit(qh: u32, qs: &[u8]) -> [i8; QK] {
    let mut q = nibbles(qs);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> j) & 1) << 4) as i8;
    }
    q
}

/// Decodes one block of a 32-element format (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`, `Q8_1`).
pub fn block32(ty: GgmlType, b: &[u8]) -> Block32 {
    let d = f16_at(b, 0);
    match ty {
        GgmlType::Q4_0 => {
            let mut q = nibbles(&b[2..18]);
            q.iter_mut().for_each(|v| *v -= 8);
            Block32 { q, d, m: None }
        }
        GgmlType::Q4_1 => Block32 { q: nibbles(&b[4..20]), d, m: Some(f16_at(b, 2)) },
        GgmlType::Q5_0 => {
            let mut q = nibbles_with_high_bit(u32_at(b, 2), &b[6..22]);
            q.iter_mut().for_each(|v| *v -= 16);
            Block32 { q, d, m: None }
        }
        GgmlType::Q5_1 => Block32 { q: nibbles_with_high_bit(u32_at(b, 4), &b[8..24]), d, m: Some(f16_at(b, 2)) },
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let start = if ty == GgmlType::Q8_0 { 2 } else { 4 };
            let mut q = [0i8; QK];
            for (v, &byte) in q.iter_mut().zip(&b[start..start + QK]) {
                *v = byte as i8;
            }
            Block32 { q, d, m: None }
        }
        _ => unreachable!("{ty} is not a 32-element block format"),
    }
}

/// A decoded K super-block: element `e` is `d * sc[e / 16] * q[e] - dmin * mn[e / 16]`
/// (the min term only when `has_min`).
pub struct SuperBlock {
    pub q: [i8; QK_K],
    pub sc: [i16; 16],
    pub mn: [i16; 16],
    pub d: f32,
    pub dmin: f32,
    pub has_min: bool,
}

/// Decodes one super-block of a K format (`Q2_K` .. `Q6_K`).
pub fn super_block(ty: GgmlType, b: &[u8]) -> SuperBlock {
    let mut s = SuperBlock { q: [0; QK_K], sc: [0; 16], mn: [0; 16], d: 0.0, dmin: 0.0, has_min: false };
    // Every K format walks its 256 elements as eight 32-element chunks `c`, each of which
    // takes its bits from a 32-byte window at a chunk-dependent offset and shift.
    match ty {
        GgmlType::Q2_K => {
            let qs = &b[off::Q2_K_QS..off::Q2_K_QS + 64];
            for e in 0..QK_K {
                let (c, l) = (e / 32, e % 32);
                s.q[e] = ((qs[32 * (c / 4) + l] >> (2 * (c % 4))) & 3) as i8;
            }
            for (i, &byte) in b[..16].iter().enumerate() {
                s.sc[i] = (byte & 0xf) as i16;
                s.mn[i] = (byte >> 4) as i16;
            }
            s.d = f16_at(b, off::Q2_K_D);
            s.dmin = f16_at(b, off::Q2_K_D + 2);
            s.has_min = true;
        }
        GgmlType::Q3_K => {
            let (hmask, qs) = (&b[..32], &b[off::Q3_K_QS..off::Q3_K_QS + 64]);
            for e in 0..QK_K {
                let (c, l) = (e / 32, e % 32);
                let low = ((qs[32 * (c / 4) + l] >> (2 * (c % 4))) & 3) as i8;
                let high = (hmask[l] >> c) & 1;
                s.q[e] = if high == 0 { low - 4 } else { low };
            }
            let scales = q3k_scales(&b[off::Q3_K_SCALES..off::Q3_K_SCALES + 12]);
            s.sc = scales.map(|v| v as i16);
            s.d = f16_at(b, off::Q3_K_D);
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let (sc, mn) = q4k_scales_mins(&b[off::Q4_K_SCALES..off::Q4_K_SCALES + 12]);
            let qs_at = if ty == GgmlType::Q4_K { off::Q4_K_QS } else { off::Q5_K_QS };
            let qs = &b[qs_at..qs_at + 128];
            for e in 0..QK_K {
                let (c, l) = (e / 32, e % 32);
                let mut v = (qs[32 * (c / 2) + l] >> (4 * (c % 2))) & 0xf;
                if ty == GgmlType::Q5_K {
                    v |= ((b[off::Q5_K_QH + l] >> c) & 1) << 4;
                }
                s.q[e] = v as i8;
            }
            for i in 0..16 {
                s.sc[i] = sc[i / 2] as i16;
                s.mn[i] = mn[i / 2] as i16;
            }
            s.d = f16_at(b, 0);
            s.dmin = f16_at(b, 2);
            s.has_min = true;
        }
        GgmlType::Q6_K => {
            let (ql, qh) = (&b[..128], &b[off::Q6_K_QH..off::Q6_K_QH + 64]);
            for e in 0..QK_K {
                let (h, t, l) = (e / 128, (e / 32) % 4, e % 32);
                let low = (ql[64 * h + 32 * (t % 2) + l] >> (4 * (t / 2))) & 0xf;
                let high = (qh[32 * h + l] >> (2 * t)) & 3;
                s.q[e] = (low | (high << 4)) as i8 - 32;
            }
            for i in 0..16 {
                s.sc[i] = b[off::Q6_K_SCALES + i] as i8 as i16;
            }
            s.d = f16_at(b, off::Q6_K_D);
        }
        _ => unreachable!("{ty} is not a K super-block format"),
    }
    s
}
