#include "kernels/cpu/moe_pack.h"

#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"

namespace tandem {

PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols) {
  PackedMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  const size_t bytes = m.bytes();
  if (bytes == 0) return m;  // no rows or no columns: nothing is ever read
  // aligned_alloc wants a size that is a multiple of the alignment: 64 bytes per vector, always.
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  m.data_.reset(static_cast<uint16_t*>(p));
  uint16_t* out = m.data_.get();
  const int64_t k_pairs = m.k_pairs();
  constexpr int64_t kB = PackedMatrix::kBlockRows;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* row = w + r * cols;
    uint16_t* dst = out + (r / kB) * k_pairs * 2 * kB + 2 * (r % kB);
    for (int64_t k = 0; k < cols; ++k) dst[(k / 2) * 2 * kB + (k % 2)] = row[k];
  }
  return m;
}

absl::StatusOr<PackedExpert> PackExpert(const WeightMatrix& gate, const WeightMatrix& up,
                                        const WeightMatrix& down) {
  for (const WeightMatrix* m : {&gate, &up, &down}) {
    if (m->is_f32) return absl::InvalidArgumentError("PackExpert: expert weights must be bf16");
    if (!m->bias.empty()) return absl::InvalidArgumentError("PackExpert: experts have no bias");
    if (static_cast<int64_t>(m->bf16.size()) != m->rows * m->cols)
      return absl::InvalidArgumentError("PackExpert: matrix size does not match its shape");
  }
  const int64_t inter = gate.rows, hidden = gate.cols;
  if (up.rows != inter || up.cols != hidden || down.rows != hidden || down.cols != inter) {
    return absl::InvalidArgumentError(absl::StrCat("PackExpert: shapes disagree: gate ", gate.rows,
                                                   "x", gate.cols, ", up ", up.rows, "x", up.cols,
                                                   ", down ", down.rows, "x", down.cols));
  }
  PackedExpert e;
  e.gate = PackBf16Matrix(gate.bf16.data(), inter, hidden);
  e.up = PackBf16Matrix(up.bf16.data(), inter, hidden);
  e.down = PackBf16Matrix(down.bf16.data(), hidden, inter);
  return e;
}

}  // namespace tandem
