// Internal to the AMX MoE kernels (moe_kernel_amx.cc: bf16 TDPBF16PS; moe_kernel_amx_int8.cc:
// int8 TDPBSSD): the tile configuration, and the blocked tile product both run. Include only
// under `#if defined(__x86_64__)`; every function here runs only where ResolveCpuKernel returned
// kAmx (which requires amx_tile, amx_bf16 and amx_int8 together, plus AVX-512).
//
// The product (GroupProduct) computes, for one group of 2 (default) or 4 packed 16-row weight
// blocks and all n tokens of a call, the C tiles [16 tokens x 16 rows] of every (token tile,
// block), and hands them to an epilogue. Both operands are split into K steps of 64 bytes (32 bf16
// / 64 int8):
//   * B (weights): step s of a packed block (moe_pack.h) is its 16 vectors [16 s, 16 s + 16): 1 KB,
//     one B tile, read in place (a bf16 K tail step comes from a zero-padded copy).
//   * A (activations), from one of three sources:
//       TileOrder (ExpertActivations::amx_tiles, what ExpertShard::Run and ExpertForward give):
//         filled once per expert in tile order, every tile read in place from two sequential
//         streams -- no per-call packing, and no 16 rows on 16 pages per tile load;
//       ByteRows (bf16 pairs / q8 rows): 16-token tiles read in place (row stride = the
//         activations' stride) when whole;
//       F32Rows, and the token / K tails of ByteRows: a small per-thread panel in tile order (step
//         s of token tile i at (2 s + i) KB), converted with ConvertToBf16Pairs's rounding and
//         zero-padded past the last token and past K.
// Loop nest (kc = K steps per K block):
//   for K block c:                      -- C tiles go through a per-thread [tile][block] buffer
//     for token-tile pair p:            --   between K blocks; the last K block hands them to the
//       A of (c, p): in place or packed --   epilogue straight from the tiles
//       for block pair j:               -- gate/up: (gate b, up b) [, (gate b+1, up b+1)]
//         C = 0 (c == 0) or load C; for s in c: 2 A + 2 B tile loads, 4 TDPs; store C
// Why this is near the limit of its kind (`tandem-bench amx-loads` on the GPU machine's Xeon, 16
// threads, random bf16 data, bench/RESULTS.md): 4 TDPs on register-resident tiles reach ~14
// TFLOPS; the same 4 TDPs with the 2 A + 2 B tile loads of a 2x2 step reach ~0.7 of that with
// both operands in L1 and ~0.58-0.66 with one or both in L2 -- the tile loads themselves cost a
// third of the peak. 2x2 C tiles are the most reuse 8 tiles allow (1 load per TDP); the kernels
// reach 40-46% of the register-only peak in their gate/up phase (bf16 and int8, 128-512 tokens
// per expert).
// Defaults (group of 2 blocks, kc >= K, no software prefetch) make this exactly the original 2x2
// kernel's loop -- per block pair, per token-tile pair, all of K with C in the tiles, A in place --
// which measured best on the GPU machine's AMX Xeon (16 vCPUs, 2 MB L2 each, 300 MB L3),
// DeepSeek-V3 expert (7168 x 2048), the caller's 32-row tasks, 16 threads, bf16 pairs
// given: 4.5-5.5 TFLOPS gate/up and 4-5.5 down at 32-1024 tokens (30-40% of a 14 TFLOPS
// register-only peak measured in the same runs, noisy host), equal to the original kernel. The
// alternatives below were slower there (gate/up at 1024 tokens: ~4.3 TFLOPS always packing A; ~6.4
// vs 7.2-8.3 with K blocks of 8 steps, 4-block groups, B/C prefetch, on a quieter host) -- they
// stay selectable for other machines and measurements. Knobs (read once per process; results are
// bit-identical under all of them: a (token, row) always gets the same TDP sequence over the K
// steps in order):
//   TANDEM_AMX_KSTEPS=<1..4096>  K steps per K block (default 4096: one block);
//   TANDEM_AMX_GROUP=<2|4>       weight blocks per group (4: gate/up A tiles feed 2 block pairs);
//   TANDEM_AMX_PREFETCH=<mask>   1: next B step to L1; 2: next K block's B to L2 (and K block 0's
//                                at the start); 4: next unit's A rows to L2; 8: next pair's C to
//                                L1.
// TANDEM_AMX_EMULATE (never set by the build): the tile instructions become scalar C++ on
// per-thread tile state, so that the kernels' indexing can be tested on machines without AMX
// (TDPBF16PS is emulated in plain f32, so bf16 results match the hardware only to rounding).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cpu/convert_avx512.h"  // Bf16x16, FirstLanes
#include "kernels/cpu/moe_kernel_impl.h"
#include "kernels/cpu/silu.h"

