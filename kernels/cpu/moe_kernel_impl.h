// Internal to the MoE kernels: the per-ISA implementations behind moe_kernel.h's dispatch.
// Same contracts as GateUpRows / DownRows there; callers outside kernels/cpu use moe_kernel.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_pack.h"

namespace tandem::moe_internal {

// silu(g) * u, the same formula as the engine's SiluMul (elementwise.h).
inline float SiluTimes(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

// Scalar f32 loops over the packed layout; the ground truth of the tests.
void ReferenceGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                         float* act);
void ReferenceDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                       float* y);

// AVX-512 (avx512f/bw/vl/bf16); bf16_activations selects vdpbf16ps over x.bf16_pairs, otherwise
// f32 FMAs over the weights widened to f32 and x.f32.
void Avx512GateUpRows(const PackedExpert& e, const ExpertActivations& x, bool bf16_activations,
                      int64_t r0, int64_t r1, float* act);
void Avx512DownRows(const PackedExpert& e, const ExpertActivations& act, bool bf16_activations,
                    int64_t d0, int64_t d1, float* y);

// A kAmx kernel with bf16 activations runs the AMX tiles for calls of at least this many tokens and
// the AVX-512 vdpbf16ps code below (decode, bandwidth-bound); with f32 activations it always runs
// the AVX-512 f32 code (AMX has no f32 path). Measured on the GPU machine's 16-core AMX Xeon
// (DeepSeek-V3 expert, 2048 x 7168, gate+up+down, 1 and 16 threads): AMX is ahead from 4 tokens
// on (by 10-23% at 4, 1.6-1.9x at 8, 4x at 16: a padded 16-token tile still beats AVX-512's
// 4-token tiles); at 1-3 tokens the two are within ~10% of each other, either way.
inline constexpr int64_t kAmxMinTokens = 4;

// AMX bf16 tiles (moe_kernel_amx.cc), any n >= 1 (the dispatch uses them from kAmxMinTokens): the
// activations are read as bf16 pairs (x.bf16_pairs, or x.f32 converted inside the call). Only after
// ResolveCpuKernel returned kAmx.
void AmxGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                   float* act);
void AmxDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                 float* y);

}  // namespace tandem::moe_internal
