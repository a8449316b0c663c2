#include "kernels/cpu/convert_avx512.h"

#if defined(__x86_64__)

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/moe_format.h"

namespace tandem::convert_internal {
TANDEM_AVX512_FBW void Bf16PairsRow(const float* x, int64_t k, uint8_t* dst, int64_t piece_stride,
                                    int64_t bytes) {
  for (int64_t off = 0, s = 0; off < bytes; off += 64, ++s) {
    const int64_t f = off / 2;  // the first value of the piece (32 values per 64 bytes)
    const __m256i lo = Bf16x16(_mm512_maskz_loadu_ps(FirstLanes(k - f), x + f));
    const __m256i hi = Bf16x16(_mm512_maskz_loadu_ps(FirstLanes(k - f - 16), x + f + 16));
    const __m512i piece = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    const int64_t n = std::min<int64_t>(64, bytes - off);
    const __mmask64 m = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
    _mm512_mask_storeu_epi8(dst + s * piece_stride, m, piece);
  }
}

namespace {

// QuantizeActivations's per-token scale: s = max|x| / 127 (NaN for a token with a NaN or
// infinity, whose values are then all 0), and the factor the values are multiplied by.
struct RowQuant {
  float scale;
  bool finite;
  __m512 inv;
};
TANDEM_AVX512_FBW inline RowQuant QuantScale(const float* x, int64_t k) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), exp_mask = _mm512_set1_epi32(0x7f800000);
  __m512 amax = _mm512_setzero_ps();
  __mmask16 nonfinite = 0;
  for (int64_t i = 0; i < k; i += 16) {
    const __m512i v = _mm512_castps_si512(_mm512_maskz_loadu_ps(FirstLanes(k - i), x + i));
    amax = _mm512_max_ps(amax, _mm512_castsi512_ps(_mm512_and_si512(v, abs_mask)));
    nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, exp_mask), exp_mask);
  }
  const bool finite = nonfinite == 0;
  const float s = finite ? _mm512_reduce_max_ps(amax) / 127.0f : std::nanf("");
  return {s, finite, _mm512_set1_ps(finite && s > 0.0f ? 1.0f / s : 0.0f)};
}

// The int8 values of x[i, i + 16) as int32 lanes (0 past k): round(x * inv) clamped to +-127.
TANDEM_AVX512_FBW inline __m512i QuantLanes(const float* x, int64_t k, int64_t i,
                                            const RowQuant& q) {
  const __mmask16 m = FirstLanes(k - i);
  if (!q.finite || m == 0) return _mm512_setzero_si512();
  const __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), q.inv),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_cvtps_epi32(
      _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f)));
}

}  // namespace

TANDEM_AVX512_FBW void QuantizeRow(const float* x, int64_t k, int8_t* q, float* scale,
                                   int32_t* sums32) {
  const int64_t stride = Int8ActivationStride(k);
  const RowQuant rq = QuantScale(x, k);
  *scale = rq.scale;
  for (int64_t b = 0; b < stride / 32; ++b) {
    int32_t sum = 0;
    for (int half = 0; half < 2; ++half) {
      const int64_t i = 32 * b + 16 * half;
      const __m512i qi = QuantLanes(x, k, i, rq);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(qi));
      sum += _mm512_reduce_add_epi32(qi);
    }
    sums32[b] = sum;
  }
}

TANDEM_AVX512_FBW void QuantizeRowPieces(const float* x, int64_t k, uint8_t* dst,
                                         int64_t piece_stride, int64_t pieces, float* scale) {
  const RowQuant rq = QuantScale(x, k);
  *scale = rq.scale;
  for (int64_t s = 0; s < pieces; ++s) {
    const int64_t i = 64 * s;
    __m512i piece = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(QuantLanes(x, k, i, rq)));
    piece = _mm512_inserti32x4(piece, _mm512_cvtepi32_epi8(QuantLanes(x, k, i + 16, rq)), 1);
    piece = _mm512_inserti32x4(piece, _mm512_cvtepi32_epi8(QuantLanes(x, k, i + 32, rq)), 2);
    piece = _mm512_inserti32x4(piece, _mm512_cvtepi32_epi8(QuantLanes(x, k, i + 48, rq)), 3);
    _mm512_storeu_si512(dst + s * piece_stride, piece);
  }
}

}  // namespace tandem::convert_internal

#endif
