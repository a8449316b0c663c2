// Internal to the AMX MoE kernels (moe_kernel_amx.cc: bf16 TDPBF16PS; moe_kernel_amx_int8.cc:
// int8 TDPBSSD): the tile configuration, and the blocked tile product both run. Include only
// under `#if defined(__x86_64__)`; every function here runs only where ResolveCpuKernel returned
// kAmx (which requires amx_tile, amx_bf16 and amx_int8 together, plus AVX-512).
//
// The product (GroupProduct) computes, for one group of up to 16 packed 16-row weight blocks (the
// caller's rows; default: half of a 256-row gate/up task of ExpertShard::Run, or a whole down
// task) and all n tokens of a call,
// the C tiles [16 tokens x 16 rows] of every (token tile, block), and hands them to an epilogue.
// Both operands are split into K steps of 64 bytes (32 bf16 / 64 int8):
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
// Loop nest (K cut into nkc even K blocks of ~kc steps, SplitK):
//   for token chunk (chunk_pairs token-tile pairs; all tokens when nkc == 1):
//     for K block c:                    -- a chunk's C tiles wait in a per-thread [tile][block]
//       for token-tile pair p in chunk: --   buffer between K blocks; the last K block hands them
//         A of (c, p): in place/packed  --   to the epilogue straight from the tiles
//         for block pair j of the group: -- gate/up: (gate b, up b), (gate b+1, up b+1), ...
//           C = 0 (c == 0) or load C; for s in c: 2 A + 2 B tile loads, 4 TDPs; store C
//           (B with TILELOADDT1 by default: weight tiles are not reused from L1, A tiles are)
//           per step also: PREFETCHT1 of a share of the weights of the K block that runs next
//           (LinePrefetcher), and a slice of the previous job's epilogue (DeferredEpilogue)
// So one K block's weights of the whole group (16 blocks x 14 steps = 224 KB by default) stay in
// L2 while every token pair of the chunk passes over them, the next K block's arrive in L2 while
// this one runs (so no token pair waits on DRAM: before, the first pair of every K block did), the
// A tiles of (c, p) (28 KB) feed all the group's blocks from L1, and each weight row and token is
// read from beyond L2 about once per chunk and task.
// Why this is near the limit of its kind (`tandem-bench amx-loads` on the GPU machine's Xeon, 16
// threads, random bf16 data, every step interleaved with the register peak in 15 rounds,
// bench/RESULTS.md, sixth pass): 4 TDPs on register-resident tiles are the peak (~14 TFLOPS); with
// 1 / 2 / 4 tile loads from L1 per 4 TDPs they keep 0.93 / 0.83 / 0.71 of it, with the 4 loads of
// the 2x2 step from L2 0.59-0.68: a tile load costs about half a TDP from L1 and up to 0.8 from
// L2, and the cost adds up rather than overlapping. Fewer rows per tile save nothing (8- and 4-row
// A and C tiles run at the 16-row TDP rate), nor do the A or B tiles of a step laid out side by
// side, nor software prefetch into L1. 2x2 C tiles are the most reuse 8 tiles allow (1 load per
// TDP; holding B for several token tiles needs C loads and stores, which cost the same); a 1x2 step
// that double-buffers its operands (1.5 loads per TDP) keeps 0.49-0.57. This loop nest itself, on
// synthetic L2-resident operands (4 token pairs x 8 block pairs x 14 K steps, the C tiles loaded
// and stored per job), keeps 0.51 of the peak, 0.55 without the C traffic: that is the ceiling of
// the kernels, and their phases inside ExpertShard::Run (Qwen2-57B, 1024 tokens) ran at 0.44-0.56
// of the peak sampled beside them in three rounds: on a quiet host they reach it. Earlier, not
// interleaved: the kernels on per-thread L2-resident operands (amx-loads' kernel rows) reach
// 0.47-0.50 of the peak in gate/up (bf16, 32-64 tokens) and 0.39-0.53 (int8);
// inside ExpertShard::Run, with the weights streamed from DRAM, 0.40-0.46 before the prefetch, and
// 0.45-0.55 with it (bf16 gate/up up to 0.53). Defaults: AmxTuning in moe_kernel_impl.h (kc 14,
// chunks of 8 pairs, 16-block groups, streamed weight tiles, 256-row ExpertShard tasks, prefetch
// of the next K block's weights, deferred epilogues; measured in bench/RESULTS.md, fourth and fifth
// passes). The prefetch with kc 14 against kc 28 without it, interleaved in one process on the GPU
// machine: Qwen2-57B bf16 1024 tokens 66 vs 77 ms, 4096 tokens 225-256 vs 252-309 ms; int8 1024
// 43-44 vs 46-51 ms; DeepSeek-V3 4096 bf16 474 vs 541 ms, int8 265 vs 304 ms. Kc 28, chunks of 4
// pairs, 16-block groups and 128-row tasks against the earlier ones (one K block, 2-block groups,
// 32-row tasks), interleaved on the GPU machine, Qwen2-57B layer at 4096 tokens: bf16 312-332 vs
// 343-373 ms, int8 153-171 vs 169-206 ms (the down phase gains most: 90-103 vs 116-124 ms bf16);
// DeepSeek-V3 bf16 equal within the host's noise. Knobs (read once per process; results are
// bit-identical under all of them: a (token, row) always gets the same TDP sequence over the K
// steps in order; SetAmxTuning in moe_kernel_impl.h sets them in-process):
//   TANDEM_AMX_KSTEPS=<1..4096>  target K steps per K block (4096: one block, C stays in tiles);
//   TANDEM_AMX_CHUNK=<n>         token-tile pairs per chunk when K is blocked;
//   TANDEM_AMX_GROUP=<2..16>     weight blocks per group (even);
//   TANDEM_AMX_STREAM_B=<0|1>    weight tiles read with TILELOADDT1 (default 1), or TILELOADD;
//   TANDEM_AMX_PREFETCH=<0|1|2>  software prefetch of the next K block's weights (1), and of the
//                                next token pair's A tiles (2) (AmxTuning::prefetch);
//   TANDEM_AMX_DEFER=<0|1>       epilogues run in slices inside the next job's K steps
//                                (AmxTuning::defer_epilogue);
//   TANDEM_MOE_TASK_ROWS=<16 k>  rows of ExpertShard::Run's AMX tasks (AmxTuning::task_rows);
//   TANDEM_MOE_CLAIM_AHEAD=<0|1> ExpertShard::Run's threads claim their next AMX task early and
//                                prefetch its first weights (AmxTuning::claim_ahead);
//   TANDEM_MOE_DATAFLOW=<0|1>    ExpertShard::Run's dynamic schedule runs its stages as one
//                                dataflow stream, or stage by stage (AmxTuning::dataflow);
//   TANDEM_AMX_STREAM_Y=<0|1>    down's y lines written with non-temporal stores
//                                (AmxTuning::stream_y).
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
#include <type_traits>

