// The AMX bf16 MoE kernels (TDPBF16PS) over the packed layout of moe_pack.h. Only the functions
// marked TANDEM_AMX use AMX / AVX-512 instructions, so this file compiles for any x86-64 and its
// code runs only where ResolveCpuKernel returned kAmx (which also means the process holds the Linux
// permission for the tile data state: isa.cc requests it, per process, on detection, so any thread
// may then use the tiles).
//
// No second packed copy of the weights is needed: K step s (pairs [16 s, 16 s + 16)) of a 16-row
// block of moe_pack.h's layout is 16 vectors of 64 bytes, vector p holding (W[r][2p], W[r][2p + 1])
// for r = 0..15 -- exactly the VNNI form of AMX's B operand (K/2 rows of N = 16 column pairs) for
// C[token][row] = x . W^T. The A operand (16 tokens x 32 bf16) is read in place from x.amx_tiles
// when given, else from the bf16 pairs [n x ceil(k/2)] (x.bf16_pairs); a token tail or K tail of
// those, or x.f32 (converted with ConvertToBf16Pairs's rounding, bit for bit, tile by tile), goes
// through a small zero-padded per-thread panel. All sources give the same bits.
//
// The loop (amx_tiles.h, GroupProduct): the call's rows form one group of blocks -- gate/up:
// (gate b, up b), (gate b + 1, up b + 1), ..., so SiLU(g) * u is computed straight from the C
// tiles; down: (b, b + 1), ... -- walked per token chunk, per K block of ~14 steps, per 32-token
// pair, per block pair: 2 A + 2 B tile loads, 4 TDPBF16PS per 32-wide K step, C through a
// per-thread buffer between K blocks.
//
// What to expect (measured on the GPU machine's AMX Xeon, 16 threads, ExpertShard::Run's 256-row
// tasks over the tile form of the activations, default AmxTuning; noisy shared host;
// bench/RESULTS.md, fifth pass): Qwen2-57B layer at 1024-4096 tokens, gate/up ~7-7.5 TFLOPS and
// down ~6.5-7, i.e. ~45-53% of the register-only peak (~14 TFLOPS), which the tile loads of the
// 2x2 step bound at 55-73% (amx_tiles.h, `tandem-bench amx-loads`).
// Tails: n not a multiple of 16 (zero rows in the panel), K not a multiple of 32 (zeros in the
// panel, and the last B step from a zero-padded copy of the block's tail), rows not a multiple of
// 16 (zero rows of the packing), any [r0, r1) (only its rows are written). The result of a
// (token, row) is the same sequence of TDPs over the K steps whatever the row range, so row
// ranges compose bit-identically. The dispatch (moe_kernel.cc) sends calls of >= kAmxMinTokens
// tokens here (moe_kernel_impl.h).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/moe_kernel_impl.h"

#if defined(__x86_64__)
#include "kernels/cpu/amx_tiles.h"
#endif

