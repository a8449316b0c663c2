// The routed-expert computation of the CPU MoE operator over packed weights (moe_pack.h) of any
// format (moe_format.h): y = down(silu(gate x) * up x) for the n tokens routed to one expert, in
// f32 accumulation (int32 for the integer dot products of the quantized formats).
//
// Two levels:
//   * ExpertForward: one expert, all rows, serially on the calling thread.
//   * GateUpRows / DownRows: one row range of one phase, serially, for a parallel scheduler that
//     hands out (expert, row block) tasks itself: phase 1 writes act = silu(gate x) * up x for
//     intermediate rows [r0, r1); after all of the expert's phase 1, phase 2 writes y for hidden
//     rows [d0, d1).
//     Ranges that start and end on multiples of 16 (or at the matrix end) avoid recomputing the
//     16-row blocks they share with a neighbour; any range is correct, and a row's value does not
//     depend on how the rows were split into ranges (bit-identical to ExpertForward).
//
// Thread safety: pure functions over caller buffers; concurrent calls are safe as long as they
// write disjoint outputs. Calls with an AVX-512 kernel must only be made after ResolveCpuKernel
// (isa.h) returned kAvx512 or kAmx on this machine.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/moe_pack.h"

namespace tandem {

// The activations the dot products see: f32 as given (exact up to summation order), or rounded to
// bf16 so that the AVX-512 path can use vdpbf16ps (measured: ~3e-3 relative error of the expert
// output, max and rms, on Qwen3/Qwen2/DeepSeek-V3 expert shapes; f32 is ~1e-6).
enum class ActivationPrecision { kF32, kBf16 };

// A kAmx kernel with bf16 activations runs the AMX tiles for calls of at least this many tokens and
// the AVX-512 vdpbf16ps code below (decode, bandwidth-bound); with f32 activations it always runs
// the AVX-512 f32 code (AMX has no f32 path). Measured on the GPU machine's 16-core AMX Xeon
// (DeepSeek-V3 expert, 2048 x 7168, gate+up+down, 1 and 16 threads): AMX is ahead from 4 tokens
// on (by 10-23% at 4, 1.6-1.9x at 8, 4x at 16: a padded 16-token tile still beats AVX-512's
// 4-token tiles); at 1-3 tokens the two are within ~10% of each other, either way.
inline constexpr int64_t kAmxMinTokens = 4;
// The switch point in effect: kAmxMinTokens, or $TANDEM_AMX_MIN_TOKENS (>= 1) when set, read once
// per process -- for measuring the switch point (tandem-bench moe with all tokens on each expert).
int64_t AmxMinTokens();

struct ExpertKernel {
  // A resolved kernel: kReference, kAvx512 or kAmx. kAmx runs AMX tiles (bf16 weights with bf16
  // activations; int8 weights) when there are at least kAmxMinTokens tokens, the AVX-512 code
  // otherwise (AMX has no f32 path, so f32 activations keep their exactness; int4 has no AMX
  // kernel). kAuto is treated as kReference.
  CpuKernel isa = CpuKernel::kReference;
  // bf16 weights only (quantized weights always take int8 activations, ExpertActivations::q8).
  // Ignored by the reference kernel, which always computes bf16 weights with f32 activations.
  ActivationPrecision activations = ActivationPrecision::kF32;