#include "kernels/cpu/convert_avx512.h"  // Bf16x16, FirstLanes
#include "kernels/cpu/moe_kernel_impl.h"
#include "kernels/cpu/silu.h"

#define TANDEM_AMX \
  __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace tandem::moe_internal::amx {

constexpr int64_t kTileRows = 16;     // tokens of an A tile / C tile; K-step vectors of a B tile
constexpr int64_t kRowBytes = 64;     // bytes of one tile row (all tiles are 16 x 64 bytes)
constexpr int64_t kTileBytes = 1024;  // one tile; also one K step of one packed 16-row block
constexpr int kMaxWeightBlocks = 16;  // weight blocks of one GroupProduct

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
#define TANDEM_TILE_STREAM_LOAD(t, p, s) ::tandem::moe_internal::amx::EmuLoad(t, p, s)
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
#define TANDEM_TILE_STREAM_LOAD(t, p, s) _tile_stream_loadd(t, p, s)
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

using Tuning = AmxTuning;  // moe_kernel_impl.h

// The tuning in effect: AmxTuning's defaults, or the measurement knobs of the header comment
// (read at the first call), or what SetAmxTuning last set.
inline Tuning& MutableTuning() {
  static Tuning tuning = [] {
    Tuning t;
    t.k_steps = EnvInt("TANDEM_AMX_KSTEPS", 1, 4096, t.k_steps);
    t.chunk_pairs = EnvInt("TANDEM_AMX_CHUNK", 1, 1 << 20, t.chunk_pairs);
    t.group_blocks =
        static_cast<int>(EnvInt("TANDEM_AMX_GROUP", 2, kMaxWeightBlocks, t.group_blocks)) / 2 * 2;
    t.stream_weights = EnvInt("TANDEM_AMX_STREAM_B", 0, 1, t.stream_weights ? 1 : 0) != 0;
    t.prefetch = static_cast<int>(EnvInt("TANDEM_AMX_PREFETCH", 0, 2, t.prefetch));
    t.defer_epilogue = EnvInt("TANDEM_AMX_DEFER", 0, 1, t.defer_epilogue ? 1 : 0) != 0;
    t.claim_ahead = EnvInt("TANDEM_MOE_CLAIM_AHEAD", 0, 1, t.claim_ahead ? 1 : 0) != 0;
    t.dataflow = EnvInt("TANDEM_MOE_DATAFLOW", 0, 1, t.dataflow ? 1 : 0) != 0;
    t.stream_y = EnvInt("TANDEM_AMX_STREAM_Y", 0, 1, t.stream_y ? 1 : 0) != 0;
    const int64_t rows = EnvInt("TANDEM_MOE_TASK_ROWS", 16, 1 << 20, t.task_rows);
    if (rows % 16 == 0) t.task_rows = rows;
    return t;
  }();
  return tuning;
}
inline const Tuning& GetTuning() { return MutableTuning(); }

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
    for (int64_t s = 0; s < count; ++s)
      std::memcpy(dst + s * dst_stride, Tile(t, ks0 + s), kRowBytes);
  }
};