#define TANDEM_AMX \
  __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace tandem::moe_internal::amx {

constexpr int64_t kTileRows = 16;     // tokens of an A tile / C tile; K-step vectors of a B tile
constexpr int64_t kRowBytes = 64;     // bytes of one tile row (all tiles are 16 x 64 bytes)
constexpr int64_t kTileBytes = 1024;  // one tile; also one K step of one packed 16-row block
constexpr int kMaxWeightBlocks = 4;   // weight blocks of one GroupProduct (C tiles: 2 x 2)

enum class TileKind { kBf16, kInt8 };  // TDPBF16PS (f32 C) or TDPBSSD (int32 C)

// Palette 1, tiles 0..7 all 16 rows x 64 bytes (tile roles: PairProduct).
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

inline const TileConfig& Config() {
  static const TileConfig config = [] {
    TileConfig c;
    std::memset(&c, 0, sizeof(c));
    c.palette_id = 1;
    for (int i = 0; i < 8; ++i) {
      c.colsb[i] = kRowBytes;
      c.rows[i] = kTileRows;
    }
    return c;
  }();
  return config;
}

// Stops the compiler from moving ordinary stores past a tile load: GCC's _tile_loadd is an asm
// statement that declares no memory input.
inline void CompilerBarrier() { __asm__ __volatile__("" ::: "memory"); }

#if defined(TANDEM_AMX_EMULATE)

struct EmuTiles {
  alignas(64) uint8_t t[8][kTileRows][kRowBytes];
};
inline EmuTiles& Emu() {
  thread_local EmuTiles e;
  return e;
}
inline void EmuLoad(int i, const void* p, int64_t stride) {
  for (int r = 0; r < kTileRows; ++r)
    std::memcpy(Emu().t[i][r], static_cast<const uint8_t*>(p) + r * stride, kRowBytes);
}
inline void EmuStore(int i, void* p, int64_t stride) {
  for (int r = 0; r < kTileRows; ++r)
    std::memcpy(static_cast<uint8_t*>(p) + r * stride, Emu().t[i][r], kRowBytes);
}
inline void EmuZero(int i) { std::memset(Emu().t[i], 0, sizeof(Emu().t[i])); }
inline float EmuBf16(const uint8_t* p) {
  uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline void EmuDpbf16(int c, int a, int b) {
  EmuTiles& e = Emu();
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float acc;
      std::memcpy(&acc, &e.t[c][m][4 * n], 4);
      for (int k = 0; k < 16; ++k)
        acc += EmuBf16(&e.t[a][m][4 * k]) * EmuBf16(&e.t[b][k][4 * n]) +
               EmuBf16(&e.t[a][m][4 * k + 2]) * EmuBf16(&e.t[b][k][4 * n + 2]);
      std::memcpy(&e.t[c][m][4 * n], &acc, 4);
    }
}
inline void EmuDpbssd(int c, int a, int b) {
  EmuTiles& e = Emu();
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      int32_t acc;
      std::memcpy(&acc, &e.t[c][m][4 * n], 4);
      for (int k = 0; k < 16; ++k)
        for (int j = 0; j < 4; ++j)
          acc +=
              static_cast<int8_t>(e.t[a][m][4 * k + j]) * static_cast<int8_t>(e.t[b][k][4 * n + j]);
      std::memcpy(&e.t[c][m][4 * n], &acc, 4);
    }
}
#define TANDEM_TILE_LOAD(t, p, s) ::tandem::moe_internal::amx::EmuLoad(t, p, s)
#define TANDEM_TILE_STORE(t, p, s) ::tandem::moe_internal::amx::EmuStore(t, p, s)
#define TANDEM_TILE_ZERO(t) ::tandem::moe_internal::amx::EmuZero(t)
#define TANDEM_TILE_DP(kind, c, a, b)                                     \
  do {                                                                    \
    if constexpr ((kind) == ::tandem::moe_internal::amx::TileKind::kBf16) \
      ::tandem::moe_internal::amx::EmuDpbf16(c, a, b);                    \
    else                                                                  \
      ::tandem::moe_internal::amx::EmuDpbssd(c, a, b);                    \
  } while (0)
inline void LoadTiles() {}
inline void ReleaseTiles() {}

#else  // real tiles

// Tile numbers must be literals (GCC's intrinsics paste them into the asm text).
#define TANDEM_TILE_LOAD(t, p, s) _tile_loadd(t, p, s)
#define TANDEM_TILE_STORE(t, p, s) _tile_stored(t, p, s)
#define TANDEM_TILE_ZERO(t) _tile_zero(t)
#define TANDEM_TILE_DP(kind, c, a, b)                                     \
  do {                                                                    \
    if constexpr ((kind) == ::tandem::moe_internal::amx::TileKind::kBf16) \
      _tile_dpbf16ps(c, a, b);                                            \
    else                                                                  \
      _tile_dpbssd(c, a, b);                                              \
  } while (0)
