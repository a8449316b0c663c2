// The AMX bf16 MoE kernels over the packed layout of moe_pack.h. Only the functions marked
// TANDEM_AMX use AMX / AVX-512 instructions, so this file compiles for any x86-64 and its code runs
// only where ResolveCpuKernel returned kAmx (which also means the process holds the Linux
// permission for the tile data state: isa.cc requests it, per process, on detection, so any thread
// may then use the tiles).
//
// No second packed copy is needed: one 16-row block of moe_pack.h's layout, pairs [p0, p0 + 16),
// is 16 vectors of 64 bytes, vector p holding (W[r][2p], W[r][2p + 1]) for r = 0..15 -- exactly the
// VNNI form of AMX's B operand (K/2 rows of N = 16 column pairs) for C[token][row] = x . W^T.
// The A operand is 16 tokens x 32 bf16 activations, read straight from the bf16 pairs [n x
// ceil(k/2)] (row stride = the pairs' stride).
//
// Micro-kernel (8 tiles, all 16 x 64 bytes): C0..C3 = 2 weight blocks x 2 token tiles, A4/A5 = the
// two token tiles, B6/B7 = the two weight blocks; per 32-wide K step: 2 A loads, 2 B loads, 4
// TDPBF16PS. GateUpRows pairs the gate and the up block of the same 16 rows (so SiLU(g) * u is
// computed from the C tiles directly); DownRows pairs two consecutive row blocks of down.
// Edges: a K tail (k_pairs not a multiple of 16) and a token tail (n not a multiple of 16) are
// copied into zero-padded 1 KB stack tiles; row tails are zero rows of the packing. C tiles are
// stored to a stack buffer and the rows of [r0, r1) copied out, so any range is correct.
// Each call loads the tile configuration at its start and releases the tiles at its end: the
// configuration is per thread, and concurrent calls on other threads are independent.
// The dispatch (moe_kernel.cc) sends calls of >= kAmxMinTokens tokens here (moe_kernel_impl.h).
// Not yet tuned: no K blocking across token tiles (weights of the 2 blocks, 2 x 16 rows x K, stay
// in L2 across the token tiles; the activations are re-read per block pair). Measured on the
// 16-core AMX Xeon, DeepSeek-V3 expert (2048 x 7168), 16 threads: 4.4 TFLOPS at 256-1024 tokens,
// ~21% of a register-only TDPBF16PS loop's 20.9 TFLOPS.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/moe_kernel_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem::moe_internal {

#if defined(__x86_64__)
namespace {

#define TANDEM_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int64_t kB = PackedMatrix::kBlockRows;  // 16 rows of W = N of a C tile
constexpr int64_t kTileTokens = 16;               // M of a C tile
constexpr int64_t kTilePairs = 16;                // K / 2 of one TDPBF16PS

// Palette 1, tiles 0..7 all 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

const TileConfig& Config() {
  static const TileConfig config = [] {
    TileConfig c;
    std::memset(&c, 0, sizeof(c));
    c.palette_id = 1;
    for (int i = 0; i < 8; ++i) {
      c.colsb[i] = 64;
      c.rows[i] = 16;
    }
    return c;
  }();
  return config;
}

// Where a 16 x 64-byte A tile (tokens [t0, t0 + 16), pairs [p0, p0 + 16)) is read from: in place
// when whole, else from `pad` (zero-padded copy).
struct Operand {
  const void* ptr;
  int64_t stride;  // bytes
};

Operand ATile(const uint32_t* x, int64_t n, int64_t pairs, int64_t t0, int64_t p0, uint32_t* pad) {
  if (t0 + kTileTokens <= n && p0 + kTilePairs <= pairs) return {x + t0 * pairs + p0, pairs * 4};
  std::memset(pad, 0, kTileTokens * kTilePairs * 4);
  const int64_t nt = std::min(kTileTokens, n - t0), np = std::min(kTilePairs, pairs - p0);
  for (int64_t t = 0; t < nt; ++t)
    std::memcpy(pad + t * kTilePairs, x + (t0 + t) * pairs + p0, np * 4);
  return {pad, 64};
}

// B tile: pairs [p0, p0 + 16) of one packed block (k_pairs vectors of 64 bytes).
Operand BTile(const uint16_t* block, int64_t k_pairs, int64_t p0, uint16_t* pad) {
  if (p0 + kTilePairs <= k_pairs) return {block + p0 * 2 * kB, 64};
  std::memset(pad, 0, kTilePairs * 64);
  std::memcpy(pad, block + p0 * 2 * kB, (k_pairs - p0) * 64);
  return {pad, 64};
}

// out[(j * 2 + t) * 256 + m * 16 + c] = sum_k x[t0 + 16 t + m][k] * W_j[row c][k], for weight
// blocks w0 (j = 0) and, if kTwoB, w1 (j = 1), token tiles t = 0 and, if kTwoT, 1.
template <bool kTwoB, bool kTwoT>
TANDEM_AMX void TileDot(const uint16_t* w0, const uint16_t* w1, int64_t k_pairs, const uint32_t* x,
                        int64_t n, int64_t t0, float* out) {
  alignas(64) uint32_t pad_a0[kTileTokens * kTilePairs], pad_a1[kTileTokens * kTilePairs];
  alignas(64) uint16_t pad_b0[kTilePairs * 2 * kB], pad_b1[kTilePairs * 2 * kB];
  _tile_zero(0);
  if constexpr (kTwoT) _tile_zero(1);
  if constexpr (kTwoB) _tile_zero(2);
  if constexpr (kTwoB && kTwoT) _tile_zero(3);
  for (int64_t p0 = 0; p0 < k_pairs; p0 += kTilePairs) {
    const Operand a0 = ATile(x, n, k_pairs, t0, p0, pad_a0);
    _tile_loadd(4, a0.ptr, a0.stride);
    if constexpr (kTwoT) {
      const Operand a1 = ATile(x, n, k_pairs, t0 + kTileTokens, p0, pad_a1);
      _tile_loadd(5, a1.ptr, a1.stride);
    }
    const Operand b0 = BTile(w0, k_pairs, p0, pad_b0);
    _tile_loadd(6, b0.ptr, b0.stride);
    if constexpr (kTwoB) {
      const Operand b1 = BTile(w1, k_pairs, p0, pad_b1);
      _tile_loadd(7, b1.ptr, b1.stride);
    }
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kTwoT) _tile_dpbf16ps(1, 5, 6);
    if constexpr (kTwoB) _tile_dpbf16ps(2, 4, 7);
    if constexpr (kTwoB && kTwoT) _tile_dpbf16ps(3, 5, 7);
  }
  constexpr int64_t kTile = kTileTokens * kB;
  _tile_stored(0, out, 64);
  if constexpr (kTwoT) _tile_stored(1, out + kTile, 64);
  if constexpr (kTwoB) _tile_stored(2, out + 2 * kTile, 64);
  if constexpr (kTwoB && kTwoT) _tile_stored(3, out + 3 * kTile, 64);
}