// One group of weight blocks: K step s of block j is the 1 KB at block[j] + s * kTileBytes for
// s < whole_steps; step whole_steps (when < nks, bf16 only) is read from tail[j], a zero-padded
// copy. next_block[0, next_nwb): the blocks of the group the caller runs next (same K steps), only
// read by software prefetch (AmxTuning::prefetch); next_nwb 0: none.
struct WeightGroup {
  int nwb = 0;
  const uint8_t* block[kMaxWeightBlocks] = {};
  int64_t whole_steps = 0;
  const uint8_t* tail[kMaxWeightBlocks] = {};
  int next_nwb = 0;
  const uint8_t* next_block[kMaxWeightBlocks] = {};
};

// Issues PREFETCHT1 (to L2) for the 64-byte lines of up to kMaxSegments byte ranges, in order, a
// given number per call: GroupProduct spreads the lines of what runs next over the steps of what
// runs now, so that the DRAM fetches overlap the TDPs instead of stalling the first tile loads of a
// K block (the hardware streamer stops at every 4 KB page, and a packed block's K block spans up to
// 7 of them). Prefetches never fault, and change no result.
class LinePrefetcher {
 public:
  static constexpr int kMaxSegments = kMaxWeightBlocks;
  void Add(const void* p, int64_t bytes) {
    if (bytes <= 0 || segments_ == kMaxSegments) return;
    start_[segments_] = static_cast<const uint8_t*>(p);
    bytes_[segments_++] = bytes;
    lines_ += (bytes + kRowBytes - 1) / kRowBytes;
  }
  int64_t lines() const { return lines_; }
  // Lines per step so that all lines are issued within `steps` steps.
  int64_t PerStep(int64_t steps) const { return steps > 0 ? (lines_ + steps - 1) / steps : 0; }
  void Issue(int64_t count) {
    for (; count > 0 && current_ < segments_; --count) {
      _mm_prefetch(reinterpret_cast<const char*>(start_[current_] + offset_), _MM_HINT_T1);
      offset_ += kRowBytes;
      if (offset_ >= bytes_[current_]) {
        ++current_;
        offset_ = 0;
      }
    }
  }

 private:
  const uint8_t* start_[kMaxSegments] = {};
  int64_t bytes_[kMaxSegments] = {};
  int segments_ = 0, current_ = 0;
  int64_t offset_ = 0, lines_ = 0;
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
  // Software prefetch issued per K step (AmxTuning::prefetch): the next K block's weights, the
  // next token pair's A tiles; null when off.
  LinePrefetcher* weights_ahead = nullptr;
  int64_t weights_per_step = 0;
  LinePrefetcher* a_ahead = nullptr;
  int64_t a_per_step = 0;
  // The previous job's epilogue, run `per_step` tokens per K step (AmxTuning::defer_epilogue):
  // slices(slices_ctx, per_step); null when none.
  void (*slices)(void*, int64_t) = nullptr;
  void* slices_ctx = nullptr;
  int64_t slices_per_step = 0;
};

