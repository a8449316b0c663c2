#include "kernels/cpu/linear.h"

#include <algorithm>
#include <cstring>

#include "common/bf16.h"

namespace tandem {
namespace {

// The compiler vectorizes these loops; target_clones picks the widest ISA the running CPU has,
// so one binary runs everywhere and still uses AVX-512 where it exists.
#define TANDEM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

TANDEM_VECTOR_CLONES
void Bf16RowToFloat(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(&dst[i], &bits, 4);
  }
}

TANDEM_VECTOR_CLONES
float Dot(const float* a, const float* b, int64_t n) {
  // Eight partial sums keep the reduction vectorizable without -ffast-math.
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  float sum = 0;
  for (int j = 0; j < 16; ++j) sum += acc[j];
  return sum + tail;
}

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelWork = 1 << 18;

template <bool kAccumulate>
void LinearImpl(const float* x, int64_t num_tokens, const WeightMatrix& w, float* y) {
  const int64_t n_rows = w.rows, k = w.cols;
  const bool add_bias = !kAccumulate && !w.bias.empty();
#pragma omp parallel if (n_rows * k * num_tokens >= kMinParallelWork)
  {
    std::vector<float> row(w.is_f32 ? 0 : k);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < n_rows; ++n) {
      const float* wrow;
      if (w.is_f32) {
        wrow = w.f32.data() + n * k;
      } else {
        Bf16RowToFloat(w.bf16.data() + n * k, k, row.data());
        wrow = row.data();
      }
      const float b = add_bias ? w.bias[n] : 0.0f;
      for (int64_t t = 0; t < num_tokens; ++t) {
        const float v = Dot(x + t * k, wrow, k) + b;
        if (kAccumulate) {
          y[t * n_rows + n] += v;
        } else {
          y[t * n_rows + n] = v;
        }
      }
    }
  }
}

}  // namespace

void WeightMatrix::RowToFloat(int64_t r, float* out) const {
  if (is_f32) {
    std::memcpy(out, f32.data() + r * cols, cols * sizeof(float));
  } else {
    Bf16RowToFloat(bf16.data() + r * cols, cols, out);
  }
}

void LinearRowRange(const float* x, int64_t num_tokens, const WeightMatrix& w, int64_t row_begin,
                    int64_t row_end, float* y) {
  const int64_t k = w.cols;
  std::vector<float> row(w.is_f32 ? 0 : k);
  for (int64_t n = row_begin; n < row_end; ++n) {
    const float* wrow;
    if (w.is_f32) {
      wrow = w.f32.data() + n * k;
    } else {
      Bf16RowToFloat(w.bf16.data() + n * k, k, row.data());
      wrow = row.data();
    }
    const float b = w.bias.empty() ? 0.0f : w.bias[n];
    for (int64_t t = 0; t < num_tokens; ++t) y[t * w.rows + n] = Dot(x + t * k, wrow, k) + b;
  }
}

void Linear(const float* x, int64_t num_tokens, const WeightMatrix& w, float* y) {
  LinearImpl<false>(x, num_tokens, w, y);
}

void LinearAccumulate(const float* x, int64_t num_tokens, const WeightMatrix& w, float* y) {
  LinearImpl<true>(x, num_tokens, w, y);
}

}  // namespace tandem
