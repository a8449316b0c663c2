#include "kernels/cpu/moe_pack.h"


#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "common/bf16.h"
#include "common/status.h"

namespace tandem {
namespace {

constexpr int64_t kB = PackedMatrix::kBlockRows;

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Row r of w as f32.
void RowValues(const WeightMatrix& w, int64_t r, std::vector<float>* out) {
  out->resize(w.cols);
  w.RowToFloat(r, out->data());
}

// round(v / s) clamped to [-limit, limit] (0 where s == 0).
int Quantize(float v, float inv, int limit) {
  const float q = std::nearbyint(v * inv);
  return static_cast<int>(std::clamp(q, static_cast<float>(-limit), static_cast<float>(limit)));
}

}  // namespace

int64_t PackedMatrix::padded_cols() const {
  switch (format_.dtype) {
    case ExpertDtype::kBf16:
      return RoundUp(cols_, 2);
    case ExpertDtype::kInt8:
      return RoundUp(cols_, kInt8KAlign);
    case ExpertDtype::kInt4:
      return RoundUp(cols_, format_.group_size);
  }
  return cols_;
}

int64_t PackedMatrix::vectors_per_block() const {
  switch (format_.dtype) {
    case ExpertDtype::kBf16:
      return padded_cols() / 2;
    case ExpertDtype::kInt8:
      return padded_cols() / 4;
    case ExpertDtype::kInt4:
      return padded_cols() / 8;
  }
  return 0;
}

int64_t PackedMatrix::groups() const {
  if (format_.dtype == ExpertDtype::kInt4) return padded_cols() / format_.group_size;
  return 1;
}

size_t PackedMatrix::bytes() const {
  return static_cast<size_t>(row_blocks() * block_bytes()) + scales_.size() * sizeof(float) +
         row_sums_.size() * sizeof(int32_t);
}

void PackedMatrix::Allocate() {
  const size_t n = static_cast<size_t>(row_blocks() * block_bytes());
  data_ = AllocateAlignedBytes(n);  // n == 0 (no rows or no columns): nothing is ever read
  if (n > 0) std::memset(data_.get(), 0, n);
}

uint16_t PackedMatrix::At(int64_t r, int64_t k) const {
  return block(r / kB)[(k / 2) * 2 * kB + 2 * (r % kB) + (k % 2)];
}

int PackedMatrix::QuantAt(int64_t r, int64_t k) const {
  const uint8_t* b = block_data(r / kB);
  const int64_t lane = r % kB;
  if (format_.dtype == ExpertDtype::kInt8)
    return static_cast<int8_t>(b[(k / 4) * kVectorBytes + 4 * lane + k % 4]);
  const uint8_t byte = b[(k / 8) * kVectorBytes + 4 * lane + k % 4];
  return ((k % 8) < 4 ? (byte & 0x0f) : (byte >> 4)) - 8;
}

float PackedMatrix::Scale(int64_t r, int64_t group) const {
  if (format_.dtype == ExpertDtype::kInt8) return scales_[r];
  return scales_[((r / kB) * groups() + group) * kB + r % kB];
}

float PackedMatrix::Dequantized(int64_t r, int64_t k) const {
  if (format_.dtype == ExpertDtype::kBf16) return Bf16ToFloat(At(r, k));
  const int64_t g = format_.dtype == ExpertDtype::kInt4 ? k / format_.group_size : 0;
  return Scale(r, g) * static_cast<float>(QuantAt(r, k));
}

PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols) {
  PackedMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.Allocate();
  if (m.data_ == nullptr) return m;
  uint16_t* out = reinterpret_cast<uint16_t*>(m.data_.get());
  const int64_t k_pairs = m.k_pairs();
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* row = w + r * cols;
    uint16_t* dst = out + (r / kB) * k_pairs * 2 * kB + 2 * (r % kB);
    for (int64_t k = 0; k < cols; ++k) dst[(k / 2) * 2 * kB + (k % 2)] = row[k];
  }
  return m;
}