template <TileKind kKind, bool kTwoT, bool kTwoB, bool kStreamB>
TANDEM_AMX void Steps(const uint8_t* a, const uint8_t* b0, const uint8_t* b1, int64_t steps,
                      const PairJob& job) {
  for (int64_t s = 0; s < steps; ++s) {
    if (job.weights_ahead != nullptr) job.weights_ahead->Issue(job.weights_per_step);
    if (job.a_ahead != nullptr) job.a_ahead->Issue(job.a_per_step);
    const uint8_t* as = a + s * job.a_step;
    TANDEM_TILE_LOAD(4, as, job.a_stride);
    if constexpr (kStreamB)
      TANDEM_TILE_STREAM_LOAD(6, b0 + s * kTileBytes, kRowBytes);
    else
      TANDEM_TILE_LOAD(6, b0 + s * kTileBytes, kRowBytes);
    if constexpr (kTwoT) TANDEM_TILE_LOAD(5, as + job.a_tile, job.a_stride);
    if constexpr (kTwoB) {
      if constexpr (kStreamB)
        TANDEM_TILE_STREAM_LOAD(7, b1 + s * kTileBytes, kRowBytes);
      else
        TANDEM_TILE_LOAD(7, b1 + s * kTileBytes, kRowBytes);
    }
    TANDEM_TILE_DP(kKind, 0, 4, 6);
    if constexpr (kTwoT) TANDEM_TILE_DP(kKind, 1, 5, 6);
    if constexpr (kTwoB) TANDEM_TILE_DP(kKind, 2, 4, 7);
    if constexpr (kTwoT && kTwoB) TANDEM_TILE_DP(kKind, 3, 5, 7);
    if (job.slices != nullptr) job.slices(job.slices_ctx, job.slices_per_step);
  }
}

// C tiles 0-3 = (token tile i, block j) for i, j in {0, 1} as tile 2 j + i; A: 4 (i = 0), 5 (i =
// 1); B: 6 (j = 0), 7 (j = 1).
template <TileKind kKind, bool kTwoT, bool kTwoB, bool kStreamB>
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
  Steps<kKind, kTwoT, kTwoB, kStreamB>(job.a, job.b0 + job.ks0 * kTileBytes,
                                       kTwoB ? job.b1 + job.ks0 * kTileBytes : nullptr, whole, job);
  if (whole < job.steps)  // the last K step, from the zero-padded tail copies (bf16 only)
    Steps<kKind, kTwoT, kTwoB, kStreamB>(job.a + whole * job.a_step, job.tail0, job.tail1,
                                         job.steps - whole, job);
  TANDEM_TILE_STORE(0, job.c_out, kRowBytes);
  if constexpr (kTwoT) TANDEM_TILE_STORE(1, job.c_out + job.c_out_ts, kRowBytes);
  if constexpr (kTwoB) TANDEM_TILE_STORE(2, job.c_out + job.c_out_js, kRowBytes);
  if constexpr (kTwoT && kTwoB)
    TANDEM_TILE_STORE(3, job.c_out + job.c_out_ts + job.c_out_js, kRowBytes);
}

template <TileKind kKind, bool kStreamB>
TANDEM_AMX void RunPair(bool two_t, bool two_b, const PairJob& job) {
  if (two_t) {
    if (two_b)
      PairProduct<kKind, true, true, kStreamB>(job);
    else
      PairProduct<kKind, true, false, kStreamB>(job);
  } else {
    if (two_b)
      PairProduct<kKind, false, true, kStreamB>(job);
    else
      PairProduct<kKind, false, false, kStreamB>(job);
  }
}

// How GroupProduct cuts K: `blocks` K blocks of `steps` K steps (the last may be shorter), as
// even as the target allows, so that no K block is a sliver.
struct KBlocks {
  int64_t blocks, steps;
};
inline KBlocks SplitK(int64_t nks, int64_t target_steps) {
  const int64_t blocks = std::max<int64_t>(1, (nks + target_steps - 1) / target_steps);
  return {blocks, std::max<int64_t>(1, (nks + blocks - 1) / blocks)};
}

// One finished job's epilogue, run in slices of tokens (AmxTuning::defer_epilogue): GroupProduct
// keeps the last job's C tiles in one of two buffers and calls Slice between the next job's K
// steps, so the epilogue's vector work (a SiLU per gate/up output) executes while the tile unit
// works through the TDPs; what is left is finished after that job, before the buffer is reused.
template <class Epilogue>
struct DeferredEpilogue {
  const Epilogue* epilogue = nullptr;
  int64_t t0 = 0, nt = 0, done = 0;
  int j = 0;
  bool two_b = false;
  const uint8_t* out = nullptr;

