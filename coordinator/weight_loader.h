// Reads named weights of a checkpoint into the engine's in-memory types, checking shapes against
// the config. bf16 and FP8 tensors are held as bf16 (FP8 dequantized at load with its block
// scales); f32 and f16 tensors as f32, so no precision is lost. Used at load time by one thread.
#pragma once

#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "kernels/cpu/linear.h"

namespace tandem {

// Rows [row_begin, row_end) and columns [col_begin, col_end) of `m` (its bias follows the rows).
// The caller guarantees the ranges lie inside `m`.
WeightMatrix SliceMatrix(const WeightMatrix& m, int64_t row_begin, int64_t row_end,
                         int64_t col_begin, int64_t col_end);

class WeightLoader {
 public:
  WeightLoader(const Checkpoint& checkpoint, const ModelConfig& config)
      : checkpoint_(checkpoint), config_(config) {}

  bool Has(const std::string& name) const { return checkpoint_.Has(name); }

  // A [rows x cols] matrix; its `.bias` companion (name with .weight -> .bias) is loaded when present.
  absl::StatusOr<WeightMatrix> Matrix(const std::string& name, int64_t rows, int64_t cols) const;
  // Rows [row_begin, row_begin + rows) of matrix `index` of a 3-D tensor [n x total_rows x cols]
  // (transformers >= 5 fused experts).
  absl::StatusOr<WeightMatrix> MatrixFrom3d(const std::string& name, int64_t index, int64_t row_begin,
                                            int64_t rows, int64_t cols) const;
  // Rows [begin, end) or columns [begin, end) of a [rows x cols] matrix (a tensor-parallel slice).
  // BF16 tensors are copied straight from the mapped file, so only the slice is read; other
  // dtypes are converted whole and then cut.
  absl::StatusOr<WeightMatrix> MatrixRows(const std::string& name, int64_t rows, int64_t cols,
                                          int64_t begin, int64_t end) const;
  absl::StatusOr<WeightMatrix> MatrixColumns(const std::string& name, int64_t rows, int64_t cols,
                                             int64_t begin, int64_t end) const;
  // A 1-D f32 vector of `size` values (norm weights, biases).
  absl::StatusOr<std::vector<float>> Vector(const std::string& name, int64_t size) const;

 private:
  std::array<int64_t, 2> Fp8Block() const;
  absl::StatusOr<WeightMatrix> SliceOf(const std::string& name, int64_t rows, int64_t cols,
                                       int64_t begin, int64_t end, int64_t col_begin,
                                       int64_t col_end) const;
  const Checkpoint& checkpoint_;
  const ModelConfig& config_;
};

}  // namespace tandem
