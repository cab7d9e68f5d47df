//! Unaligned little-endian reads at raw pointers, shared by the kernels. Blocks are packed with
//! no alignment, so every read here is unaligned; callers guarantee the bytes are in bounds.

use std::arch::x86_64::*;

#[inline(always)]
pub unsafe fn load128(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

#[inline(always)]
pub unsafe fn load256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
pub unsafe fn read_u16(p: *const u8) -> u16 {
    u16::from_le(std::ptr::read_unaligned(p as *const u16))
}

#[inline(always)]
pub unsafe fn read_u32(p: *const u8) -> u32 {
    u32::from_le(std::ptr::read_unaligned(p as *const u32))
}

#[inline(always)]
pub unsafe fn read_f32(p: *const u8) -> f32 {
    f32::from_bits(read_u32(p))
}