  int64_t left() const { return nt - done; }
  // The job whose C tiles are in `c_out` (none of its tokens done yet).
  void Start(int64_t job_t0, int64_t job_nt, int job_j, bool job_two_b, const uint8_t* c_out) {
    t0 = job_t0;
    nt = job_nt;
    done = 0;
    j = job_j;
    two_b = job_two_b;
    out = c_out;
  }
  void Run(int64_t count) {
    const int64_t end = std::min(nt, done + count);
    if (done < end) (*epilogue)(t0, nt, j, two_b, out, done, end);
    done = end;
  }
  void Finish() { Run(left()); }
  static void Slice(void* self, int64_t count) { static_cast<DeferredEpilogue*>(self)->Run(count); }
};

// The C tiles of tokens [0, n) x the blocks of `w` over K steps [0, nks) (A rows from `src`), in
// the loop nest of the header comment. For each token-tile pair p and block pair j (blocks j and
// j + 1 when two_b), once per token of the pair, in one or more calls over consecutive ranges:
//   epilogue(t0 = 32 p, nt = tokens of the pair (<= 32, all < n), j, two_b, out, tb, te)
// for the pair's tokens [tb, te) (0 <= tb < te <= nt), where out holds the finished C tiles, 16 x
// 16 elements of 4 bytes (f32 for kBf16, int32 for kInt8), row m = token t0 + 16 i + m, column c =
// row c of the block: tile (i, j + jj) at out + (2 jj + i) KB. Requires the tiles configured
// (LoadTiles). nks may be 0 (C = 0).
template <TileKind kKind, class Source, class Epilogue>
TANDEM_AMX void GroupProduct(const Source& src, int64_t n, int64_t nks, const WeightGroup& w,
                             const Epilogue& epilogue) {
  const Tuning& tuning = GetTuning();
  const KBlocks kb = SplitK(nks, tuning.k_steps);
  const int64_t kc = kb.steps, nkc = kb.blocks;
  const int64_t ntt = (n + kTileRows - 1) / kTileRows, ntp = (ntt + 1) / 2;
  const int nwb = w.nwb, njp = (nwb + 1) / 2;
  // With one K block C never leaves the tiles, so the chunk is all tokens.
  const int64_t chunk = nkc > 1 ? std::max<int64_t>(1, tuning.chunk_pairs) : ntp;
  uint8_t* panel = Scratch(kPanelSlot, 2 * kc * kTileBytes);
  uint8_t* acc = nkc > 1 ? Scratch(kAccSlot, 2 * std::min(chunk, ntp) * nwb * kTileBytes) : nullptr;
  const int64_t acc_ts = nwb * kTileBytes;  // token tile stride of acc ([tile][block] tiles)
  // The last K block's C tiles: out[0], or, with deferred epilogues, out[0] and out[1] in turn.
  alignas(64) uint8_t out[2][4 * kTileBytes];
  int out_slot = 0;
  DeferredEpilogue<Epilogue> pending;
  pending.epilogue = &epilogue;
  // Software prefetch (AmxTuning::prefetch): the weights of K block kb of `blocks`, and the A
  // tiles of token pair p in K block kb (tile order only: two contiguous runs of K steps).
  auto add_weights = [&](LinePrefetcher* pf, const uint8_t* const* blocks, int count, int64_t kb) {
    const int64_t s0 = kb * kc, s1 = std::min({nks, s0 + kc, w.whole_steps});
    for (int j = 0; j < count; ++j) pf->Add(blocks[j] + s0 * kTileBytes, (s1 - s0) * kTileBytes);
  };
  auto add_a = [&](LinePrefetcher* pf, int64_t p, int64_t kb) {
    if constexpr (std::is_same_v<Source, TileOrder>) {
      const int64_t s0 = kb * kc, s1 = std::min(nks, s0 + kc);
      const ATiles t = src.Tiles(2 * p * kTileRows, s0);
      pf->Add(t.a, (s1 - s0) * kTileBytes);
      if (2 * p + 1 < ntt) pf->Add(t.a + t.a_tile, (s1 - s0) * kTileBytes);
    }
  };
  for (int64_t p0 = 0; p0 < ntp; p0 += chunk) {
    const int64_t p1 = std::min(ntp, p0 + chunk);
    for (int64_t c = 0; c < nkc; ++c) {
      const int64_t ks0 = c * kc, ks1 = std::min(nks, ks0 + kc),
                    steps = std::max<int64_t>(0, ks1 - ks0);
      const bool last = c == nkc - 1;
      // What runs after this K block of this chunk: the next K block, else the next chunk's first,
      // else the next group's first.
      LinePrefetcher weights_ahead;
      if (tuning.prefetch >= 1) {
        if (c + 1 < nkc)
          add_weights(&weights_ahead, w.block, nwb, c + 1);
        else if (p1 < ntp)
          add_weights(&weights_ahead, w.block, nwb, 0);
        else
          add_weights(&weights_ahead, w.next_block, w.next_nwb, 0);
      }
      const int64_t weights_per_step = weights_ahead.PerStep((p1 - p0) * njp * steps);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t t0 = 2 * p * kTileRows;
        const bool two_t = 2 * p + 1 < ntt;
        // The token pair after this one: the next pair of the chunk, else the chunk's first in the
        // next K block, else the next chunk's first.
        LinePrefetcher a_ahead;
        if (tuning.prefetch >= 2) {
          if (p + 1 < p1)
            add_a(&a_ahead, p + 1, c);
          else if (c + 1 < nkc)
            add_a(&a_ahead, p0, c + 1);
          else if (p1 < ntp)
            add_a(&a_ahead, p1, 0);
        }
        const int64_t a_per_step = a_ahead.PerStep(njp * steps);
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
        for (int jp = 0; jp < njp; ++jp) {
          const int j = 2 * jp;
          const bool two_b = j + 1 < nwb;
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
          uint8_t* acc_pair =
              acc != nullptr ? acc + (2 * (p - p0) * nwb + j) * kTileBytes : nullptr;
          job.c_in = c > 0 ? acc_pair : nullptr;
          job.c_in_ts = acc_ts;
          if (weights_ahead.lines() > 0) {
            job.weights_ahead = &weights_ahead;
            job.weights_per_step = weights_per_step;
          }
          if (a_ahead.lines() > 0) {
            job.a_ahead = &a_ahead;
            job.a_per_step = a_per_step;
          }
          if (last) {
            job.c_out = out[out_slot];
            job.c_out_ts = kTileBytes;
            job.c_out_js = 2 * kTileBytes;
            if (pending.left() > 0) {
              job.slices = &DeferredEpilogue<Epilogue>::Slice;
              job.slices_ctx = &pending;
              job.slices_per_step = (pending.left() + steps - 1) / std::max<int64_t>(1, steps);
            }
          } else {
            job.c_out = acc_pair;
            job.c_out_ts = acc_ts;
            job.c_out_js = kTileBytes;
          }
          if (tuning.stream_weights)
            RunPair<kKind, true>(two_t, two_b, job);
          else
            RunPair<kKind, false>(two_t, two_b, job);
          if (last) {
            CompilerBarrier();
            pending.Finish();  // what the steps left of the previous job's
            pending.Start(t0, std::min<int64_t>(n - t0, 2 * kTileRows), j, two_b, out[out_slot]);
            if (tuning.defer_epilogue)
              out_slot ^= 1;  // runs in the next job's steps
            else
              pending.Finish();
            CompilerBarrier();  // the epilogue's loads of out stay before its next tile stores
          }
        }
      }
    }
  }
  pending.Finish();
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

