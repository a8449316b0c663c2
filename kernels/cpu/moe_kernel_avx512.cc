// The AVX-512 MoE kernels over the packed layouts of moe_pack.h (the dot tiles of the quantized
// formats are in moe_kernel_avx512_quant.cc). Only the functions marked
// TANDEM_AVX512 use AVX-512 instructions, so this file compiles for any x86-64 and its code runs
// only where ResolveCpuKernel allowed it.
//
// Micro-kernel: MB row blocks (16 rows each) x NT tokens of accumulators; per K pair, one 64-byte
// load per block feeds NT tokens. bf16 activations: one vdpbf16ps per (block, token, pair).
// f32 activations: the pair is widened to two f32 vectors (shift / mask) and takes two FMAs.
// Not yet tuned for many tokens: there is no K blocking, so beyond a few token tiles the weights of
// a block group (4 x 16 rows x K) are re-read from L2/L3 per tile; prefill is for the AMX kernel.
#include <algorithm>

#include "kernels/cpu/moe_kernel_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem::moe_internal {

#if defined(__x86_64__)
namespace {

#define TANDEM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kMaxBlocks = kAvx512TileBlocks;  // MB
constexpr int kMaxTokens = kAvx512TileTokens;  // NT
constexpr int64_t kB = PackedMatrix::kBlockRows;
// vpslld through a full mask: the unmasked intrinsic trips a GCC 12 -Wmaybe-uninitialized.
constexpr __mmask16 kAllLanes = 0xffff;

// out[(mb * NT + t) * 16 + lane] = sum_k W[block mb, row lane][k] * x[t][k].
// w: first vector of the first block; x: token 0's k f32 values, x_stride floats apart.
template <int MB, int NT>
TANDEM_AVX512 void DotF32(const uint16_t* w, int64_t block_stride, int64_t k, const float* x,
                          int64_t x_stride, float* out) {
  // With few tokens, even and odd k go to separate accumulators to hide the FMA latency. The
  // choice depends on NT only, so a row's result does not depend on which rows share its tile.
  constexpr bool kSplit = NT <= 2;
  __m512 acc[MB][NT], acc_odd[MB][NT];
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t) acc[i][t] = acc_odd[i][t] = _mm512_setzero_ps();
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t full_pairs = k / 2;
  const int64_t pf = kSplit ? Avx512PrefetchVectors() : 0;
  for (int64_t p = 0; p < full_pairs; ++p) {
    __m512 xe[NT], xo[NT];
    for (int t = 0; t < NT; ++t) {
      xe[t] = _mm512_set1_ps(x[t * x_stride + 2 * p]);
      xo[t] = _mm512_set1_ps(x[t * x_stride + 2 * p + 1]);
    }
    for (int i = 0; i < MB; ++i) {
      if constexpr (kSplit)
        if (pf > 0)
          _mm_prefetch(reinterpret_cast<const char*>(w + i * block_stride + (p + pf) * 2 * kB),
                       _MM_HINT_T0);
      const __m512i v = _mm512_load_si512(w + i * block_stride + p * 2 * kB);
      const __m512 even = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, v, 16));
      const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(v, high_half));
      for (int t = 0; t < NT; ++t) {
        acc[i][t] = _mm512_fmadd_ps(even, xe[t], acc[i][t]);
        if constexpr (kSplit) {
          acc_odd[i][t] = _mm512_fmadd_ps(odd, xo[t], acc_odd[i][t]);
        } else {
          acc[i][t] = _mm512_fmadd_ps(odd, xo[t], acc[i][t]);
        }
      }
    }
  }
  if (k % 2 == 1) {  // last column: the odd half of the pair is padding and x has no element there
    const int64_t p = full_pairs;
    for (int i = 0; i < MB; ++i) {
      const __m512i v = _mm512_load_si512(w + i * block_stride + p * 2 * kB);
      const __m512 even = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, v, 16));
      for (int t = 0; t < NT; ++t)
        acc[i][t] = _mm512_fmadd_ps(even, _mm512_set1_ps(x[t * x_stride + 2 * p]), acc[i][t]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t)
      _mm512_storeu_ps(out + (i * NT + t) * kB, _mm512_add_ps(acc[i][t], acc_odd[i][t]));
}