// The configuration is per thread: every kernel call loads it at its start and releases the
// tiles at its end, so concurrent calls on other threads are independent.
TANDEM_AMX inline void LoadTiles() { _tile_loadconfig(&Config()); }
TANDEM_AMX inline void ReleaseTiles() { _tile_release(); }

#endif

// Measurement knobs (see the header comment); read once per process.
struct Tuning {
  int64_t k_steps = 4096;  // >= any K: C stays in the tiles over the whole K
  unsigned prefetch = 0;
  int group_blocks = 2;  // weight blocks per GroupProduct: 2 or 4
};
enum : unsigned { kPfNextB = 1, kPfFarB = 2, kPfNextA = 4, kPfNextC = 8 };

inline const Tuning& GetTuning() {
  static const Tuning tuning = [] {
    Tuning t;
    if (const char* s = std::getenv("TANDEM_AMX_KSTEPS")) {
      const long v = std::strtol(s, nullptr, 10);
      if (v >= 1 && v <= 4096) t.k_steps = v;
    }
    if (const char* s = std::getenv("TANDEM_AMX_GROUP")) {
      const long v = std::strtol(s, nullptr, 10);
      if (v == 2 || v == 4) t.group_blocks = static_cast<int>(v);
    }
    if (const char* s = std::getenv("TANDEM_AMX_PREFETCH")) {
      const long v = std::strtol(s, nullptr, 0);
      if (v >= 0 && v <= 15) t.prefetch = static_cast<unsigned>(v);
    }
    return t;
  }();
  return tuning;
}

// Per-thread 64-byte-aligned scratch buffers that only grow; slot < kScratchSlots.
enum ScratchSlot { kAccSlot, kPanelSlot, kTailSlot, kScratchSlots };
inline uint8_t* Scratch(ScratchSlot slot, int64_t bytes) {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  struct Buffer {
    std::unique_ptr<uint8_t, Free> p;
    int64_t size = 0;
  };
  thread_local Buffer buffers[kScratchSlots];
  Buffer& b = buffers[slot];
  if (b.size < bytes) {
    const int64_t size = (bytes + 4095) / 4096 * 4096;
    void* p = std::aligned_alloc(4096, static_cast<size_t>(size));
    if (p == nullptr) throw std::bad_alloc();
    b.p.reset(static_cast<uint8_t*>(p));
    b.size = size;
  }
  return b.p.get();
}

// Prefetches `rows` runs of `lines` cache lines (run i starting at base + i * stride), a few lines
// per call of Issue, spread over the K steps of the current work unit.
struct PrefetchStream {
  const char* base = nullptr;
  int64_t stride = 0, lines = 0, rows = 0;
  int64_t per_issue = 0;
  int64_t row = 0, line = 0;

  void Spread(int64_t issues) { per_issue = issues > 0 ? (lines * rows + issues - 1) / issues : 0; }
  template <decltype(_MM_HINT_T0) kHint>  // _MM_HINT_T0 (L1) or _MM_HINT_T1 (L2)
  void Issue() {
    int64_t r = row, l = line;
    const char* p = base + r * stride + l * kRowBytes;
    for (int64_t i = 0; i < per_issue && r < rows; ++i) {
      _mm_prefetch(p, kHint);
      if (++l == lines) {
        l = 0;
        ++r;
        p = base + r * stride;
      } else {
        p += kRowBytes;
      }
    }
    row = r;
    line = l;
  }
};

// Where the A tiles of a token-tile pair start in memory: tile i (0, 1), K step s at
// a + i * a_tile + s * a_step, its 16 rows a_stride apart.
struct ATiles {
  const uint8_t* a;
  int64_t a_tile, a_step, a_stride;
};

// Activation rows of bytes read in place (bf16 pairs: 4 bytes per K pair; int8: 1 per K value):
// row t at base + t * stride, `valid` bytes of data, zero assumed beyond.
struct ByteRows {
  const uint8_t* base;
  int64_t stride;
  int64_t valid;

