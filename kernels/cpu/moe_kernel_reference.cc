// The scalar reference of the MoE kernels: plain f32 loops over the packed weights.
#include <algorithm>
#include <vector>

#include "common/bf16.h"
#include "kernels/cpu/moe_kernel_impl.h"

namespace tandem::moe_internal {
namespace {

// out[t * out_stride + r] = W[r] . x[t] for r in [r0, r1), t < x.n.
void RowsTimesTokens(const PackedMatrix& w, const ExpertActivations& x, int64_t r0, int64_t r1,
                     float* out, int64_t out_stride) {
  const int64_t k = w.cols();
  std::vector<float> row(k);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < k; ++j) row[j] = Bf16ToFloat(w.At(r, j));
    for (int64_t t = 0; t < x.n; ++t) {
      const float* xt = x.f32 + t * k;
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) sum += row[j] * xt[j];
      out[t * out_stride + r] = sum;
    }
  }
}

}  // namespace

void ReferenceGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                         float* act) {
  const int64_t inter = e.intermediate();
  if (r0 >= r1 || x.n == 0) return;
  std::vector<float> up(x.n * inter);
  RowsTimesTokens(e.gate, x, r0, r1, act, inter);
  RowsTimesTokens(e.up, x, r0, r1, up.data(), inter);
  for (int64_t t = 0; t < x.n; ++t)
    for (int64_t r = r0; r < r1; ++r)
      act[t * inter + r] = SiluTimes(act[t * inter + r], up[t * inter + r]);
}

void ReferenceDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                       float* y) {
  if (d0 >= d1 || act.n == 0) return;
  RowsTimesTokens(e.down, act, d0, d1, y, e.hidden());
}

}  // namespace tandem::moe_internal
