// The AMX int8 MoE kernels (TDPBSSD: signed int8 activations x signed int8 weights, int32 C) over
// the int8 packed layout of moe_pack.h. Only the functions marked TANDEM_AMX use AMX / AVX-512
// instructions, so this file compiles for any x86-64 and its code runs only where
// ResolveCpuKernel returned kAmx.
//
// Operands: K step s (64 K values) of a 16-row int8 block is its quads [16 s, 16 s + 16): 16
// vectors of 64 bytes, lane r (4 bytes) = W[16 b + r][4 q .. 4 q + 3] -- one TDPBSSD B tile, read
// in place; K is padded to a multiple of 64 at packing, so there is no K tail on the weight side.
// The A operand (16 tokens x 64 int8) comes from x.amx_tiles when given (tile order, read in
// place), else from x.q8 [n x Int8ActivationStride(k)] (stride a multiple of 128 >= the weights'
// padded K, zero beyond k), read in place for whole 16-token tiles and through a small per-thread
// panel for the token tail.
// Result: (float(dot) * weight scale[row]) * x.q8_scale[t] -- moe_kernel_impl.h's expression --
// and SiluTimes(gate, up) for gate/up. Integer dots are exact, so results equal the reference and
// AVX-512 kernels' bit for bit whatever the row range.
//
// Loop and knobs are those of the bf16 kernel (moe_kernel_amx.cc, amx_tiles.h): the same 16 x
// 64-byte tiles and 16-cycle TDPs, with a K step of 64 values instead of 32 -- the same bytes per
// step and twice the ops. Measured like the bf16 kernel (16 threads, Qwen2-57B layer at 1024
// tokens, default AmxTuning, tile form given; bench/RESULTS.md, fifth pass): ~14.7 TOPS gate/up
// and ~13.9 down, 45-48% of the register-only int8 peak (~31 TOPS). The TDP rate is about the
// bf16 kernel's (the same loads per TDP bound both), and TDPBSSD's register-only peak is 3-11%
// above twice TDPBF16PS's, so the same loop scores a lower int8 ratio.
#include <algorithm>

#include "kernels/cpu/moe_kernel_impl.h"

#if defined(__x86_64__)
#include "kernels/cpu/amx_tiles.h"
#endif

namespace tandem::moe_internal {

#if defined(__x86_64__)
namespace {

using amx::kTileBytes;
using amx::kTileRows;
constexpr int64_t kB = PackedMatrix::kBlockRows;
constexpr int64_t kStepK = 64;  // K values of one TDPBSSD

// The f32 values of int8 C tile rows (amx_tiles.h, F32Values): (float(dot) * weight scale[row]) *
// activation scale[token], moe_kernel_impl.h's expression, 16 rows at a time.
struct ScaledDots {
  const float* weight_scales[3];  // of gate, up, down (the ones the call reads)
  const float* token_scales;
  TANDEM_AMX __m512 operator()(const int32_t* c, int m, int64_t first, __mmask16 lanes,
                               int64_t t) const {
    const __m512 w = _mm512_maskz_loadu_ps(lanes, weight_scales[m] + first);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c)), w),
                         _mm512_set1_ps(token_scales[t]));
  }
};

template <class Epilogue>
TANDEM_AMX void Product(const ExpertActivations& x, const PackedMatrix& m,
                        const amx::WeightGroup& w, const Epilogue& epilogue) {
  const int64_t stride = Int8ActivationStride(x.k);
  const int64_t nks = m.padded_cols() / kStepK;  // padded_cols <= stride: read in place
  if (x.amx_tiles != nullptr) {
    amx::GroupProduct<amx::TileKind::kInt8>(amx::TileOrder{x.amx_tiles, x.amx_tile_steps}, x.n, nks,
                                            w, epilogue);
    return;
  }
  const amx::ByteRows src{reinterpret_cast<const uint8_t*>(x.q8), stride, stride};
  amx::GroupProduct<amx::TileKind::kInt8>(src, x.n, nks, w, epilogue);
}

TANDEM_AMX void GateUp(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act, const RowsAhead& ahead) {
  amx::GateUpRowGroups<int32_t>(
      e, r0, r1, amx::F32ActRows{act, e.intermediate()}, ahead,
      [&](amx::WeightGroup* w) { w->whole_steps = e.gate.padded_cols() / kStepK; },  // no K tail
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(x, e.gate, w, epilogue); },
      ScaledDots{{e.gate.scales(), e.up.scales(), nullptr}, x.q8_scale});
}

TANDEM_AMX void Down(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y, const RowsAhead& ahead) {
  amx::DownRowGroups<int32_t>(
      e, d0, d1, y, ahead,
      [&](amx::WeightGroup* w) { w->whole_steps = e.down.padded_cols() / kStepK; },
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(act, e.down, w, epilogue); },
      ScaledDots{{nullptr, nullptr, e.down.scales()}, act.q8_scale});
}

}  // namespace

void AmxInt8GateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act, const RowsAhead& ahead) {
  if (r0 >= r1 || x.n == 0) return;
  GateUp(e, x, r0, r1, act, ahead);
}

void AmxInt8DownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y, const RowsAhead& ahead) {
  if (d0 >= d1 || act.n == 0) return;
  Down(e, act, d0, d1, y, ahead);
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AMX); keep the link whole.

void AmxInt8GateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act, const RowsAhead&) {
  ReferenceQuantGateUpRows(e, x, r0, r1, act);
}
void AmxInt8DownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y, const RowsAhead&) {
  ReferenceQuantDownRows(e, act, d0, d1, y);
}

#endif

}  // namespace tandem::moe_internal