  // dst + s * dst_stride (64 bytes) = K step ks0 + s of token t, for s < steps.
  TANDEM_AMX void PackRow(int64_t t, int64_t ks0, int64_t steps, uint8_t* dst,
                          int64_t dst_stride) const {
    const uint8_t* row = base + t * stride;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t off = (ks0 + s) * kRowBytes;
      __m512i v;
      if (off + kRowBytes <= valid) {
        v = _mm512_loadu_si512(row + off);
      } else if (off < valid) {
        const __mmask64 m = (~0ULL) >> (kRowBytes - (valid - off));
        v = _mm512_maskz_loadu_epi8(m, row + off);
      } else {
        v = _mm512_setzero_si512();
      }
      _mm512_store_si512(dst + s * dst_stride, v);
    }
  }
  // Whether tokens [t0, t0 + rows) x K steps [ks0, ks1) can be tile-loaded in place (all rows
  // exist, all steps inside the valid bytes), and where (step s of row i at + i * stride + 64 s).
  bool InPlace(int64_t t0, int64_t rows, int64_t n, int64_t ks1) const {
    return t0 + rows <= n && ks1 * kRowBytes <= valid;
  }
  ATiles Tiles(int64_t t0, int64_t ks0) const {
    return {base + t0 * stride + ks0 * kRowBytes, kTileRows * stride, kRowBytes, stride};
  }
  // The source lines of tokens [t0, t1), K steps [ks0, ks1).
  PrefetchStream Lines(int64_t t0, int64_t t1, int64_t ks0, int64_t ks1) const {
    PrefetchStream p;
    p.base = reinterpret_cast<const char*>(base + t0 * stride + ks0 * kRowBytes);
    p.stride = stride;
    p.lines = (ks1 - ks0) + 1;  // + 1: the runs need not start on a line
    p.rows = t1 - t0;
    return p;
  }
};

// f32 activations (row t at base + t * k) converted to bf16 pairs while packing, with the rounding
// of ConvertToBf16Pairs / FloatToBf16 (nearest even; NaN stays NaN, quieted), zero beyond k.
struct F32Rows {
  const float* base;
  int64_t k;

  TANDEM_AMX void PackRow(int64_t t, int64_t ks0, int64_t steps, uint8_t* dst,
                          int64_t dst_stride) const {
    const float* row = base + t * k;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t f = (ks0 + s) * 32;  // 32 floats = 16 pairs = one 64-byte tile row
      __m512 lo, hi;
      if (f + 32 <= k) {
        lo = _mm512_loadu_ps(row + f);
        hi = _mm512_loadu_ps(row + f + 16);
      } else {
        lo = _mm512_maskz_loadu_ps(convert_internal::FirstLanes(k - f), row + f);
        hi = _mm512_maskz_loadu_ps(convert_internal::FirstLanes(k - f - 16), row + f + 16);
      }
      uint8_t* d = dst + s * dst_stride;
      _mm256_store_si256(reinterpret_cast<__m256i*>(d), convert_internal::Bf16x16(lo));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 32), convert_internal::Bf16x16(hi));
    }
  }
  bool InPlace(int64_t, int64_t, int64_t, int64_t) const { return false; }  // always converted
  ATiles Tiles(int64_t, int64_t) const { return {}; }
  PrefetchStream Lines(int64_t t0, int64_t t1, int64_t ks0, int64_t ks1) const {
    PrefetchStream p;
    p.base = reinterpret_cast<const char*>(base + t0 * k + ks0 * 32);
    p.stride = k * 4;
    p.lines = 2 * (ks1 - ks0) + 1;
    p.rows = t1 - t0;
    return p;
  }
};

// Activations already in tile order (ExpertActivations::amx_tiles, filled once per expert by
// ActivationBuffer): tile i (tokens [16 i, 16 i + 16)), K step s is the 1 KB at
// base + (i * steps + s) KB, zero past the last token and past K. Every A tile is read in place,
// from two sequential streams per token-tile pair, so no call packs a panel.
struct TileOrder {
  const uint8_t* base;
  int64_t steps;  // K steps per token tile (>= the product's K steps)

  const uint8_t* Tile(int64_t t, int64_t ks) const {
    return base + ((t / kTileRows) * steps + ks) * kTileBytes + (t % kTileRows) * kRowBytes;
  }
  bool InPlace(int64_t, int64_t, int64_t, int64_t) const { return true; }
  ATiles Tiles(int64_t t0, int64_t ks0) const {
    return {Tile(t0, ks0), steps * kTileBytes, kTileBytes, kRowBytes};
  }
  // Not reached (InPlace is always true); kept so GroupProduct's panel branch compiles.
  TANDEM_AMX void PackRow(int64_t t, int64_t ks0, int64_t count, uint8_t* dst,
                          int64_t dst_stride) const {
    for (int64_t s = 0; s < count; ++s) std::memcpy(dst + s * dst_stride, Tile(t, ks0 + s), kRowBytes);
  }
  // The tiles of tokens [t0, t1), K steps [ks0, ks1): one run of whole tiles per token tile.
  PrefetchStream Lines(int64_t t0, int64_t t1, int64_t ks0, int64_t ks1) const {
    PrefetchStream p;
    p.base = reinterpret_cast<const char*>(Tile(t0 - t0 % kTileRows, ks0));
    p.stride = steps * kTileBytes;
    p.lines = (ks1 - ks0) * kTileRows;
    p.rows = (t1 - t0 + kTileRows - 1) / kTileRows;
    return p;
  }
};

