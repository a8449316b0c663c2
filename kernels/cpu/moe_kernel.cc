#include "kernels/cpu/moe_kernel.h"

#include <algorithm>

#include "common/bf16.h"
#include "kernels/cpu/moe_kernel_impl.h"

namespace tandem {
namespace {

bool UsesAvx512(const ExpertKernel& k) {
  return k.isa == CpuKernel::kAvx512 || k.isa == CpuKernel::kAmx;
}

// kAmx with bf16 activations and >= moe_internal::kAmxMinTokens tokens: the AMX tile kernel.
bool UsesAmx(const ExpertKernel& k, int64_t n) {
  return k.isa == CpuKernel::kAmx && k.activations == ActivationPrecision::kBf16 &&
         n >= moe_internal::kAmxMinTokens;
}

}  // namespace

bool ExpertKernel::uses_bf16_activations() const {
  return UsesAvx512(*this) && activations == ActivationPrecision::kBf16;
}

void ConvertToBf16Pairs(const float* x, int64_t n, int64_t k, uint32_t* out) {
  const int64_t pairs = Bf16PairCount(k);
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * k;
    uint32_t* o = out + t * pairs;
    for (int64_t p = 0; p < pairs; ++p) {
      const uint32_t lo = FloatToBf16(xt[2 * p]);
      const uint32_t hi = 2 * p + 1 < k ? FloatToBf16(xt[2 * p + 1]) : 0u;
      o[p] = lo | (hi << 16);
    }
  }
}

void GateUpRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& x,
                int64_t r0, int64_t r1, float* act) {
  if (UsesAmx(kernel, x.n)) {
    moe_internal::AmxGateUpRows(e, x, r0, r1, act);
  } else if (UsesAvx512(kernel)) {
    moe_internal::Avx512GateUpRows(e, x, kernel.uses_bf16_activations(), r0, r1, act);
  } else {
    moe_internal::ReferenceGateUpRows(e, x, r0, r1, act);
  }
}

void DownRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& act,
              int64_t d0, int64_t d1, float* y) {
  if (UsesAmx(kernel, act.n)) {
    moe_internal::AmxDownRows(e, act, d0, d1, y);
  } else if (UsesAvx512(kernel)) {
    moe_internal::Avx512DownRows(e, act, kernel.uses_bf16_activations(), d0, d1, y);
  } else {
    moe_internal::ReferenceDownRows(e, act, d0, d1, y);
  }
}

void ExpertForward(const ExpertKernel& kernel, const PackedExpert& e, const float* x, int64_t n,
                   float* y, ExpertScratch* scratch) {
  const int64_t hidden = e.hidden(), inter = e.intermediate();
  if (n == 0) return;
  if (inter == 0) {  // a zero-width slice of an expert contributes nothing
    std::fill(y, y + n * hidden, 0.0f);
    return;
  }
  const bool bf16 = kernel.uses_bf16_activations();
  scratch->act.resize(n * inter);
  ExpertActivations xa{x, nullptr, n, hidden};
  if (bf16) {
    scratch->x_pairs.resize(n * Bf16PairCount(hidden));
    ConvertToBf16Pairs(x, n, hidden, scratch->x_pairs.data());
    xa.bf16_pairs = scratch->x_pairs.data();
  }
  GateUpRows(kernel, e, xa, 0, inter, scratch->act.data());
  ExpertActivations aa{scratch->act.data(), nullptr, n, inter};
  if (bf16) {
    scratch->act_pairs.resize(n * Bf16PairCount(inter));
    ConvertToBf16Pairs(scratch->act.data(), n, inter, scratch->act_pairs.data());
    aa.bf16_pairs = scratch->act_pairs.data();
  }
  DownRows(kernel, e, aa, 0, hidden, y);
}

}  // namespace tandem
