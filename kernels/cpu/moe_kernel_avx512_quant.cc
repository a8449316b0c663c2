// The AVX-512 VNNI dot-product tiles of the quantized formats (moe_format.h / moe_pack.h). The
// row assembly (SiLU, copies) around them is moe_kernel_avx512.cc's, shared with bf16.
//
// vpdpbusd multiplies unsigned by signed bytes, four per 32-bit lane, into int32:
//   * int8: the weights are the signed operand; the activations q are made unsigned as q + 128
//     (q XOR 0x80), and 128 * row_sum is subtracted at the end.
//   * int4: the nibbles (q + 8, 0..15) are the unsigned operand and the activations the signed
//     one; 8 * (sum of the group's activations) is subtracted per group. One 64-byte vector holds
//     two K quads of 16 rows: the low nibbles (K 8o .. 8o+3) and the high ones (8o+4 .. 8o+7).
// Integer sums are exact; the float expression is the one of moe_kernel_impl.h.
// Only functions marked TANDEM_VNNI use AVX-512 instructions (see moe_kernel_avx512.cc).
#include <algorithm>

#include "kernels/cpu/moe_kernel_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// GCC 12 reports its own unmasked AVX-512 intrinsics (cvtepi32_ps, slli/srli) as reading an
// uninitialized "__Y" (a false positive on the undefined-source operand they pass internally).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace tandem::moe_internal {

#if defined(__x86_64__)
namespace {

#define TANDEM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

constexpr int64_t kB = PackedMatrix::kBlockRows;
constexpr int64_t kV = PackedMatrix::kVectorBytes;

int32_t Quad(const int8_t* x, int64_t k) {  // x[k .. k + 3] as one 32-bit word
  int32_t v;
  __builtin_memcpy(&v, x + k, 4);
  return v;
}

// out[(i * NT + t) * 16 + lane] for MB blocks starting at `w` (block_bytes apart) and NT tokens
// of x (q8 rows `stride` bytes apart, scales xs).
template <int MB, int NT>
TANDEM_VNNI void DotInt8(const uint8_t* w, int64_t block_bytes, int64_t quads, const int32_t* sums,
                         const float* scales, const int8_t* x, int64_t stride, const float* xs,
                         float* out) {
  constexpr bool kSplit = NT <= 2;  // even / odd quads to separate chains (latency)
  __m512i acc[MB][NT], acc2[MB][NT];
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t) acc[i][t] = acc2[i][t] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi32(static_cast<int>(0x80808080u));
  int64_t q = 0;
  if constexpr (kSplit) {
    const int64_t pf = Avx512PrefetchVectors();
    for (; q + 2 <= quads; q += 2) {
      __m512i x0[NT], x1[NT];
      for (int t = 0; t < NT; ++t) {
        x0[t] = _mm512_xor_si512(_mm512_set1_epi32(Quad(x + t * stride, 4 * q)), flip);
        x1[t] = _mm512_xor_si512(_mm512_set1_epi32(Quad(x + t * stride, 4 * q + 4)), flip);
      }
      for (int i = 0; i < MB; ++i) {
        if (pf > 0) {
          const char* ahead = reinterpret_cast<const char*>(w + i * block_bytes + (q + pf) * kV);
          _mm_prefetch(ahead, _MM_HINT_T0);
          _mm_prefetch(ahead + kV, _MM_HINT_T0);
        }
        const __m512i v0 = _mm512_load_si512(w + i * block_bytes + q * kV);
        const __m512i v1 = _mm512_load_si512(w + i * block_bytes + (q + 1) * kV);
        for (int t = 0; t < NT; ++t) {
          acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], x0[t], v0);
          acc2[i][t] = _mm512_dpbusd_epi32(acc2[i][t], x1[t], v1);
        }
      }
    }
  }
  for (; q < quads; ++q) {
    __m512i xb[NT];
    for (int t = 0; t < NT; ++t)
      xb[t] = _mm512_xor_si512(_mm512_set1_epi32(Quad(x + t * stride, 4 * q)), flip);
    for (int i = 0; i < MB; ++i) {
      const __m512i v = _mm512_load_si512(w + i * block_bytes + q * kV);
      for (int t = 0; t < NT; ++t) acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], xb[t], v);
    }
  }
  for (int i = 0; i < MB; ++i) {
    const __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512(sums + i * kB), 7);  // 128 * sum
    const __m512 s = _mm512_loadu_ps(scales + i * kB);
    for (int t = 0; t < NT; ++t) {
      const __m512i dot = _mm512_sub_epi32(_mm512_add_epi32(acc[i][t], acc2[i][t]), offset);
      const __m512 v =
          _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), s), _mm512_set1_ps(xs[t]));
      _mm512_storeu_ps(out + (i * NT + t) * kB, v);
    }
  }
}