absl::StatusOr<PackedMatrix> QuantizeMatrix(const WeightMatrix& w, const ExpertFormat& format,
                                            std::string_view name) {
  PackedMatrix m;
  m.format_ = format;
  m.rows_ = w.rows;
  m.cols_ = w.cols;
  const int64_t padded_rows = m.row_blocks() * kB;
  const int64_t groups = m.groups(), group_cols = m.group_cols();
  m.scales_.assign(padded_rows * groups, 0.0f);
  if (format.dtype == ExpertDtype::kInt8) m.row_sums_.assign(padded_rows, 0);
  m.Allocate();
  if (m.data_ == nullptr) return m;
  const int limit = format.dtype == ExpertDtype::kInt8 ? 127 : 7;
  std::vector<float> row;
  for (int64_t r = 0; r < w.rows; ++r) {
    RowValues(w, r, &row);
    // A scale computed over a NaN or an infinity would turn its whole row or group into garbage.
    for (int64_t k = 0; k < w.cols; ++k) {
      if (!std::isfinite(row[k])) {
        return absl::InvalidArgumentError(absl::StrCat("PackExpert: ", std::string(name),
                                                       " weight [", r, ", ", k, "] is ", row[k],
                                                       ": cannot quantize"));
      }
    }
    uint8_t* block = m.data_.get() + (r / kB) * m.block_bytes();
    const int64_t lane = r % kB;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t k0 = g * group_cols, k1 = std::min(w.cols, k0 + group_cols);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(row[k]));
      const float s = amax / static_cast<float>(limit);
      const float inv = s > 0.0f ? 1.0f / s : 0.0f;
      if (format.dtype == ExpertDtype::kInt8) {
        m.scales_[r] = s;
        int32_t sum = 0;
        for (int64_t k = k0; k < k1; ++k) {
          const int q = Quantize(row[k], inv, limit);
          block[(k / 4) * PackedMatrix::kVectorBytes + 4 * lane + k % 4] =
              static_cast<uint8_t>(static_cast<int8_t>(q));
          sum += q;
        }
        m.row_sums_[r] = sum;
      } else {
        m.scales_[((r / kB) * groups + g) * kB + lane] = s;
        // Padding columns (k >= cols) stay q = 0, stored as the nibble 8.
        for (int64_t k = k0; k < k0 + group_cols; ++k) {
          const int q = k < k1 ? Quantize(row[k], inv, limit) : 0;
          uint8_t& byte = block[(k / 8) * PackedMatrix::kVectorBytes + 4 * lane + k % 4];
          const uint8_t nibble = static_cast<uint8_t>(q + 8);
          byte = (k % 8) < 4 ? static_cast<uint8_t>((byte & 0xf0) | nibble)
                             : static_cast<uint8_t>((byte & 0x0f) | (nibble << 4));
        }
      }
    }
  }
  if (format.dtype == ExpertDtype::kInt4) {
    // Zero padding rows of the last block: nibble 8 (q = 0) too, so that no lane holds garbage.
    for (int64_t r = w.rows; r < padded_rows; ++r) {
      uint8_t* block = m.data_.get() + (r / kB) * m.block_bytes();
      for (int64_t v = 0; v < m.vectors_per_block(); ++v)
        std::memset(block + v * PackedMatrix::kVectorBytes + 4 * (r % kB), 0x88, 4);
    }
  }
  return m;
}

absl::StatusOr<PackedExpert> PackExpert(const WeightMatrix& gate, const WeightMatrix& up,
                                        const WeightMatrix& down, const ExpertFormat& format) {
  for (const WeightMatrix* m : {&gate, &up, &down}) {
    if (m->is_f32 && !format.quantized())
      return absl::InvalidArgumentError("PackExpert: bf16 packing needs bf16 expert weights");
    if (!m->bias.empty()) return absl::InvalidArgumentError("PackExpert: experts have no bias");
    const size_t size = m->is_f32 ? m->f32.size() : m->bf16.size();
    if (static_cast<int64_t>(size) != m->rows * m->cols)
      return absl::InvalidArgumentError("PackExpert: matrix size does not match its shape");
  }
  if (format.dtype == ExpertDtype::kInt4 && format.group_size != 32 && format.group_size != 128)
    return absl::InvalidArgumentError("PackExpert: int4 group size must be 32 or 128");
  const int64_t inter = gate.rows, hidden = gate.cols;
  if (up.rows != inter || up.cols != hidden || down.rows != hidden || down.cols != inter) {
    return absl::InvalidArgumentError(absl::StrCat("PackExpert: shapes disagree: gate ", gate.rows,
                                                   "x", gate.cols, ", up ", up.rows, "x", up.cols,
                                                   ", down ", down.rows, "x", down.cols));
  }
  PackedExpert e;
  if (!format.quantized()) {
    e.gate = PackBf16Matrix(gate.bf16.data(), inter, hidden);
    e.up = PackBf16Matrix(up.bf16.data(), inter, hidden);
    e.down = PackBf16Matrix(down.bf16.data(), hidden, inter);
    return e;
  }
  TANDEM_ASSIGN_OR_RETURN(e.gate, QuantizeMatrix(gate, format, "gate"));
  TANDEM_ASSIGN_OR_RETURN(e.up, QuantizeMatrix(up, format, "up"));
  TANDEM_ASSIGN_OR_RETURN(e.down, QuantizeMatrix(down, format, "down"));
  return e;
}

}  // namespace tandem
