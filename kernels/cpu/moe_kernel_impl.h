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

}  // namespace tandem::moe_internal