// As DotInt8 for int4 weights with groups of `group_vectors` vectors; scales [block][group][16]
// (group_count groups per block); sums32: x.q8_sums32 rows (`sums_stride` apart).
template <int MB, int NT>
TANDEM_VNNI void DotInt4(const uint8_t* w, int64_t block_bytes, int64_t group_count,
                         int64_t group_vectors, const float* scales, const int8_t* x,
                         int64_t stride, const int32_t* sums32, int64_t sums_stride,
                         const float* xs, float* out) {
  __m512 accf[MB][NT];
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t) accf[i][t] = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0f);
  const int64_t blocks32 = group_vectors / 4;  // 32-column activation sums per group
  const int64_t pf = NT <= 2 ? Avx512PrefetchVectors() : 0;  // decode: weights from DRAM
  for (int64_t g = 0; g < group_count; ++g) {
    __m512i acc[MB][NT];
    for (int i = 0; i < MB; ++i)
      for (int t = 0; t < NT; ++t) acc[i][t] = _mm512_setzero_si512();
    for (int64_t o = g * group_vectors; o < (g + 1) * group_vectors; ++o) {
      __m512i xl[NT], xh[NT];
      for (int t = 0; t < NT; ++t) {
        xl[t] = _mm512_set1_epi32(Quad(x + t * stride, 8 * o));
        xh[t] = _mm512_set1_epi32(Quad(x + t * stride, 8 * o + 4));
      }
      for (int i = 0; i < MB; ++i) {
        if (pf > 0)
          _mm_prefetch(reinterpret_cast<const char*>(w + i * block_bytes + (o + pf) * kV),
                       _MM_HINT_T0);
        const __m512i v = _mm512_load_si512(w + i * block_bytes + o * kV);
        const __m512i lo = _mm512_and_si512(v, low);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        for (int t = 0; t < NT; ++t) {
          acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], lo, xl[t]);
          acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], hi, xh[t]);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      int32_t xsum = 0;
      for (int64_t j = 0; j < blocks32; ++j) xsum += sums32[t * sums_stride + g * blocks32 + j];
      const __m512i offset = _mm512_set1_epi32(8 * xsum);
      for (int i = 0; i < MB; ++i) {
        const __m512 s = _mm512_loadu_ps(scales + (i * group_count + g) * kB);
        const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][t], offset));
        accf[i][t] = _mm512_add_ps(accf[i][t], _mm512_mul_ps(d, s));
      }
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t)
      _mm512_storeu_ps(out + (i * NT + t) * kB, _mm512_mul_ps(accf[i][t], _mm512_set1_ps(xs[t])));
}

using DotInt8Fn = void (*)(const uint8_t*, int64_t, int64_t, const int32_t*, const float*,
                           const int8_t*, int64_t, const float*, float*);
using DotInt4Fn = void (*)(const uint8_t*, int64_t, int64_t, int64_t, const float*, const int8_t*,
                           int64_t, const int32_t*, int64_t, const float*, float*);

template <int MB>
constexpr DotInt8Fn kDotInt8Row[kAvx512TileTokens] = {DotInt8<MB, 1>, DotInt8<MB, 2>,
                                                      DotInt8<MB, 3>, DotInt8<MB, 4>};
constexpr const DotInt8Fn* kDotInt8[kAvx512TileBlocks] = {kDotInt8Row<1>, kDotInt8Row<2>,
                                                          kDotInt8Row<3>, kDotInt8Row<4>};
// int4 keeps a float and an int32 accumulator per (block, token): at most 2 tokens per pass.
template <int MB>
constexpr DotInt4Fn kDotInt4Row[2] = {DotInt4<MB, 1>, DotInt4<MB, 2>};
constexpr const DotInt4Fn* kDotInt4[kAvx512TileBlocks] = {kDotInt4Row<1>, kDotInt4Row<2>,
                                                          kDotInt4Row<3>, kDotInt4Row<4>};

}  // namespace

void Avx512QuantDotTile(const PackedMatrix& w, int64_t b, int mb, const ExpertActivations& x,
                        int64_t t0, int nt, float* out) {
  const int64_t stride = Int8ActivationStride(x.k);
  const int8_t* xq = x.q8 + t0 * stride;
  if (w.dtype() == ExpertDtype::kInt8) {
    kDotInt8[mb - 1][nt - 1](w.block_data(b), w.block_bytes(), w.vectors_per_block(),
                             w.row_sums() + b * kB, w.scales() + b * kB, xq, stride,
                             x.q8_scale + t0, out);
    return;
  }
  // int4: tokens in passes of <= 2, into a [mb x 2] tile, spread into out's [mb x nt] order.
  const int64_t groups = w.groups(), group_vectors = w.group_cols() / 8;
  const int64_t sums_stride = stride / 32;
  alignas(64) float pass[kAvx512TileBlocks * 2 * kB];
  for (int p = 0; p < nt; p += 2) {
    const int np = std::min(2, nt - p);
    kDotInt4[mb - 1][np - 1](w.block_data(b), w.block_bytes(), groups, group_vectors,
                             w.scales() + b * groups * kB, xq + p * stride, stride,
                             x.q8_sums32 + (t0 + p) * sums_stride, sums_stride, x.q8_scale + t0 + p,
                             pass);
    for (int i = 0; i < mb; ++i)
      for (int t = 0; t < np; ++t)
        std::copy(pass + (i * np + t) * kB, pass + (i * np + t + 1) * kB,
                  out + (i * nt + p + t) * kB);
  }
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AVX-512).

void Avx512QuantDotTile(const PackedMatrix&, int64_t, int, const ExpertActivations&, int64_t, int,
                        float*) {}

#endif

}  // namespace tandem::moe_internal