// Where a gate/up epilogue puts act: 16 values of token t, rows [first, first + 16) (first a
// multiple of 16), only the `lanes` of them.
//   F32ActRows: f32 rows, act[t * inter + r] (GateUpRows).
//   Bf16ActTiles: bf16 (Bf16x16: ConvertToBf16Pairs's rounding) straight into the AMX tile form of
//     the down projection's input (ExpertActivations::amx_tiles: tile t / 16, K step r / 32, row
//     t % 16, bytes 2 (r % 32)), the bytes ActivationBuffer::FillAmxTiles writes from the f32 rows
//     (GateUpRowsToTiles): no f32 act and no conversion pass.
struct F32ActRows {
  float* act;
  int64_t inter;
  TANDEM_AMX void operator()(int64_t t, int64_t first, __mmask16 lanes, __m512 v) const {
    _mm512_mask_storeu_ps(act + t * inter + first, lanes, v);
  }
};
struct Bf16ActTiles {
  AmxTileRows out;
  TANDEM_AMX void operator()(int64_t t, int64_t first, __mmask16 lanes, __m512 v) const {
    _mm256_mask_storeu_epi16(out.Bf16At(t, first), lanes, convert_internal::Bf16x16(v));
  }
};

// act(t0 + t, rows [lo, hi) of the row block at `first`) = SiluTimes(gate, up) for t in [tb, te);
// c: the epilogue's tiles (gate (i, 0) at + i KB, up (i, 1) at + (2 + i) KB).
template <typename C, class Values, class Sink>
TANDEM_AMX void StoreGateUp(const C* c, int64_t tb, int64_t te, int64_t t0, int64_t first,
                            int64_t lo, int64_t hi, const Values& values, const Sink& act) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const __mmask16 lanes = LaneRange(lo - first, hi - first);
  for (int64_t t = tb; t < te; ++t) {
    const C* g = c + (t / kTileRows) * kTileRows * kB + (t % kTileRows) * kB;
    const C* u = g + 2 * kTileRows * kB;
    act(t0 + t, first, lanes,
        SiluTimes16(values(g, 0, first, lanes, t0 + t), values(u, 1, first, lanes, t0 + t)));
  }
}

