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

// out[t * out_stride + r] = the quantized dot of W[r] and x[t] (moe_kernel_impl.h's expression).
void QuantRowsTimesTokens(const PackedMatrix& w, const ExpertActivations& x, int64_t r0, int64_t r1,
                          float* out, int64_t out_stride) {
  const int64_t k = w.cols(), stride = Int8ActivationStride(x.k);
  const int64_t group_cols = w.group_cols(), groups = w.groups();
  std::vector<int> row(w.padded_cols());
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < w.padded_cols(); ++j) row[j] = j < k ? w.QuantAt(r, j) : 0;
    for (int64_t t = 0; t < x.n; ++t) {
      const int8_t* xt = x.q8 + t * stride;
      float sum = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot = 0;
        for (int64_t j = g * group_cols; j < std::min(k, (g + 1) * group_cols); ++j)
          dot += row[j] * xt[j];
        sum += static_cast<float>(dot) * w.Scale(r, g);
      }
      out[t * out_stride + r] = sum * x.q8_scale[t];
    }
  }
}

// act = silu(gate x) * up x for rows [r0, r1), with `rows` the dot products of one matrix.
template <typename RowsFn>
void GateUpWith(RowsFn rows, const PackedExpert& e, const ExpertActivations& x, int64_t r0,
                int64_t r1, float* act) {
  const int64_t inter = e.intermediate();
  if (r0 >= r1 || x.n == 0) return;
  std::vector<float> up(x.n * inter);
  rows(e.gate, x, r0, r1, act, inter);
  rows(e.up, x, r0, r1, up.data(), inter);
  for (int64_t t = 0; t < x.n; ++t)
    for (int64_t r = r0; r < r1; ++r)
      act[t * inter + r] = SiluTimes(act[t * inter + r], up[t * inter + r]);
}

}  // namespace

void ReferenceGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0, int64_t r1,
                         float* act) {
  GateUpWith(RowsTimesTokens, e, x, r0, r1, act);
}

void ReferenceDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0, int64_t d1,
                       float* y) {
  if (d0 >= d1 || act.n == 0) return;
  RowsTimesTokens(e.down, act, d0, d1, y, e.hidden());
}

void ReferenceQuantGateUpRows(const PackedExpert& e, const ExpertActivations& x, int64_t r0,
                              int64_t r1, float* act) {
  GateUpWith(QuantRowsTimesTokens, e, x, r0, r1, act);
}

void ReferenceQuantDownRows(const PackedExpert& e, const ExpertActivations& act, int64_t d0,
                            int64_t d1, float* y) {
  if (d0 >= d1 || act.n == 0) return;
  QuantRowsTimesTokens(e.down, act, d0, d1, y, e.hidden());
}

}  // namespace tandem::moe_internal