// One group of weight blocks: K step s of block j is the 1 KB at block[j] + s * kTileBytes for
// s < whole_steps; step whole_steps (when < nks, bf16 only) is read from tail[j], a zero-padded
// copy.
struct WeightGroup {
  int nwb = 0;
  const uint8_t* block[kMaxWeightBlocks] = {};
  int64_t whole_steps = 0;
  const uint8_t* tail[kMaxWeightBlocks] = {};
};

// One (token-tile pair, block pair, K block) work item of PairProduct.
struct PairJob {
  const uint8_t* a;        // A tile of token tile i, step s: a + i * a_tile + s * a_step, rows
  int64_t a_tile, a_step;  // a_stride apart (the packed panel: 1 KB, 2 KB, 64; in place: 16
  int64_t a_stride;        // rows, 64, the row stride)
  const uint8_t* b0;       // block j (step 0)
  const uint8_t* b1;       // block j + 1 (kTwoB)
  const uint8_t* tail0;    // the tail steps' copies
  const uint8_t* tail1;
  int64_t ks0, steps;  // K steps [ks0, ks0 + steps)
  int64_t whole_steps;
  const uint8_t* c_in;  // C to continue from (tile (i, j) at + i * c_in_ts + j * KB) or null: 0
  int64_t c_in_ts;
  uint8_t* c_out;  // where C goes (tile (i, j) at + i * c_out_ts + j * c_out_js)
  int64_t c_out_ts, c_out_js;
  bool pf_next_b;          // prefetch the next step's B tiles into L1
  int64_t pf_far_b;        // > 0: prefetch B this many steps ahead into L2
  PrefetchStream* next_a;  // the next unit's A rows (into L2), or null
  PrefetchStream* next_c;  // the next pair's C tiles (into L1), or null
};

template <TileKind kKind, bool kTwoT, bool kTwoB>
TANDEM_AMX void Steps(const uint8_t* a, const uint8_t* b0, const uint8_t* b1, int64_t steps,
                      const PairJob& job) {
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* as = a + s * job.a_step;
    const uint8_t* bs0 = b0 + s * kTileBytes;
    TANDEM_TILE_LOAD(4, as, job.a_stride);
    TANDEM_TILE_LOAD(6, bs0, kRowBytes);
    if constexpr (kTwoT) TANDEM_TILE_LOAD(5, as + job.a_tile, job.a_stride);
    if constexpr (kTwoB) TANDEM_TILE_LOAD(7, b1 + s * kTileBytes, kRowBytes);
    if (job.pf_next_b) {
      for (int l = 0; l < 16; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(bs0 + kTileBytes + l * kRowBytes), _MM_HINT_T0);
        if constexpr (kTwoB)
          _mm_prefetch(reinterpret_cast<const char*>(b1 + (s + 1) * kTileBytes + l * kRowBytes),
                       _MM_HINT_T0);
      }
    }
    if (job.pf_far_b > 0) {
      for (int l = 0; l < 16; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(bs0 + job.pf_far_b * kTileBytes + l * kRowBytes),
                     _MM_HINT_T1);
        if constexpr (kTwoB)
          _mm_prefetch(
              reinterpret_cast<const char*>(b1 + (s + job.pf_far_b) * kTileBytes + l * kRowBytes),
              _MM_HINT_T1);
      }
    }
    if (job.next_a != nullptr) job.next_a->Issue<_MM_HINT_T1>();
    if (job.next_c != nullptr) job.next_c->Issue<_MM_HINT_T0>();
    TANDEM_TILE_DP(kKind, 0, 4, 6);
    if constexpr (kTwoT) TANDEM_TILE_DP(kKind, 1, 5, 6);
    if constexpr (kTwoB) TANDEM_TILE_DP(kKind, 2, 4, 7);
    if constexpr (kTwoT && kTwoB) TANDEM_TILE_DP(kKind, 3, 5, 7);
  }
}