// As DotF32, over activations rounded to bf16 pairs (x: token 0's k_pairs words).
template <int MB, int NT>
TANDEM_AVX512 void DotBf16(const uint16_t* w, int64_t block_stride, int64_t k_pairs,
                           const uint32_t* x, int64_t x_stride, float* out) {
  constexpr bool kSplit = NT <= 2;  // even and odd pairs to separate accumulators (see DotF32)
  __m512 acc[MB][NT], acc2[MB][NT];
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t) acc[i][t] = acc2[i][t] = _mm512_setzero_ps();
  int64_t p = 0;
  if constexpr (kSplit) {
    const int64_t pf = Avx512PrefetchVectors();
    for (; p + 2 <= k_pairs; p += 2) {
      __m512i x0[NT], x1[NT];
      for (int t = 0; t < NT; ++t) {
        x0[t] = _mm512_set1_epi32(static_cast<int>(x[t * x_stride + p]));
        x1[t] = _mm512_set1_epi32(static_cast<int>(x[t * x_stride + p + 1]));
      }
      for (int i = 0; i < MB; ++i) {
        if (pf > 0) {
          const char* ahead =
              reinterpret_cast<const char*>(w + i * block_stride + (p + pf) * 2 * kB);
          _mm_prefetch(ahead, _MM_HINT_T0);
          _mm_prefetch(ahead + 64, _MM_HINT_T0);
        }
        const __m512i v0 = _mm512_load_si512(w + i * block_stride + p * 2 * kB);
        const __m512i v1 = _mm512_load_si512(w + i * block_stride + (p + 1) * 2 * kB);
        for (int t = 0; t < NT; ++t) {
          acc[i][t] = _mm512_dpbf16_ps(acc[i][t], (__m512bh)v0, (__m512bh)x0[t]);
          acc2[i][t] = _mm512_dpbf16_ps(acc2[i][t], (__m512bh)v1, (__m512bh)x1[t]);
        }
      }
    }
  }
  for (; p < k_pairs; ++p) {
    __m512i xb[NT];
    for (int t = 0; t < NT; ++t) xb[t] = _mm512_set1_epi32(static_cast<int>(x[t * x_stride + p]));
    for (int i = 0; i < MB; ++i) {
      const __m512i v = _mm512_load_si512(w + i * block_stride + p * 2 * kB);
      for (int t = 0; t < NT; ++t)
        acc[i][t] = _mm512_dpbf16_ps(acc[i][t], (__m512bh)v, (__m512bh)xb[t]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int t = 0; t < NT; ++t)
      _mm512_storeu_ps(out + (i * NT + t) * kB, _mm512_add_ps(acc[i][t], acc2[i][t]));
}

using DotF32Fn = void (*)(const uint16_t*, int64_t, int64_t, const float*, int64_t, float*);
using DotBf16Fn = void (*)(const uint16_t*, int64_t, int64_t, const uint32_t*, int64_t, float*);

template <int MB>
constexpr DotF32Fn kDotF32Row[kMaxTokens] = {DotF32<MB, 1>, DotF32<MB, 2>, DotF32<MB, 3>,
                                             DotF32<MB, 4>};
template <int MB>
constexpr DotBf16Fn kDotBf16Row[kMaxTokens] = {DotBf16<MB, 1>, DotBf16<MB, 2>, DotBf16<MB, 3>,
                                               DotBf16<MB, 4>};
constexpr const DotF32Fn* kDotF32[kMaxBlocks] = {kDotF32Row<1>, kDotF32Row<2>, kDotF32Row<3>,
                                                 kDotF32Row<4>};
constexpr const DotBf16Fn* kDotBf16[kMaxBlocks] = {kDotBf16Row<1>, kDotBf16Row<2>, kDotBf16Row<3>,
                                                   kDotBf16Row<4>};

// out[(i * nt + t) * 16 + lane] for blocks [b, b + mb) of w and tokens [t0, t0 + nt) of x.
void DotTile(const PackedMatrix& w, int64_t b, int mb, const ExpertActivations& x, int64_t t0,
             int nt, bool bf16, float* out) {
  if (w.dtype() != ExpertDtype::kBf16) {
    Avx512QuantDotTile(w, b, mb, x, t0, nt, out);
  } else if (bf16) {
    const int64_t stride = Bf16PairCount(x.k);
    kDotBf16[mb - 1][nt - 1](w.block(b), w.block_stride(), w.k_pairs(), x.bf16_pairs + t0 * stride,
                             stride, out);
  } else {
    kDotF32[mb - 1][nt - 1](w.block(b), w.block_stride(), w.cols(), x.f32 + t0 * x.k, x.k, out);
  }
}

// Calls fn(b, mb, t0, nt) over the tiles covering row blocks of [r0, r1) and all n tokens, tiles
// of one block group consecutive so that its weights stay in cache across token tiles.
template <typename Fn>
void ForEachTile(int64_t r0, int64_t r1, int64_t n, Fn fn) {
  const int64_t b0 = r0 / kB, b1 = (r1 + kB - 1) / kB;
  for (int64_t b = b0; b < b1; b += kMaxBlocks) {
    const int mb = static_cast<int>(std::min<int64_t>(kMaxBlocks, b1 - b));
    for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens)
      fn(b, mb, t0, static_cast<int>(std::min<int64_t>(kMaxTokens, n - t0)));
  }
}

