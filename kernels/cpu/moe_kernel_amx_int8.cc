// The AMX int8 MoE kernels (TDPBSSD: signed int8 activations x signed int8 weights, int32 C) over
// the int8 packed layout of moe_pack.h. Only the functions marked TANDEM_AMX use AMX / AVX-512
// instructions, so this file compiles for any x86-64 and its code runs only where
// ResolveCpuKernel returned kAmx.
//
// Operands: K step s (64 K values) of a 16-row int8 block is its quads [16 s, 16 s + 16): 16
// vectors of 64 bytes, lane r (4 bytes) = W[16 b + r][4 q .. 4 q + 3] -- one TDPBSSD B tile, read
// in place; K is padded to a multiple of 64 at packing, so there is no K tail on the weight side.
// The A operand (16 tokens x 64 int8) comes from x.q8 [n x Int8ActivationStride(k)] (stride a
// multiple of 128 >= the weights' padded K, zero beyond k), copied per K block into a small
// per-thread panel; tokens past n are zero rows of the panel.
// Result: (float(dot) * weight scale[row]) * x.q8_scale[t] -- moe_kernel_impl.h's expression --
// and SiluTimes(gate, up) for gate/up. Integer dots are exact, so results equal the reference and
// AVX-512 kernels' bit for bit whatever the row range.
//
// Loop and knobs are those of the bf16 kernel (moe_kernel_amx.cc, amx_tiles.h): the same 16 x
// 64-byte tiles and 16-cycle TDPs, with a K step of 64 values instead of 32 -- the same bytes per
// step and twice the ops. Measured like the bf16 kernel (16 threads, DeepSeek-V3 expert, 32-row
// tasks, x.q8 given): 7.5-11.6 TOPS gate/up and 6.6-10.3 down at 32-1024 tokens.
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

template <class Epilogue>
TANDEM_AMX void Product(const ExpertActivations& x, const PackedMatrix& m,
                        const amx::WeightGroup& w, const Epilogue& epilogue) {
  const int64_t stride = Int8ActivationStride(x.k);
  const int64_t nks = m.padded_cols() / kStepK;  // padded_cols <= stride: read in place
  const amx::ByteRows src{reinterpret_cast<const uint8_t*>(x.q8), stride, stride};
  amx::GroupProduct<amx::TileKind::kInt8>(src, x.n, nks, w, epilogue);
}

TANDEM_AMX void GateUp(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act) {
  const float* scales[2] = {e.gate.scales(), e.up.scales()};
  amx::GateUpRowGroups<int32_t>(
      e, r0, r1, act,
      [&](amx::WeightGroup* w) { w->whole_steps = e.gate.padded_cols() / kStepK; },  // no K tail
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(x, e.gate, w, epilogue); },
      [&](int32_t c, int m, int64_t r, int64_t t) {
        return (static_cast<float>(c) * scales[m][r]) * x.q8_scale[t];
      });
}

TANDEM_AMX void Down(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y) {
  const float* sd = e.down.scales();
  amx::DownRowGroups<int32_t>(
      e, d0, d1, y, [&](amx::WeightGroup* w) { w->whole_steps = e.down.padded_cols() / kStepK; },
      [&](const amx::WeightGroup& w, const auto& epilogue) { Product(act, e.down, w, epilogue); },
      [&](int32_t c, int, int64_t r, int64_t t) {
        return (static_cast<float>(c) * sd[r]) * act.q8_scale[t];
      });
}

}  // namespace

void AmxInt8GateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act) {
  if (r0 >= r1 || x.n == 0) return;
  GateUp(e, x, r0, r1, act);
}

void AmxInt8DownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y) {
  if (d0 >= d1 || act.n == 0) return;
  Down(e, act, d0, d1, y);
}

#else  // !__x86_64__: never selected (ResolveCpuKernel finds no AMX); keep the link whole.

void AmxInt8GateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                       float* act) {
  ReferenceQuantGateUpRows(e, x, r0, r1, act);
}
void AmxInt8DownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                     float* y) {
  ReferenceQuantDownRows(e, act, d0, d1, y);
}

#endif

}  // namespace tandem::moe_internal