namespace tandem::moe_internal {

#if defined(__x86_64__)
namespace {

using amx::kTileBytes;
using amx::kTileRows;
constexpr int64_t kB = PackedMatrix::kBlockRows;  // 16 rows of W = N of a C tile
constexpr int64_t kStepPairs = 16;                // K pairs of one TDPBF16PS

// Fills w.whole_steps and, when the last K step of the blocks is partial, their zero-padded
// copies (in `tails`, kMaxWeightBlocks KB).
void SetTails(int64_t k_pairs, uint8_t* tails, amx::WeightGroup* w) {
  const int64_t nks = (k_pairs + kStepPairs - 1) / kStepPairs;
  w->whole_steps = k_pairs / kStepPairs;
  if (w->whole_steps == nks) return;
  const int64_t bytes = (k_pairs - w->whole_steps * kStepPairs) * PackedMatrix::kVectorBytes;
  for (int j = 0; j < w->nwb; ++j) {
    uint8_t* t = tails + j * kTileBytes;
    std::memset(t, 0, kTileBytes);
    std::memcpy(t, w->block[j] + w->whole_steps * kTileBytes, bytes);
    w->tail[j] = t;
  }
  amx::CompilerBarrier();
}

template <class Epilogue>
TANDEM_AMX void Product(const ExpertActivations& x, int64_t k_pairs, const amx::WeightGroup& w,
                        const Epilogue& epilogue) {
  const int64_t nks = (k_pairs + kStepPairs - 1) / kStepPairs;
  if (x.amx_tiles != nullptr) {
    amx::GroupProduct<amx::TileKind::kBf16>(amx::TileOrder{x.amx_tiles, x.amx_tile_steps}, x.n, nks,
                                            w, epilogue);
  } else if (x.bf16_pairs != nullptr) {
    const amx::ByteRows src{reinterpret_cast<const uint8_t*>(x.bf16_pairs), k_pairs * 4,
                            k_pairs * 4};
    amx::GroupProduct<amx::TileKind::kBf16>(src, x.n, nks, w, epilogue);
  } else {
    const amx::F32Rows src{x.f32, x.k};
    amx::GroupProduct<amx::TileKind::kBf16>(src, x.n, nks, w, epilogue);
  }
}

template <class Sink>
TANDEM_AMX void GateUp(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       const Sink& act, const RowsAhead& ahead) {
  const int64_t k_pairs = e.gate.k_pairs();
  uint8_t* tails = amx::Scratch(amx::kTailSlot, amx::kMaxWeightBlocks * kTileBytes);
  amx::GateUpRowGroups<float>(
      e, r0, r1, act, ahead, [&](amx::WeightGroup* w) { SetTails(k_pairs, tails, w); },
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(x, k_pairs, w, epilogue); },
      amx::F32Values{});
}

TANDEM_AMX void Down(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y, const RowsAhead& ahead) {
  const int64_t k_pairs = e.down.k_pairs();
  uint8_t* tails = amx::Scratch(amx::kTailSlot, amx::kMaxWeightBlocks * kTileBytes);
  amx::DownRowGroups<float>(
      e, d0, d1, y, ahead, [&](amx::WeightGroup* w) { SetTails(k_pairs, tails, w); },
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(act, k_pairs, w, epilogue); },
      amx::F32Values{});
}

}  // namespace

AmxTuning GetAmxTuning() { return amx::GetTuning(); }

bool SetAmxTuning(const AmxTuning& tuning) {
  if (tuning.k_steps < 1 || tuning.k_steps > 4096 || tuning.chunk_pairs < 1 ||
      tuning.group_blocks < 2 || tuning.group_blocks > amx::kMaxWeightBlocks ||
      tuning.group_blocks % 2 != 0 || tuning.task_rows < 16 || tuning.task_rows % 16 != 0 ||
      tuning.prefetch < 0 || tuning.prefetch > 2)
    return false;
  amx::MutableTuning() = tuning;
  return true;
}

void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act, const RowsAhead& ahead) {
  if (r0 >= r1 || x.n == 0) return;
  GateUp(e, x, r0, r1, amx::F32ActRows{act, e.intermediate()}, ahead);
}

void AmxGateUpRowsToTiles(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                          const AmxTileRows& out, const RowsAhead& ahead) {
  if (r0 >= r1 || x.n == 0) return;
  GateUp(e, x, r0, r1, amx::Bf16ActTiles{out}, ahead);
}

void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y, const RowsAhead& ahead) {
  if (d0 >= d1 || act.n == 0) return;
  Down(e, act, d0, d1, y, ahead);
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AMX); keep the link whole.

AmxTuning GetAmxTuning() { return {}; }
bool SetAmxTuning(const AmxTuning&) { return false; }

void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act, const RowsAhead&) {
  ReferenceGateUpRows(e, x, r0, r1, act);
}
void AmxGateUpRowsToTiles(const PackedExpert&, const ExpertActivations&, int64_t, int64_t,
                          const AmxTileRows&, const RowsAhead&) {
  std::abort();  // unreachable: GateUpRowsToTiles calls it only for kAmx
}
void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y, const RowsAhead&) {
  ReferenceDownRows(e, act, d0, d1, y);
}

#endif

}  // namespace tandem::moe_internal
