#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/convert_avx512.h"  // FirstLanes
#include "kernels/cpu/isa.h"
#include "kernels/cpu/silu.h"

namespace tandem {

void RmsNormRow(const float* x, const float* weight, int64_t n, double eps, float* out) {
  double sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t n, double eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) RmsNormRow(x + r * n, weight, n, eps, out + r * n);
}

namespace {

#if defined(__x86_64__)
__attribute__((target("avx512f"))) void SiluMulAvx512(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(gate + i, SiluTimes16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(
        gate + i, m,
        SiluTimes16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// WeightedRowSum 64 values at a time: the rows' 4 vectors summed in registers, `out` stored once.
// The empty asm keeps GCC from fusing the multiply and the add into an FMA (it does so even with
// the explicit-rounding intrinsics), which would round once instead of twice and change the bits.
__attribute__((target("avx512f"))) void WeightedRowSumAvx512(const float* const* rows,
                                                             const float* weights, int64_t count,
                                                             int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 64) {
    __mmask16 m[4];
    __m512 acc[4];
    for (int v = 0; v < 4; ++v) {
      m[v] = convert_internal::FirstLanes(n - i - 16 * v);
      acc[v] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < count; ++j) {
      if (rows[j] == nullptr) continue;
      const __m512 w = _mm512_set1_ps(weights[j]);
      for (int v = 0; v < 4; ++v) {
        __m512 product = _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m[v], rows[j] + i + 16 * v));
        __asm__("" : "+v"(product));
        acc[v] = _mm512_add_ps(acc[v], product);
      }
    }
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(out + i + 16 * v, m[v], acc[v]);
  }
}
#endif

}  // namespace

void WeightedRowSum(const float* const* rows, const float* weights, int64_t count, int64_t n,
                    float* out) {
#if defined(__x86_64__)
  if (HasAvx512FBw()) return WeightedRowSumAvx512(rows, weights, count, n, out);
#endif
  std::fill(out, out + n, 0.0f);
  for (int64_t j = 0; j < count; ++j) {
    if (rows[j] == nullptr) continue;
    const float w = weights[j];
    const float* r = rows[j];
    for (int64_t i = 0; i < n; ++i) out[i] += w * r[i];
  }
}

void SiluMul(float* gate, const float* up, int64_t n) {
#if defined(__x86_64__)
  if (HasAvx512FBw()) return SiluMulAvx512(gate, up, n);  // the same bits as the scalar loop
#endif
  for (int64_t i = 0; i < n; ++i) gate[i] = SiluTimes(gate[i], up[i]);
}

void SoftmaxInPlace(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace tandem