// out[i] = SiluTimes(g[i], u[i]) for i in [lo, hi) (0 <= lo < hi <= 16; g and u 64-byte aligned).
TANDEM_AVX512 void StoreSiluTimes(const float* g, const float* u, int64_t lo, int64_t hi,
                                  float* out) {
  const __mmask16 lanes = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
  _mm512_mask_storeu_ps(out, lanes, SiluTimes16(_mm512_load_ps(g), _mm512_load_ps(u)));
}

}  // namespace

int64_t Avx512PrefetchVectors() {
  static const int64_t vectors =
      EnvInt("TANDEM_AVX512_PREFETCH", 0, 4096, kAvx512PrefetchVectors);
  return vectors;
}

void Avx512GateUpRows(const PackedExpert& e, const ExpertActivations& x, bool bf16_activations,
                      int64_t r0, int64_t r1, float* act) {
  if (r0 >= r1 || x.n == 0) return;
  const int64_t inter = e.intermediate();
  alignas(64) float g[kMaxBlocks * kMaxTokens * kB];
  alignas(64) float u[kMaxBlocks * kMaxTokens * kB];
  ForEachTile(r0, r1, x.n, [&](int64_t b, int mb, int64_t t0, int nt) {
    DotTile(e.gate, b, mb, x, t0, nt, bf16_activations, g);
    DotTile(e.up, b, mb, x, t0, nt, bf16_activations, u);
    for (int i = 0; i < mb; ++i) {
      const int64_t first = (b + i) * kB;
      const int64_t lo = std::max(r0, first), hi = std::min(r1, first + kB);
      for (int t = 0; t < nt; ++t) {
        const int64_t tile = (i * nt + t) * kB;
        StoreSiluTimes(g + tile, u + tile, lo - first, hi - first, act + (t0 + t) * inter + first);
      }
    }
  });
}

void Avx512DownRows(const PackedExpert& e, const ExpertActivations& act, bool bf16_activations,
                    int64_t d0, int64_t d1, float* y) {
  if (d0 >= d1 || act.n == 0) return;
  const int64_t hidden = e.hidden();
  alignas(64) float o[kMaxBlocks * kMaxTokens * kB];
  ForEachTile(d0, d1, act.n, [&](int64_t b, int mb, int64_t t0, int nt) {
    DotTile(e.down, b, mb, act, t0, nt, bf16_activations, o);
    for (int i = 0; i < mb; ++i) {
      const int64_t first = (b + i) * kB;
      const int64_t lo = std::max(d0, first), hi = std::min(d1, first + kB);
      for (int t = 0; t < nt; ++t)
        std::copy(o + (i * nt + t) * kB + (lo - first), o + (i * nt + t) * kB + (hi - first),
                  y + (t0 + t) * hidden + lo);
    }
  });
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AVX-512); keep the link whole.

void Avx512GateUpRows(const PackedExpert& e, const ExpertActivations& x, bool, int64_t r0,
                      int64_t r1, float* act) {
  ReferenceGateUpRows(e, x, r0, r1, act);
}
void Avx512DownRows(const PackedExpert& e, const ExpertActivations& act, bool, int64_t d0,
                    int64_t d1, float* y) {
  ReferenceDownRows(e, act, d0, d1, y);
}

#endif

}  // namespace tandem::moe_internal
