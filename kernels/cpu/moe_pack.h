// Routed-expert weights packed once at load into the layout the CPU MoE kernels read, in one of
// the formats of moe_format.h.
//
// Every format cuts the rows of W [rows x cols] (y = W x, K = cols) into blocks of 16
// (kBlockRows; the last block is padded with zero rows) and stores block b as one contiguous run
// of vectors_per_block() vectors of 64 bytes, each holding a few consecutive K values of all 16
// rows, interleaved so that lane r (4 bytes) of a vector belongs to row 16 b + r:
//   * bf16: vector p holds K pair (2p, 2p + 1); an odd K gets one zero column:
//       u16[(b * k_pairs + p) * 32 + 2 r + j] = W[16 b + r][2 p + j]
//     -- the operand of one vdpbf16ps, and 16 of them are one AMX bf16 B tile.
//   * int8: vector q holds K quad (4q .. 4q + 3); K is padded with zeros to a multiple of 64:
//       i8[(b * k_quads + q) * 64 + 4 r + j] = q8(W[16 b + r][4 q + j])
//     -- the operand of one vpdpbusd, and 16 of them are one AMX int8 B tile.
//     scale(r) per row; row_sum(r) = sum_k q8(W[r][k]) (for vpdpbusd's unsigned activations).
//   * int4: vector o holds K octet (8o .. 8o + 7); K is padded with zeros to a multiple of the
//     group size; byte 4 r + j holds W[16 b + r][8 o + j] + 8 in its low nibble and
//     W[16 b + r][8 o + 4 + j] + 8 in its high nibble (unsigned, 0..15). scale(r, g) per row and
//     group, stored as [block][group][16 rows].
// Buffers are 64-byte aligned.
//
// Thread safety: packing is a pure function; a PackedMatrix is immutable after packing and may be
// read from any number of threads.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/aligned_bytes.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe_format.h"

namespace tandem {

class PackedMatrix {
 public:
  static constexpr int64_t kBlockRows = 16;
  static constexpr int64_t kVectorBytes = 64;
  static constexpr int64_t kInt8KAlign = 64;  // int8 K padding: one AMX tile row of bytes

  PackedMatrix() = default;

  const ExpertFormat& format() const { return format_; }
  ExpertDtype dtype() const { return format_.dtype; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_blocks() const { return (rows_ + kBlockRows - 1) / kBlockRows; }
  // K as stored: cols rounded up to the format's padding (2, 64 or the int4 group size).
  int64_t padded_cols() const;
  // 64-byte vectors per block: K pairs (bf16), quads (int8) or octets (int4).
  int64_t vectors_per_block() const;
  int64_t block_bytes() const { return vectors_per_block() * kVectorBytes; }
  bool empty() const { return rows_ == 0; }
  // Bytes the kernels read: packed values plus scales and row sums.
  size_t bytes() const;

  // The first vector of row block b.
  const uint8_t* block_data(int64_t b) const { return data_.get() + b * block_bytes(); }

  // bf16 only (the original accessors of the bf16 kernels).
  int64_t k_pairs() const { return (cols_ + 1) / 2; }
  int64_t block_stride() const { return k_pairs() * 2 * kBlockRows; }  // uint16 per block
  const uint16_t* block(int64_t b) const {
    return reinterpret_cast<const uint16_t*>(block_data(b));
  }
  uint16_t At(int64_t r, int64_t k) const;  // W[r][k] as stored (bf16 bits)

  // int8 / int4. groups(): K groups of a scale (1 for int8); group_cols(): their width.
  int64_t groups() const;
  int64_t group_cols() const {
    return format_.dtype == ExpertDtype::kInt4 ? format_.group_size : padded_cols();
  }
  int QuantAt(int64_t r, int64_t k) const;      // q, in [-127, 127] (int8) or [-8, 7] (int4)
  float Scale(int64_t r, int64_t group) const;  // s of row r (int8: group 0)
  const float* scales() const {
    return scales_.data();
  }                                                             // int8: [row_blocks * 16];
                                                                // int4: [(b * groups + g) * 16 + r]
  const int32_t* row_sums() const { return row_sums_.data(); }  // int8: [row_blocks * 16]

  // W[r][k] as the kernels see it: the bf16 value, or scale * q.
  float Dequantized(int64_t r, int64_t k) const;

 private:
  friend PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols);
  friend absl::StatusOr<PackedMatrix> QuantizeMatrix(const WeightMatrix& w,
                                                     const ExpertFormat& format,
                                                     std::string_view name);
  void Allocate();
  ExpertFormat format_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  AlignedBytes data_;  // aligned_bytes.h: 2 MB-aligned huge pages when large
  std::vector<float> scales_;
  std::vector<int32_t> row_sums_;
};

// Packs W [rows x cols] (row-major bf16 bits) as bf16.
PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols);

// Quantizes W (bf16 or f32, no bias) to an int8 or int4 format (moe_format.h) and packs it.
// InvalidArgument naming the first NaN or infinite value (as "<name> weight [r, k]").
absl::StatusOr<PackedMatrix> QuantizeMatrix(const WeightMatrix& w, const ExpertFormat& format,
                                            std::string_view name = "matrix");

// One routed expert: y = down(silu(gate x) * up x), x and y of `hidden` values.
struct PackedExpert {
  PackedMatrix gate;  // [intermediate x hidden]
  PackedMatrix up;    // [intermediate x hidden]
  PackedMatrix down;  // [hidden x intermediate]

  int64_t hidden() const { return gate.cols(); }
  int64_t intermediate() const { return gate.rows(); }
  bool empty() const { return gate.empty(); }
  ExpertDtype dtype() const { return gate.dtype(); }
  size_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
};

// Packs one expert (gate/up [I x H], down [H x I], no bias) in `format`. bf16 needs bf16
// matrices; int8 and int4 quantize bf16 or f32 ones. InvalidArgument when the matrices do not fit
// the format, carry a bias, their shapes disagree, or (int8 / int4) hold a NaN or an infinity.
absl::StatusOr<PackedExpert> PackExpert(const WeightMatrix& gate, const WeightMatrix& up,
                                        const WeightMatrix& down,
                                        const ExpertFormat& format = ExpertFormat{});

}  // namespace tandem