// y[(t0 + t) * hidden + r] = the down value, t in [tb, te), r in [lo, hi) of the block at
// `first`; c: the block's tile of token tile 0 (tile 1 at + 1 KB). stream: whole, aligned 64-byte
// lines go out with a non-temporal store (AmxTuning::stream_y; the caller fences).
template <typename C, class Values>
TANDEM_AMX void StoreDown(const C* c, int64_t tb, int64_t te, int64_t t0, int64_t first, int64_t lo,
                          int64_t hi, const Values& values, float* y, int64_t hidden, bool stream) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const __mmask16 lanes = LaneRange(lo - first, hi - first);
  const bool whole_lines = stream && lanes == 0xFFFF;
  for (int64_t t = tb; t < te; ++t) {
    const C* src = c + (t / kTileRows) * kTileRows * kB + (t % kTileRows) * kB;
    float* dst = y + (t0 + t) * hidden + first;
    const __m512 v = values(src, 2, first, lanes, t0 + t);
    if (whole_lines && (reinterpret_cast<uintptr_t>(dst) & 63) == 0)
      _mm512_stream_ps(dst, v);
    else
      _mm512_mask_storeu_ps(dst, lanes, v);
  }
}

// The row loops both kernels share around GroupProduct: rows [r0, r1) of an expert's gate/up (or
// down) cut into groups of weight blocks, each group's C tiles turned into outputs.
//   prepare(WeightGroup*): sets the group's K steps (and tail copies);
//   run(const WeightGroup&, epilogue): the GroupProduct over the kernel's activations;
//   values: the f32 values of C tile rows (F32Values for bf16; the scaled integer dots for int8);
//   act (gate/up): where SiLU(gate) * up goes (F32ActRows, or Bf16ActTiles for bf16 weights).
// C is the tiles' element type (float for TDPBF16PS, int32_t for TDPBSSD). The epilogues are
// vectorized (the SiLU included: silu.h), and give the scalar formula's bits.
// The next group's weight blocks after the call's last group: blocks [b, ...) of `m` for the rows
// [ahead.r0, ahead.r1) the thread runs next (RowsAhead, moe_kernel.h), up to `count`, when `m`
// matches the call's matrix `same` in shape (prefetch only). Returns how many it set.
inline int64_t BlocksAhead(const PackedMatrix& m, const PackedMatrix& same, const RowsAhead& ahead,
                           int64_t count) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  if (ahead.r0 >= ahead.r1 || m.rows() != same.rows() || m.cols() != same.cols() ||
      m.dtype() != same.dtype())
    return 0;
  const int64_t b = ahead.r0 / kB, end = std::min(m.row_blocks(), (ahead.r1 + kB - 1) / kB);
  return std::clamp<int64_t>(end - b, 0, count);
}

