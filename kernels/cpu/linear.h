// Dense matrix products of the CPU engine: y[T x N] = x[T x K] * W^T (+ bias), W stored row-major
// [N x K] in bf16 or f32, accumulation in f32. Parallel over output rows with OpenMP; callable from
// any one thread at a time per output buffer (the function itself is reentrant).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tandem {

// A weight matrix [rows x cols] held in memory in one of the two storage types the engine uses:
// bf16 (checkpoint bf16, and FP8 dequantized at load) or f32 (checkpoint f32 / f16, lossless).
struct WeightMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint16_t> bf16;  // used when !is_f32
  std::vector<float> f32;      // used when is_f32
  bool is_f32 = false;
  std::vector<float> bias;     // empty, or `rows` values

  bool empty() const { return rows == 0; }
  size_t bytes() const { return is_f32 ? f32.size() * 4 : bf16.size() * 2; }
  // Row `r` converted to f32 into `out` (cols values).
  void RowToFloat(int64_t r, float* out) const;
};

// y[t * N + n] = sum_k x[t * K + k] * W[n, k] (+ bias[n]), for t < T.
void Linear(const float* x, int64_t num_tokens, const WeightMatrix& w, float* y);

// Rows [row_begin, row_end) of Linear, computed serially on the calling thread (for callers that
// schedule their own tasks): y[t * N + n] for n in the range. Bias included.
void LinearRowRange(const float* x, int64_t num_tokens, const WeightMatrix& w, int64_t row_begin,
                    int64_t row_end, float* y);

// Same as Linear, but adds the product into y (y += x W^T); bias is not added.
void LinearAccumulate(const float* x, int64_t num_tokens, const WeightMatrix& w, float* y);

}  // namespace tandem