  bool uses_bf16_activations() const;
};

// Activations of n tokens [n x k] in the forms the kernels read.
struct ExpertActivations {
  const float* f32 = nullptr;            // [n x k], row-major; required for bf16 weights
  const uint32_t* bf16_pairs = nullptr;  // [n x Bf16PairCount(k)]; required when the kernel
                                         // uses_bf16_activations(), from ConvertToBf16Pairs
  int64_t n = 0;
  int64_t k = 0;
  // Required for int8 / int4 weights: QuantizeActivations's output (moe_format.h).
  const int8_t* q8 = nullptr;          // [n x Int8ActivationStride(k)]
  const float* q8_scale = nullptr;     // [n]
  const int32_t* q8_sums32 = nullptr;  // [n x Int8ActivationStride(k) / 32]
  // Optional, read by the AMX kernels when given (ActivationBuffer's tile form): the activations
  // of the AMX A operand in tile order -- bf16 pairs for bf16 weights, x.q8's bytes for int8
  // weights. Tile i (tokens [16 i, 16 i + 16)), K step s (64 bytes per token: 32 bf16 or 64 int8
  // values) is the 1 KB at amx_tiles + (i * amx_tile_steps + s) * 1024, row m = token 16 i + m;
  // zero past token n and past k. Without it the AMX kernels read bf16_pairs / q8 rows in place.
  const uint8_t* amx_tiles = nullptr;
  int64_t amx_tile_steps = 0;
};

// K steps (64 bytes per token each) of the AMX tile form of k activations: ceil(k / 32) for bf16,
// ceil(k / 64) for int8.
int64_t AmxTileSteps(int64_t k, bool int8);

// 32-bit words per token of ConvertToBf16Pairs's output: ceil(k / 2).
inline int64_t Bf16PairCount(int64_t k) { return (k + 1) / 2; }

// out[t * Bf16PairCount(k) + p] = bf16(x[t][2p]) | bf16(x[t][2p + 1]) << 16 (round to nearest
// even; an odd k gets a zero high half in its last word). Tokens are independent: a scheduler may
// convert disjoint token ranges in parallel.
void ConvertToBf16Pairs(const float* x, int64_t n, int64_t k, uint32_t* out);

// The rows the calling thread runs next in the same phase (gate/up rows [r0, r1) of e for
// GateUpRows, down rows for DownRows), for software prefetch only: the AMX kernels fetch the first
// weights of those rows into L2 while the current call's last K block runs (AmxTuning::prefetch).
// Results never depend on it; e == nullptr (the default): nothing runs next, or it is unknown. e
// must then have the same shape and format as the call's expert.
struct RowsAhead {
  const PackedExpert* e = nullptr;
  int64_t r0 = 0, r1 = 0;
};

// act[t * I + r] = silu(gate[r] . x[t]) * (up[r] . x[t]) for r in [r0, r1), t < x.n
// (I = e.intermediate(), x.k == e.hidden()). Other elements of act are not touched. For int8 /
// int4 weights, gate[r] . x[t] = sx[t] * sum_g s[r][g] * (integer dot of group g) (moe_format.h).
void GateUpRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& x,
                int64_t r0, int64_t r1, float* act, const RowsAhead& ahead = {});

// Where a kernel writes bf16 activations straight into their AMX tile form (the layout of
// ExpertActivations::amx_tiles): ActivationBuffer::DirectTiles gives it.
struct AmxTileRows {
  uint8_t* tiles = nullptr;  // tile 0 (rows 0-15), K step 0
  int64_t steps = 0;         // K steps per 16-row tile

  // Where bf16 value r of token t goes: tile t / 16, K step r / 32, row t % 16, bytes 2 (r % 32).
  uint8_t* Bf16At(int64_t t, int64_t r) const {
    return tiles + ((t / 16) * steps + r / 32) * 1024 + (t % 16) * 64 + (r % 32) * 2;
  }
};

// Whether act of this call can skip its f32 rows: the AMX bf16 kernel runs gate/up and down (bf16
// weights, bf16 activations, AMX for x.n tokens), so down reads act only in the tile form. Then
// GateUpRowsToTiles applies.
bool GateUpWritesTiles(const ExpertKernel& kernel, const PackedExpert& e, int64_t n);

// GateUpRows for such a call (GateUpWritesTiles), with act[t][r] (t < x.n, r in [r0, r1)) written
// as bf16 (ConvertToBf16Pairs's rounding of the same f32 value) into its place in `out`: the
// bytes ActivationBuffer::FillAmxTiles writes from GateUpRows's f32 act, so down's results are
// the same bits. Nothing else of `out` is written (DirectTiles zeroes the padding beforehand).
void GateUpRowsToTiles(const ExpertKernel& kernel, const PackedExpert& e,
                       const ExpertActivations& x, int64_t r0, int64_t r1, const AmxTileRows& out,
                       const RowsAhead& ahead = {});

// y[t * H + d] = down[d] . act[t] for d in [d0, d1), t < act.n (H = e.hidden(),
// act.k == e.intermediate()). Other elements of y are not touched.
void DownRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& act,
              int64_t d0, int64_t d1, float* y, const RowsAhead& ahead = {});

// The forms of ActivationBuffer besides f32.
struct ActivationForms {
  bool bf16_pairs = false;  // ExpertActivations::bf16_pairs
  bool int8 = false;        // q8, q8_scale, q8_sums32 (quantized weights)
  bool amx_tiles = false;   // amx_tiles: of q8 when int8, else of bf16 values
};