template <typename C, class Prepare, class Run, class Values, class Sink>
TANDEM_AMX void GateUpRowGroups(const PackedExpert& e, int64_t r0, int64_t r1, const Sink& act,
                                const RowsAhead& ahead, const Prepare& prepare, const Run& run,
                                const Values& values) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  LoadTiles();
  const int64_t b_end = (r1 + kB - 1) / kB;
  const int64_t group_rows = GetTuning().group_blocks / 2;  // gate + up per row block
  // (gate, up) of row blocks [first, first + count) of x into blocks[0, 2 count).
  auto set_blocks = [](const PackedExpert& x, int64_t first, int64_t count,
                       const uint8_t** blocks) {
    for (int64_t i = 0; i < count; ++i) {
      blocks[2 * i] = x.gate.block_data(first + i);
      blocks[2 * i + 1] = x.up.block_data(first + i);
    }
  };
  for (int64_t b = r0 / kB; b < b_end; b += group_rows) {
    const int64_t nb = std::min<int64_t>(group_rows, b_end - b);
    WeightGroup w;
    w.nwb = static_cast<int>(2 * nb);
    set_blocks(e, b, nb, w.block);
    // The group that runs next: the call's next, else the first of the rows ahead.
    const PackedExpert* next_e = &e;
    int64_t next_b = b + nb, next_nb = std::min<int64_t>(group_rows, b_end - next_b);
    if (next_nb == 0 && ahead.e != nullptr) {
      next_e = ahead.e;
      next_b = ahead.r0 / kB;
      next_nb = BlocksAhead(ahead.e->gate, e.gate, ahead, group_rows);
    }
    w.next_nwb = static_cast<int>(2 * next_nb);
    set_blocks(*next_e, next_b, next_nb, w.next_block);
    prepare(&w);
    // Block pair j = (gate, up) of row block b + j / 2: tiles (i, j) gate, (i, j + 1) up.
    auto epilogue = [&](int64_t t0, int64_t, int j, bool, const uint8_t* out, int64_t tb,
                        int64_t te) {
      const int64_t first = (b + j / 2) * kB;
      StoreGateUp(reinterpret_cast<const C*>(out), tb, te, t0, first, std::max(r0, first),
                  std::min(r1, first + kB), values, act);
    };
    run(w, epilogue);
  }
  ReleaseTiles();
}

template <typename C, class Prepare, class Run, class Values>
TANDEM_AMX void DownRowGroups(const PackedExpert& e, int64_t d0, int64_t d1, float* y,
                              const RowsAhead& ahead, const Prepare& prepare, const Run& run,
                              const Values& values) {
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  const int64_t hidden = e.hidden();
  LoadTiles();
  const int64_t b_end = (d1 + kB - 1) / kB;
  const int64_t group = GetTuning().group_blocks;
  const bool stream_y = GetTuning().stream_y;
  for (int64_t b = d0 / kB; b < b_end; b += group) {
    WeightGroup w;
    w.nwb = static_cast<int>(std::min<int64_t>(group, b_end - b));
    for (int j = 0; j < w.nwb; ++j) w.block[j] = e.down.block_data(b + j);
    // The group that runs next: the call's next, else the first of the rows ahead.
    const PackedMatrix* next_m = &e.down;
    int64_t next_b = b + w.nwb;
    w.next_nwb = static_cast<int>(std::min<int64_t>(group, b_end - next_b));
    if (w.next_nwb == 0 && ahead.e != nullptr) {
      next_m = &ahead.e->down;
      next_b = ahead.r0 / kB;
      w.next_nwb = static_cast<int>(BlocksAhead(ahead.e->down, e.down, ahead, group));
    }
    for (int j = 0; j < w.next_nwb; ++j) w.next_block[j] = next_m->block_data(next_b + j);
    prepare(&w);
    auto epilogue = [&](int64_t t0, int64_t, int j, bool two_b, const uint8_t* out, int64_t tb,
                        int64_t te) {
      for (int jj = 0; jj < (two_b ? 2 : 1); ++jj) {
        const int64_t first = (b + j + jj) * kB;
        StoreDown(reinterpret_cast<const C*>(out + 2 * jj * kTileBytes), tb, te, t0, first,
                  std::max(d0, first), std::min(d1, first + kB), values, y, hidden, stream_y);
      }
    };
    run(w, epilogue);
  }
  // Non-temporal stores are weakly ordered: make them visible before whoever reads y is told
  // that this call is done (a release store or a barrier orders only ordinary stores).
  if (stream_y) _mm_sfence();
  ReleaseTiles();
}

}  // namespace tandem::moe_internal::amx
