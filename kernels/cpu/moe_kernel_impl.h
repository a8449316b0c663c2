// Internal to the MoE kernels: the per-ISA implementations behind moe_kernel.h's dispatch.
// Same contracts as GateUpRows / DownRows there; callers outside kernels/cpu use moe_kernel.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_pack.h"
#include "kernels/cpu/silu.h"  // SiluTimes, SiluTimes16: the gate/up epilogue of every kernel

namespace tandem::moe_internal {

// The integer value of environment variable `name` when it is set and in [lo, hi], else
// `fallback`: how the kernels read their measurement knobs (once each, into a static).
inline int64_t EnvInt(const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const char* s = std::getenv(name);
  if (s == nullptr) return fallback;
  const long long v = std::strtoll(s, nullptr, 10);
  return v >= lo && v <= hi ? v : fallback;
}

// Scalar f32 loops over the packed layout; the ground truth of the tests.
void ReferenceGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                         float* act);
void ReferenceDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                       float* y);

// The AVX-512 kernels' register tile: up to this many 16-row blocks x tokens per micro-kernel call.
inline constexpr int kAvx512TileBlocks = 4;
inline constexpr int kAvx512TileTokens = 4;

// How far ahead (in 64-byte vectors of one block) the AVX-512 kernels prefetch weights when they
// stream them for 1-2 tokens (decode): kAvx512PrefetchVectors, or $TANDEM_AVX512_PREFETCH (0..4096,
// 0: none) for measurement, read once. The hardware streamer stops at every 4 KB page; 2 KB of
// software prefetch per block stream raised Qwen2-57B bf16 decode from 114-116 to 131-136 GB/s on
// the GPU machine's Xeon (bench/RESULTS.md).
inline constexpr int64_t kAvx512PrefetchVectors = 32;
int64_t Avx512PrefetchVectors();

// AVX-512 (avx512f/bw/vl/bf16), any weight format; for bf16 weights, bf16_activations selects
// vdpbf16ps over x.bf16_pairs, otherwise f32 FMAs over the weights widened to f32 and x.f32.
void Avx512GateUpRows(const PackedExpert& e, const ExpertActivations& x, bool bf16_activations,
                      int64_t r0, int64_t r1, float* act);
void Avx512DownRows(const PackedExpert& e, const ExpertActivations& act, bool bf16_activations,
                    int64_t d0, int64_t d1, float* y);