// Activations of rows x [n x k] in the extra forms a kernel may read besides f32. Reset sizes it,
// Fill converts rows (concurrent Fills of disjoint row ranges are safe), View gives the kernels'
// view of a row range. The tile form is laid out in 16-row tiles of the whole buffer: Fill writes
// it only for ranges that start on a multiple of 16 (zero-padding the last tile past r1), and View
// gives it only for such ranges -- so a caller that wants it for each of several row ranges
// starts each on a multiple of 16.
class ActivationBuffer {
 public:
  // Token rows of one tile of the AMX tile form: a range of rows read as tiles starts on a
  // multiple of this.
  static constexpr int64_t kTileTokens = 16;

  // n rows of k values in `forms`. Storage is kept for at least max(n, reserve_rows) rows, so
  // later calls up to that many rows reuse it (no allocation, no first-touch page faults).
  void Reset(int64_t n, int64_t k, ActivationForms forms, int64_t reserve_rows = 0);
  void Fill(const float* x, int64_t r0, int64_t r1);  // x: row 0 of the [n x k] activations
  ExpertActivations View(const float* x, int64_t r0, int64_t n) const;
  // For rows that only the AMX kernels read (forms {amx_tiles}, or {amx_tiles, int8}): fills
  // rows [r0, r1) (r0 a multiple of 16) of the tile form -- and, for int8, their scales -- with
  // row r taken from source row s = src_row[r - r0] (src_row null: s = r): x + s * k (f32) for
  // bf16; for int8, row s of `quantized` (an int8 buffer over the source rows, filled) when given,
  // else x + s * k quantized here. The tiles and scales equal those of copying the rows and
  // calling Fill; the f32 rows, q8 rows and sums of these rows are not written (the AMX kernels
  // read the tiles and scales only), which saves a copy of every row and a pass over it.
  void FillAmxTiles(const float* x, const ActivationBuffer* quantized, const int64_t* src_row,
                    int64_t r0, int64_t r1);
  // For bf16 rows [r0, r1) (r0 a multiple of 16; forms {amx_tiles}) whose tile form a kernel
  // writes in place (GateUpRowsToTiles): zeroes what such a kernel never writes -- the bytes past
  // k in every row's last K step, and the rows [r1, next multiple of 16) -- and returns where it
  // writes. Disjoint row ranges may be prepared and written concurrently.
  AmxTileRows DirectTiles(int64_t r0, int64_t r1);

  // Reset + Fill + View of all n rows, in the forms `kernel` reads over weights of `dtype`.
  ExpertActivations Prepare(const ExpertKernel& kernel, ExpertDtype dtype, const float* x,
                            int64_t n, int64_t k);

 private:
  static constexpr int64_t kTileRowBytes = 64, kTileBytes = 1024;
  void ScatterToTiles(const uint8_t* src, int64_t bytes, int64_t r);
  uint8_t* TileRow(int64_t r);    // row r % 16 of step 0 of tile r / 16 (steps 1 KB apart)
  void ZeroTileRows(int64_t r1);  // rows [r1, next multiple of 16) of the tile form

  int64_t k_ = 0;
  ActivationForms forms_;
  int64_t tile_steps_ = 0;
  // Written by Fill / FillAmxTiles before anything reads them (rows past n and past k included).
  ScratchArray<uint32_t> pairs_;
  ScratchArray<uint8_t> tiles_;
  ScratchArray<int8_t> q8_;
  ScratchArray<float> q8_scale_;
  ScratchArray<int32_t> q8_sums32_;
};

// The forms `kernel` reads for n tokens over weights of `dtype`: the int8 form for quantized
// weights, bf16 pairs where the kernel reads them, the AMX tile form where the AMX tiles run.
ActivationForms ActivationFormsFor(const ExpertKernel& kernel, ExpertDtype dtype, int64_t n);

// Buffers ExpertForward reuses between calls (one per thread).
struct ExpertScratch {
  std::vector<float> act;
  ActivationBuffer x;
  ActivationBuffer act_forms;
};

// y[n x H] = down(silu(gate x) * up x) for x [n x H], serially. n == 0 does nothing.
void ExpertForward(const ExpertKernel& kernel, const PackedExpert& e, const float* x, int64_t n,
                   float* y, ExpertScratch* scratch);

}  // namespace tandem
