// silu(g) * u = g / (1 + exp(-g)) * u, the one definition every CPU path uses (the engine's
// SiluMul, the reference, AVX-512 and AMX expert kernels), in two forms that give the same bits:
// scalar (SiluTimes, any x86-64 or other CPU) and 16 lanes at a time (SiluTimes16, AVX-512).
// Why not std::exp: the AMX kernels apply SiLU to every gate/up output, and glibc's scalar expf
// there cost about as much as the tile products themselves on DeepSeek-V3's shape; a vector exp
// must equal the scalar one bit for bit, or the kernels' results would depend on which path a row
// took (the tests require row ranges and ISAs to agree exactly for integer dots).
//
// Exp: exp(x) = 2^n * e^r, n = nearest integer to x * log2(e), r = x - n ln2 (two fused steps
// with ln2 split in a high part of few bits and a low part), e^r by its Taylor polynomial of
// degree 7 in Horner form with fused multiply-adds (|r| <= ln2 / 2: truncation below 1e-8
// relative). Every step is one IEEE operation (fma, mul, add, div, round to nearest even, exact
// exponent bits), so the scalar and vector forms round identically. x is clamped to [-87, 88]
// first (NaN becomes -87: silu(NaN) is still NaN through g itself), which keeps 2^n a normal
// float; exp below e^-87 (~1.6e-38) is not needed by silu, where 1 + exp(-g) then equals 1.
// Accuracy: within 2 ulp of the exact exp on [-87, 88] (silu_test).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem {

namespace silu_internal {
inline constexpr float kLo = -87.0f, kHi = 88.0f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;  // 12 significant bits: n * kLn2Hi is exact
inline constexpr float kLn2Lo = 1.42860676533018708e-06f;
// 1 / i! for i = 7 .. 2 (the degree-1 and degree-0 terms are 1).
inline constexpr float kC7 = 1.98412698412698413e-04f, kC6 = 1.38888888888888889e-03f,
                       kC5 = 8.33333333333333333e-03f, kC4 = 4.16666666666666667e-02f,
                       kC3 = 1.66666666666666667e-01f, kC2 = 0.5f;
}  // namespace silu_internal

// exp(x) = p * scale (scale = 2^n, exact), in the steps described above.
inline void ExpParts(float x, float* p_out, float* scale_out) {
  using namespace silu_internal;
  x = x > kLo ? x : kLo;  // the operand order of MAXPS / MINPS: NaN takes the bound
  x = x < kHi ? x : kHi;
  const float n = std::nearbyint(x * kLog2e);  // default rounding: nearest even
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = std::fma(kC7, r, kC6);
  p = std::fma(p, r, kC5);
  p = std::fma(p, r, kC4);
  p = std::fma(p, r, kC3);
  p = std::fma(p, r, kC2);
  p = std::fma(p, r, 1.0f);
  *p_out = std::fma(p, r, 1.0f);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  std::memcpy(scale_out, &bits, 4);
}

inline float ExpForSilu(float x) {
  float p, scale;
  ExpParts(x, &p, &scale);
  return p * scale;
}

// 1 + exp(-g) is formed as one fma(p, scale, 1): written as a product and a sum, a compiler
// allowed to contract (GCC's default) could fuse them in one path and not the other.
inline float SiluTimes(float g, float u) {
  float p, scale;
  ExpParts(-g, &p, &scale);
  return g / std::fma(p, scale, 1.0f) * u;
}

#if defined(__x86_64__)
// SiluTimes on 16 lanes; call only where AVX-512F runs.
__attribute__((target("avx512f"))) inline __m512 SiluTimes16(__m512 g, __m512 u) {
  using namespace silu_internal;
  __m512 x = _mm512_castsi512_ps(  // -g: the sign bit flipped, as the scalar negation
      _mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN)));
  x = _mm512_max_ps(x, _mm512_set1_ps(kLo));
  x = _mm512_min_ps(x, _mm512_set1_ps(kHi));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kC7), r, _mm512_set1_ps(kC6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 d = _mm512_fmadd_ps(p, _mm512_castsi512_ps(bits), _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(_mm512_div_ps(g, d), u);
}
#endif

}  // namespace tandem