// How the AMX kernels block their loops (amx_tiles.h, GroupProduct): results are bit-identical
// under every tuning. K steps per K block (4096: C stays in the tiles over all of K), token-tile
// pairs per chunk (when K is blocked, a chunk's C tiles wait in a per-thread buffer between K
// blocks), weight blocks per GroupProduct (even, 2..16; a group's A tiles feed all its blocks).
struct AmxTuning {
  // 14: with the prefetch below, a group's current and next K blocks (224 KB each) fit in L2 with
  // room to spare beside the A tiles and C buffers, even where two hyperthreads share a core's 2 MB
  // (the GPU machine's guest reports 2 MB per vCPU; its host may pair them); kc 28 with the
  // prefetch gained less, and kc 8 no more (bench/RESULTS.md, fifth pass).
  int64_t k_steps = 14;
  int64_t chunk_pairs = 8;  // 256 tokens: a K block's weights feed more token pairs from L2
  int group_blocks = 16;
  // Weight (B) tiles read with TILELOADDT1 (a hint not to keep them in L1, where the A tiles that
  // a K block reuses across the group's blocks are): 0-6% faster, never slower, in twelve
  // in-process interleaved comparisons (bench/RESULTS.md, fourth pass).
  bool stream_weights = true;
  // Rows of one ExpertShard::Run task of an expert on AMX (a multiple of 16). 256: gate/up runs two
  // 16-block groups per task, down one (16 blocks), so each A tile of down feeds twice the blocks
  // of 128-row tasks. With chunks of 8 pairs: faster than 128 rows and chunks of 4 in 13 of 16
  // in-process comparisons (by 1-17%), within 2.5% in the other 3 (bench/RESULTS.md, fourth pass).
  int64_t task_rows = 256;
  // Software prefetch into L2 (PREFETCHT1) while a K block runs (amx_tiles.h, LinePrefetcher):
  // 0 none; 1 the weights of the K block that comes next (the next K block of the group, else the
  // first K block of the next chunk or of the next group of the call), spread evenly over the
  // current K block's steps, so that a K block's first token pair does not wait for DRAM; 2 also
  // the A tiles of the token pair that comes next (tile-order activations only). 1 against 0, in
  // one process: 10-17% faster at 1024 tokens, 4-13% at 4096; 2 against 1 mixed within the noise.
  int prefetch = 1;
  // The last K block's epilogues (SiLU(gate) * up, or the down values, from a job's C tiles) run in
  // slices between the K steps of the job after it, so that the vector work overlaps the TDPs
  // instead of holding the tile unit idle while it runs (amx_tiles.h, DeferredEpilogue). Against
  // running them at once: equal to 13% faster in 6 in-process comparisons (bench/RESULTS.md).
  bool defer_epilogue = true;
  // ExpertShard::Run's matrix phases with AMX experts: each thread claims its next task before it
  // runs the current one and hands it to the kernel as RowsAhead (moe_kernel.h), so the prefetch
  // also covers the first K block of a thread's next task (numa_worker/moe_task_stream.h,
  // ForTasksAhead).
  bool claim_ahead = true;
  // ExpertShard::Run's dynamic schedule runs its stages as one dataflow stream (each expert's
  // tasks wait only for that expert's previous stage; numa_worker/moe_task_stream.h) rather than
  // stage by stage with a barrier between (false, for measuring; the static schedule always is).
  bool dataflow = true;
  // The down projection's y values go to memory with non-temporal stores (MOVNTPS, whole 64-byte
  // lines only; the rest as before): y is read back only by the combine, after the whole down
  // stage, by when most of it has left the caches anyway, so the stores skip reading each line
  // first. In one process on the GPU machine's Xeon (Qwen2-57B): int8 1024 tokens 44.27 -> 44.04
  // ms, bf16 1024 79.10 -> 78.98, int8 4096 158.9 -> 156.5 (the down phase gains 0.1-1.2 ms, the
  // combine, reading y from memory, loses 0.04-0.16; bench/RESULTS.md, tenth pass).
  bool stream_y = true;
};
// The tuning in effect (defaults, or $TANDEM_AMX_KSTEPS / _CHUNK / _GROUP / _STREAM_B / _PREFETCH /
// _DEFER and $TANDEM_MOE_TASK_ROWS / _CLAIM_AHEAD / _DATAFLOW), and a replacement for tests and
// measurements:
// call only while no AMX kernel runs (it is not synchronized). Set rejects values out of range with
// false.
AmxTuning GetAmxTuning();
bool SetAmxTuning(const AmxTuning& tuning);

// AMX bf16 tiles (moe_kernel_amx.cc), any n >= 1 (the dispatch uses them from kAmxMinTokens): the
// activations are read as bf16 pairs (x.bf16_pairs, or x.f32 converted inside the call). Only after
// ResolveCpuKernel returned kAmx.
void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act, const RowsAhead& ahead = {});
// AmxGateUpRows with act written as bf16 into its tile form (GateUpRowsToTiles, moe_kernel.h).
void AmxGateUpRowsToTiles(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                          const AmxTileRows& out, const RowsAhead& ahead = {});
void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y, const RowsAhead& ahead = {});

// ---- int8 / int4 weights (int8 activations, moe_format.h) ----
// The float result of one quantized dot product, the same expression in every kernel:
//   (static_cast<float>(integer dot) * weight scale) * activation scale,
// where for int4 the per-group terms static_cast<float>(group dot) * s[r][g] are summed in f32
// over the groups in order before the final * activation scale.

// Scalar reference (integer dot products over QuantAt and x.q8).
void ReferenceQuantGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0,
                              int64_t r1, float* act);
void ReferenceQuantDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0,
                            int64_t d1, float* y);

// AVX-512 VNNI (vpdpbusd) dot tile of int8 / int4 weights (moe_kernel_avx512_quant.cc):
// out[(i * nt + t) * 16 + lane] = dot of row 16 (b + i) + lane of w with token t0 + t of x, for
// i < mb <= kAvx512TileBlocks, t < nt <= kAvx512TileTokens (padding rows included). The AVX-512
// row functions above call it for quantized weights (their bf16_activations flag is ignored).
void Avx512QuantDotTile(const PackedMatrix& w, int64_t b, int mb, const ExpertActivations& x,
                        int64_t t0, int nt, float* out);

// AMX int8 tiles (TDPBSSD: signed activations x signed weights), int8 weights only, any n >= 1
// (the dispatch uses them from kAmxMinTokens); reads x.q8 and x.q8_scale, which are required (as
// for every quantized kernel). Only after ResolveCpuKernel returned kAmx.
void AmxInt8GateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act, const RowsAhead& ahead = {});
void AmxInt8DownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y, const RowsAhead& ahead = {});

}  // namespace tandem::moe_internal
