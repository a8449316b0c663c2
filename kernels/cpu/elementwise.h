// Small element-wise ops of the CPU engine, in f32. Reentrant; no threads of their own.
#pragma once

#include <cstdint>

namespace tandem {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for one row of n values. out may alias x.
void RmsNormRow(const float* x, const float* weight, int64_t n, double eps, float* out);
// RmsNormRow over `rows` consecutive rows.
void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t n, double eps, float* out);
// gate[i] = silu(gate[i]) * up[i], as SiluTimes (silu.h) computes it on every path.
void SiluMul(float* gate, const float* up, int64_t n);
// In-place softmax of n values (n >= 1).
void SoftmaxInPlace(float* x, int64_t n);
// out[i] = the sum over j < count with rows[j] != null of weights[j] * rows[j][i], for n values:
// each product rounded, then added to the sum in order of j from 0.0f (no fused multiply-add), so
// every ISA gives the same bits. out must not alias a row.
void WeightedRowSum(const float* const* rows, const float* weights, int64_t count, int64_t n,
                    float* out);
// x[i] += y[i].
void AddInPlace(float* x, const float* y, int64_t n);

}  // namespace tandem
