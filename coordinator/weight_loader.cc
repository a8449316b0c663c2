#include "coordinator/weight_loader.h"

#include <cstring>

#include "absl/strings/match.h"

namespace tandem {

std::array<int64_t, 2> WeightLoader::Fp8Block() const {
  if (config_.fp8_block_rows > 0) return {config_.fp8_block_rows, config_.fp8_block_cols};
  return {128, 128};
}

absl::StatusOr<WeightMatrix> WeightLoader::Matrix(const std::string& name, int64_t rows,
                                                  int64_t cols) const {
  WeightMatrix m;
  m.rows = rows;
  m.cols = cols;
  const int64_t shape[2] = {rows, cols};
  if (checkpoint_.StoredAsBf16OrNarrower(name)) {
    TANDEM_ASSIGN_OR_RETURN(m.bf16, checkpoint_.ReadBf16(name, shape, Fp8Block()));
  } else {
    m.is_f32 = true;
    TANDEM_ASSIGN_OR_RETURN(m.f32, checkpoint_.ReadFloat32(name, shape, Fp8Block()));
  }
  if (absl::EndsWith(name, ".weight")) {
    const std::string bias = name.substr(0, name.size() - 6) + "bias";
    if (checkpoint_.Has(bias)) {
      TANDEM_ASSIGN_OR_RETURN(m.bias, Vector(bias, rows));
    }
  }
  return m;
}

absl::StatusOr<WeightMatrix> WeightLoader::MatrixFrom3d(const std::string& name, int64_t index,
                                                        int64_t row_begin, int64_t rows,
                                                        int64_t cols) const {
  TANDEM_ASSIGN_OR_RETURN(const TensorView* view, checkpoint_.Get(name));
  if (view->shape.size() != 3 || index >= view->shape[0] || row_begin + rows > view->shape[1] ||
      view->shape[2] != cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        view->file, ": tensor ", name, " has an unexpected shape for expert ", index));
  }
  const int64_t per_matrix = view->shape[1] * cols;
  const int64_t offset = index * per_matrix + row_begin * cols;
  WeightMatrix m;
  m.rows = rows;
  m.cols = cols;
  if (checkpoint_.StoredAsBf16OrNarrower(name)) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<uint16_t> all, checkpoint_.ReadBf16(name));
    m.bf16.assign(all.begin() + offset, all.begin() + offset + rows * cols);
  } else {
    m.is_f32 = true;
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> all, checkpoint_.ReadFloat32(name));
    m.f32.assign(all.begin() + offset, all.begin() + offset + rows * cols);
  }
  return m;
}

namespace {

template <typename T>
std::vector<T> Slice(const T* data, int64_t cols, int64_t begin, int64_t end, int64_t col_begin,
                     int64_t col_end) {
  const int64_t width = col_end - col_begin;
  std::vector<T> out((end - begin) * width);
  for (int64_t r = begin; r < end; ++r)
    std::memcpy(out.data() + (r - begin) * width, data + r * cols + col_begin, width * sizeof(T));
  return out;
}

}  // namespace

WeightMatrix SliceMatrix(const WeightMatrix& m, int64_t row_begin, int64_t row_end,
                         int64_t col_begin, int64_t col_end) {
  WeightMatrix out;
  out.rows = row_end - row_begin;
  out.cols = col_end - col_begin;
  out.is_f32 = m.is_f32;
  if (m.is_f32) {
    out.f32 = Slice(m.f32.data(), m.cols, row_begin, row_end, col_begin, col_end);
  } else {
    out.bf16 = Slice(m.bf16.data(), m.cols, row_begin, row_end, col_begin, col_end);
  }
  if (!m.bias.empty()) out.bias.assign(m.bias.begin() + row_begin, m.bias.begin() + row_end);
  return out;
}

absl::StatusOr<WeightMatrix> WeightLoader::SliceOf(const std::string& name, int64_t rows,
                                                   int64_t cols, int64_t begin, int64_t end,
                                                   int64_t col_begin, int64_t col_end) const {
  if (begin < 0 || end > rows || begin > end || col_begin < 0 || col_end > cols ||
      col_begin > col_end)
    return absl::InvalidArgumentError(absl::StrCat("bad slice of ", name));
  WeightMatrix m;
  TANDEM_ASSIGN_OR_RETURN(const TensorView* view, checkpoint_.Get(name));
  if (view->dtype == DType::kBF16) {
    if (view->shape != std::vector<int64_t>{rows, cols}) {
      return absl::InvalidArgumentError(absl::StrCat(view->file, ": tensor ", name, " has shape ",
                                                     ShapeToString(view->shape), ", expected [",
                                                     rows, ", ", cols, "]"));
    }
    // Read in place from the mapping (memcpy: the data may be unaligned).
    m.bf16.resize((end - begin) * (col_end - col_begin));
    const int64_t width = col_end - col_begin;
    for (int64_t r = begin; r < end; ++r)
      std::memcpy(m.bf16.data() + (r - begin) * width, view->data + (r * cols + col_begin) * 2,
                  width * 2);
  } else {
    TANDEM_ASSIGN_OR_RETURN(WeightMatrix whole, Matrix(name, rows, cols));
    return SliceMatrix(whole, begin, end, col_begin, col_end);
  }
  m.rows = end - begin;
  m.cols = col_end - col_begin;
  return m;
}

absl::StatusOr<WeightMatrix> WeightLoader::MatrixRows(const std::string& name, int64_t rows,
                                                      int64_t cols, int64_t begin,
                                                      int64_t end) const {
  return SliceOf(name, rows, cols, begin, end, 0, cols);
}

absl::StatusOr<WeightMatrix> WeightLoader::MatrixColumns(const std::string& name, int64_t rows,
                                                         int64_t cols, int64_t begin,
                                                         int64_t end) const {
  return SliceOf(name, rows, cols, 0, rows, begin, end);
}

absl::StatusOr<std::vector<float>> WeightLoader::Vector(const std::string& name,
                                                        int64_t size) const {
  const int64_t shape[1] = {size};
  return checkpoint_.ReadFloat32(name, shape, Fp8Block());
}

}  // namespace tandem
