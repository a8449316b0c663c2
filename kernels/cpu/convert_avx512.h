// AVX-512 forms of the activation conversions of moe_kernel.h / moe_format.h (bf16 pairs, per-token
// int8), giving the scalar definitions' bits exactly. Call only where HasAvx512FBw() (isa.h); the
// public functions (ConvertToBf16Pairs, QuantizeActivations, ActivationBuffer::Fill) dispatch.
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>

#define TANDEM_AVX512_FBW __attribute__((target("avx512f,avx512bw")))

namespace tandem::convert_internal {

// The first `count` of 16 lanes (none for count <= 0, all for count >= 16).
inline __mmask16 FirstLanes(int64_t count) {
  return count >= 16  ? static_cast<__mmask16>(0xffff)
         : count <= 0 ? static_cast<__mmask16>(0)
                      : static_cast<__mmask16>((1u << count) - 1);
}

// FloatToBf16 (common/bf16.h) of 16 floats: nearest even; a NaN keeps its top bits, quieted.
TANDEM_AVX512_FBW inline __m256i Bf16x16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  __m512i r = _mm512_srli_epi32(rounded, 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan,
                            _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

// The bf16 pairs of one row of k floats (ConvertToBf16Pairs's bytes: 2 per value, zero-padded to
// a whole pair) as a byte string of `bytes` bytes, zero past the data, written in 64-byte pieces:
// piece s at dst + s * piece_stride (a shorter last piece when bytes is not a multiple of 64).
void Bf16PairsRow(const float* x, int64_t k, uint8_t* dst, int64_t piece_stride, int64_t bytes);

// QuantizeActivations (moe_format.h) of one token.
void QuantizeRow(const float* x, int64_t k, int8_t* q, float* scale, int32_t* sums32);

// QuantizeRow's int8 bytes and scale of one token, without the sums, as 64-byte pieces: bytes
// [64 s, 64 s + 64) of the row (zero past k) at dst + s * piece_stride, for s < pieces (the AMX
// tile form's rows: ActivationBuffer::FillAmxTiles).
void QuantizeRowPieces(const float* x, int64_t k, uint8_t* dst, int64_t piece_stride,
                       int64_t pieces, float* scale);

}  // namespace tandem::convert_internal

#endif