// C tiles 0-3 = (token tile i, block j) for i, j in {0, 1} as tile 2 j + i; A: 4 (i = 0), 5 (i =
// 1); B: 6 (j = 0), 7 (j = 1).
template <TileKind kKind, bool kTwoT, bool kTwoB>
TANDEM_AMX void PairProduct(const PairJob& job) {
  if (job.c_in != nullptr) {
    TANDEM_TILE_LOAD(0, job.c_in, kRowBytes);
    if constexpr (kTwoT) TANDEM_TILE_LOAD(1, job.c_in + job.c_in_ts, kRowBytes);
    if constexpr (kTwoB) TANDEM_TILE_LOAD(2, job.c_in + kTileBytes, kRowBytes);
    if constexpr (kTwoT && kTwoB)
      TANDEM_TILE_LOAD(3, job.c_in + job.c_in_ts + kTileBytes, kRowBytes);
  } else {
    TANDEM_TILE_ZERO(0);
    if constexpr (kTwoT) TANDEM_TILE_ZERO(1);
    if constexpr (kTwoB) TANDEM_TILE_ZERO(2);
    if constexpr (kTwoT && kTwoB) TANDEM_TILE_ZERO(3);
  }
  const int64_t whole = std::clamp<int64_t>(job.whole_steps - job.ks0, 0, job.steps);
  Steps<kKind, kTwoT, kTwoB>(job.a, job.b0 + job.ks0 * kTileBytes,
                             kTwoB ? job.b1 + job.ks0 * kTileBytes : nullptr, whole, job);
  if (whole < job.steps) {  // the last K step, from the zero-padded tail copies (bf16 only)
    PairJob tail = job;
    tail.pf_next_b = false;
    tail.pf_far_b = 0;
    Steps<kKind, kTwoT, kTwoB>(job.a + whole * job.a_step, job.tail0, job.tail1, job.steps - whole,
                               tail);
  }
  TANDEM_TILE_STORE(0, job.c_out, kRowBytes);
  if constexpr (kTwoT) TANDEM_TILE_STORE(1, job.c_out + job.c_out_ts, kRowBytes);
  if constexpr (kTwoB) TANDEM_TILE_STORE(2, job.c_out + job.c_out_js, kRowBytes);
  if constexpr (kTwoT && kTwoB)
    TANDEM_TILE_STORE(3, job.c_out + job.c_out_ts + job.c_out_js, kRowBytes);
}

template <TileKind kKind>
TANDEM_AMX void RunPair(bool two_t, bool two_b, const PairJob& job) {
  if (two_t) {
    if (two_b)
      PairProduct<kKind, true, true>(job);
    else
      PairProduct<kKind, true, false>(job);
  } else {
    if (two_b)
      PairProduct<kKind, false, true>(job);
    else
      PairProduct<kKind, false, false>(job);
  }
}