void Dot(bool two_b, bool two_t, const uint16_t* w0, const uint16_t* w1, int64_t k_pairs,
         const uint32_t* x, int64_t n, int64_t t0, float* out) {
  if (two_b) {
    if (two_t)
      TileDot<true, true>(w0, w1, k_pairs, x, n, t0, out);
    else
      TileDot<true, false>(w0, w1, k_pairs, x, n, t0, out);
  } else {
    if (two_t)
      TileDot<false, true>(w0, w1, k_pairs, x, n, t0, out);
    else
      TileDot<false, false>(w0, w1, k_pairs, x, n, t0, out);
  }
}

TANDEM_AMX void LoadTiles() { _tile_loadconfig(&Config()); }
TANDEM_AMX void ReleaseTiles() { _tile_release(); }

// The activations as bf16 pairs: x.bf16_pairs when given, else x.f32 converted (same rounding as
// ConvertToBf16Pairs) into a per-thread buffer.
const uint32_t* Pairs(const ExpertActivations& x) {
  if (x.bf16_pairs != nullptr) return x.bf16_pairs;
  thread_local std::vector<uint32_t> converted;
  converted.resize(x.n * Bf16PairCount(x.k));
  ConvertToBf16Pairs(x.f32, x.n, x.k, converted.data());
  return converted.data();
}

}  // namespace

void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act) {
  if (r0 >= r1 || x.n == 0) return;
  const int64_t inter = e.intermediate(), k_pairs = e.gate.k_pairs();
  const uint32_t* xp = Pairs(x);
  alignas(64) float o[4 * kTileTokens * kB];  // [gate t0, gate t1, up t0, up t1]
  LoadTiles();
  for (int64_t b = r0 / kB; b < (r1 + kB - 1) / kB; ++b) {
    const int64_t first = b * kB, lo = std::max(r0, first), hi = std::min(r1, first + kB);
    for (int64_t t0 = 0; t0 < x.n; t0 += 2 * kTileTokens) {
      const bool two_t = t0 + kTileTokens < x.n;
      Dot(true, two_t, e.gate.block(b), e.up.block(b), k_pairs, xp, x.n, t0, o);
      const int64_t nt = std::min(2 * kTileTokens, x.n - t0);
      for (int64_t t = 0; t < nt; ++t) {
        const float* g = o + (t / kTileTokens) * kTileTokens * kB + (t % kTileTokens) * kB;
        const float* u = g + 2 * kTileTokens * kB;
        float* out = act + (t0 + t) * inter;
        for (int64_t r = lo; r < hi; ++r) out[r] = SiluTimes(g[r - first], u[r - first]);
      }
    }
  }
  ReleaseTiles();
}

void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y) {
  if (d0 >= d1 || act.n == 0) return;
  const int64_t hidden = e.hidden(), k_pairs = e.down.k_pairs();
  const uint32_t* ap = Pairs(act);
  alignas(64) float o[4 * kTileTokens * kB];  // [block b t0, b t1, b+1 t0, b+1 t1]
  LoadTiles();
  const int64_t b1 = (d1 + kB - 1) / kB;
  for (int64_t b = d0 / kB; b < b1; b += 2) {
    const bool two_b = b + 1 < b1;
    for (int64_t t0 = 0; t0 < act.n; t0 += 2 * kTileTokens) {
      const bool two_t = t0 + kTileTokens < act.n;
      Dot(two_b, two_t, e.down.block(b), two_b ? e.down.block(b + 1) : nullptr, k_pairs, ap, act.n,
          t0, o);
      const int64_t nt = std::min(2 * kTileTokens, act.n - t0);
      for (int j = 0; j < (two_b ? 2 : 1); ++j) {
        const int64_t first = (b + j) * kB, lo = std::max(d0, first), hi = std::min(d1, first + kB);
        for (int64_t t = 0; t < nt; ++t) {
          const float* src =
              o + (j * 2 + t / kTileTokens) * kTileTokens * kB + (t % kTileTokens) * kB;
          std::copy(src + (lo - first), src + (hi - first), y + (t0 + t) * hidden + lo);
        }
      }
    }
  }
  ReleaseTiles();
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AMX); keep the link whole.

void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act) {
  ReferenceGateUpRows(e, x, r0, r1, act);
}
void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y) {
  ReferenceDownRows(e, act, d0, d1, y);
}

#endif

}  // namespace tandem::moe_internal