// The C tiles of tokens [0, n) x the blocks of `w` over K steps [0, nks) (A rows from `src`), in
// the loop nest of the header comment. For each token-tile pair p and block pair j (blocks j and
// j + 1 when two_b), once:
//   epilogue(t0 = 32 p, nt = tokens of the pair (<= 32, all < n), j, two_b, out)
// where out holds the finished C tiles, 16 x 16 elements of 4 bytes (f32 for kBf16, int32 for
// kInt8), row m = token t0 + 16 i + m, column c = row c of the block: tile (i, j + jj) at
// out + (2 jj + i) KB. Requires the tiles configured (LoadTiles). nks may be 0 (C = 0).
template <TileKind kKind, class Source, class Epilogue>
TANDEM_AMX void GroupProduct(const Source& src, int64_t n, int64_t nks, const WeightGroup& w,
                             const Epilogue& epilogue) {
  const Tuning& tuning = GetTuning();
  const int64_t kc = tuning.k_steps;
  const int64_t nkc = std::max<int64_t>(1, (nks + kc - 1) / kc);
  const int64_t ntt = (n + kTileRows - 1) / kTileRows, ntp = (ntt + 1) / 2;
  const int nwb = w.nwb, njp = (nwb + 1) / 2;
  uint8_t* panel = Scratch(kPanelSlot, 2 * kc * kTileBytes);
  uint8_t* acc = nkc > 1 ? Scratch(kAccSlot, ntt * nwb * kTileBytes) : nullptr;
  const int64_t acc_ts = nwb * kTileBytes;  // token tile stride of acc ([tile][block] tiles)
  alignas(64) uint8_t out[4 * kTileBytes];
  PrefetchStream next_a, next_c;
  if (tuning.prefetch & kPfFarB) {  // K block 0's weights (later blocks: one block ahead, below)
    for (int j = 0; j < nwb; ++j)
      for (int64_t l = 0; l < std::min(kc, w.whole_steps) * kTileRows; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(w.block[j] + l * kRowBytes), _MM_HINT_T1);
  }
  for (int64_t c = 0; c < nkc; ++c) {
    const int64_t ks0 = c * kc, ks1 = std::min(nks, ks0 + kc),
                  steps = std::max<int64_t>(0, ks1 - ks0);
    for (int64_t p = 0; p < ntp; ++p) {
      const int64_t t0 = 2 * p * kTileRows;
      const bool two_t = 2 * p + 1 < ntt;
      // The A tiles of (c, p): read in place when whole, else from the packed panel: 16 or 32
      // token rows (zero past n), steps x 64 bytes each (zero past K).
      const uint8_t* a = panel;
      int64_t a_tile = kTileBytes, a_step = 2 * kTileBytes, a_stride = kRowBytes;
      if (src.InPlace(t0, (two_t ? 2 : 1) * kTileRows, n, ks1)) {
        const ATiles in_place = src.Tiles(t0, ks0);
        a = in_place.a;
        a_tile = in_place.a_tile;
        a_step = in_place.a_step;
        a_stride = in_place.a_stride;
      } else {
        for (int64_t i = 0; i < (two_t ? 2 : 1) * kTileRows; ++i) {
          uint8_t* dst = panel + (i / kTileRows) * kTileBytes + (i % kTileRows) * kRowBytes;
          if (t0 + i < n) {
            src.PackRow(t0 + i, ks0, steps, dst, 2 * kTileBytes);
          } else {
            for (int64_t s = 0; s < steps; ++s)
              _mm512_store_si512(dst + s * 2 * kTileBytes, _mm512_setzero_si512());
          }
        }
        CompilerBarrier();
      }
      // Prefetch the A rows of the next unit, (c, p + 1) or (c + 1, 0), over this unit's steps.
      PrefetchStream* stream_a = nullptr;
      if (tuning.prefetch & kPfNextA) {
        int64_t nc = c, np = p + 1;
        if (np == ntp) nc = c + 1, np = 0;
        if (nc < nkc) {
          const int64_t nks0 = nc * kc, nks1 = std::min(nks, nks0 + kc);
          next_a = src.Lines(2 * np * kTileRows, std::min(n, (2 * np + 2) * kTileRows), nks0, nks1);
          next_a.Spread(njp * steps);
          stream_a = &next_a;
        }
      }
      for (int jp = 0; jp < njp; ++jp) {
        const int j = 2 * jp;
        const bool two_b = j + 1 < nwb;
        const bool last = c == nkc - 1;
        PairJob job;
        job.a = a;
        job.a_tile = a_tile;
        job.a_step = a_step;
        job.a_stride = a_stride;
        job.b0 = w.block[j];
        job.b1 = two_b ? w.block[j + 1] : nullptr;
        job.tail0 = w.tail[j];
        job.tail1 = two_b ? w.tail[j + 1] : nullptr;
        job.ks0 = ks0;
        job.steps = steps;
        job.whole_steps = w.whole_steps;
        uint8_t* acc_pair = acc != nullptr ? acc + (2 * p * nwb + j) * kTileBytes : nullptr;
        job.c_in = c > 0 ? acc_pair : nullptr;
        job.c_in_ts = acc_ts;
        if (last) {
          job.c_out = out;
          job.c_out_ts = kTileBytes;
          job.c_out_js = 2 * kTileBytes;
        } else {
          job.c_out = acc_pair;
          job.c_out_ts = acc_ts;
          job.c_out_js = kTileBytes;
        }
        job.pf_next_b = (tuning.prefetch & kPfNextB) != 0;
        job.pf_far_b = (tuning.prefetch & kPfFarB) && p == 0 && c + 1 < nkc ? kc : 0;
        // Prefetch the C tiles the next pair continues from (none after the last K block's pairs
        // nor into K block 0).
        job.next_a = stream_a;
        job.next_c = nullptr;
        if (tuning.prefetch & kPfNextC) {
          int64_t nc = c, np = p, nj = j + 2;
          if (nj >= nwb) nj = 0, np = p + 1;
          if (np == ntp) np = 0, nc = c + 1;
          if (nc > 0 && nc < nkc) {
            next_c = PrefetchStream{};
            next_c.base = reinterpret_cast<const char*>(acc + (2 * np * nwb + nj) * kTileBytes);
            next_c.stride = acc_ts;
            next_c.lines = 2 * kTileRows;  // tiles (i, nj) and (i, nj + 1) are adjacent
            next_c.rows = 2;
            next_c.Spread(steps);
            job.next_c = &next_c;
          }
        }
        RunPair<kKind>(two_t, two_b, job);
        if (last) {
          CompilerBarrier();
          epilogue(t0, std::min<int64_t>(n - t0, 2 * kTileRows), j, two_b,
                   static_cast<const uint8_t*>(out));
        }
      }
    }
  }
}

// The f32 values of one row of a finished C tile: 16 elements of matrix m (0 gate, 1 up, 2 down),
// rows [first, first + 16) (only the `lanes` rows need be right), token t. bf16 tiles hold them.
struct F32Values {
  TANDEM_AMX __m512 operator()(const float* c, int, int64_t, __mmask16, int64_t) const {
    return _mm512_load_ps(c);
  }
};

// Lanes [lo, hi) of 16 (0 <= lo < hi <= 16).
inline __mmask16 LaneRange(int64_t lo, int64_t hi) {
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// act[(t0 + t) * inter + r] = SiluTimes(gate, up) for t < nt, r in [lo, hi) of the row block at
// `first`; c: the epilogue's tiles (gate (i, 0) at + i KB, up (i, 1) at + (2 + i) KB).
template <typename C, class Values>
TANDEM_AMX void StoreGateUp(const C* c, int64_t nt, int64_t t0, int64_t first, int64_t lo,
                            int64_t hi, const Values& values, float* act, int64_t inter) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const __mmask16 lanes = LaneRange(lo - first, hi - first);
  for (int64_t t = 0; t < nt; ++t) {
    const C* g = c + (t / kTileRows) * kTileRows * kB + (t % kTileRows) * kB;
    const C* u = g + 2 * kTileRows * kB;
    _mm512_mask_storeu_ps(act + (t0 + t) * inter + first, lanes,
                          SiluTimes16(values(g, 0, first, lanes, t0 + t),
                                      values(u, 1, first, lanes, t0 + t)));
  }
}

// y[(t0 + t) * hidden + r] = the down value, t < nt, r in [lo, hi) of the block at `first`;
// c: the block's tile of token tile 0 (tile 1 at + 1 KB).
template <typename C, class Values>
TANDEM_AMX void StoreDown(const C* c, int64_t nt, int64_t t0, int64_t first, int64_t lo,
                          int64_t hi, const Values& values, float* y, int64_t hidden) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const __mmask16 lanes = LaneRange(lo - first, hi - first);
  for (int64_t t = 0; t < nt; ++t) {
    const C* src = c + (t / kTileRows) * kTileRows * kB + (t % kTileRows) * kB;
    _mm512_mask_storeu_ps(y + (t0 + t) * hidden + first, lanes,
                          values(src, 2, first, lanes, t0 + t));
  }
}

// The row loops both kernels share around GroupProduct: rows [r0, r1) of an expert's gate/up (or
// down) cut into groups of weight blocks, each group's C tiles turned into outputs.
//   prepare(WeightGroup*): sets the group's K steps (and tail copies);
//   run(const WeightGroup&, epilogue): the GroupProduct over the kernel's activations;
//   values: the f32 values of C tile rows (F32Values for bf16; the scaled integer dots for int8).
// C is the tiles' element type (float for TDPBF16PS, int32_t for TDPBSSD). The epilogues are
// vectorized (the SiLU included: silu.h), and give the scalar formula's bits.
template <typename C, class Prepare, class Run, class Values>
TANDEM_AMX void GateUpRowGroups(const PackedExpert& e, int64_t r0, int64_t r1, float* act,
                                const Prepare& prepare, const Run& run, const Values& values) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const int64_t inter = e.intermediate();
  LoadTiles();
  const int64_t b_end = (r1 + kB - 1) / kB;
  const int64_t group_rows = GetTuning().group_blocks / 2;  // gate + up per row block
  for (int64_t b = r0 / kB; b < b_end; b += group_rows) {
    const int64_t nb = std::min<int64_t>(group_rows, b_end - b);
    WeightGroup w;
    w.nwb = static_cast<int>(2 * nb);
    for (int64_t i = 0; i < nb; ++i) {
      w.block[2 * i] = e.gate.block_data(b + i);
      w.block[2 * i + 1] = e.up.block_data(b + i);
    }
    prepare(&w);
    // Block pair j = (gate, up) of row block b + j / 2: tiles (i, j) gate, (i, j + 1) up.
    auto epilogue = [&](int64_t t0, int64_t nt, int j, bool, const uint8_t* out) {
      const int64_t first = (b + j / 2) * kB;
      StoreGateUp(reinterpret_cast<const C*>(out), nt, t0, first, std::max(r0, first),
                  std::min(r1, first + kB), values, act, inter);
    };
    run(w, epilogue);
  }
  ReleaseTiles();
}

template <typename C, class Prepare, class Run, class Values>
TANDEM_AMX void DownRowGroups(const PackedExpert& e, int64_t d0, int64_t d1, float* y,
                              const Prepare& prepare, const Run& run, const Values& values) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const int64_t hidden = e.hidden();
  LoadTiles();
  const int64_t b_end = (d1 + kB - 1) / kB;
  const int64_t group = GetTuning().group_blocks;
  for (int64_t b = d0 / kB; b < b_end; b += group) {
    WeightGroup w;
    w.nwb = static_cast<int>(std::min<int64_t>(group, b_end - b));
    for (int j = 0; j < w.nwb; ++j) w.block[j] = e.down.block_data(b + j);
    prepare(&w);
    auto epilogue = [&](int64_t t0, int64_t nt, int j, bool two_b, const uint8_t* out) {
      for (int jj = 0; jj < (two_b ? 2 : 1); ++jj) {
        const int64_t first = (b + j + jj) * kB;
        StoreDown(reinterpret_cast<const C*>(out + 2 * jj * kTileBytes), nt, t0, first,
                  std::max(d0, first), std::min(d1, first + kB), values, y, hidden);
      }
    };
    run(w, epilogue);
  }
  ReleaseTiles();
}

}  // namespace tandem::moe_internal::amx
