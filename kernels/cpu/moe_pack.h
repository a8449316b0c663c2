// Routed-expert weights packed once at load into the layout the CPU MoE kernels read.
//
// Layout of a PackedMatrix holding a bf16 matrix W [rows x cols] (y = W x, K = cols):
//   * rows are cut into blocks of 16 (kBlockRows); the last block is padded with zero rows;
//   * K is cut into pairs (k = 2p, 2p + 1); an odd K gets one zero column;
//   * block b is one contiguous run of k_pairs() vectors of 64 bytes; vector p of block b holds,
//     for its 16 rows r = 0..15, the two bf16 values W[16b + r][2p] (low half of 32-bit lane r)
//     and W[16b + r][2p + 1] (high half):
//       data[(b * k_pairs + p) * 32 + 2 * r + j] = W[16 b + r][2 p + j]
//   * the buffer is 64-byte aligned.
// One 64-byte load is thus the operand of one vdpbf16ps (16 rows x one K pair against a broadcast
// activation pair), and the f32 path splits it with a shift (even k) and a mask (odd k).
//
// Thread safety: packing is a pure function; a PackedMatrix is immutable after packing and may be
// read from any number of threads.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cpu/linear.h"

namespace tandem {

class PackedMatrix {
 public:
  static constexpr int64_t kBlockRows = 16;

  PackedMatrix() = default;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_blocks() const { return (rows_ + kBlockRows - 1) / kBlockRows; }
  int64_t k_pairs() const { return (cols_ + 1) / 2; }
  // uint16 elements from one block to the next.
  int64_t block_stride() const { return k_pairs() * 2 * kBlockRows; }
  bool empty() const { return rows_ == 0; }
  size_t bytes() const { return static_cast<size_t>(row_blocks() * block_stride()) * 2; }

  const uint16_t* data() const { return data_.get(); }
  // The first vector of row block b.
  const uint16_t* block(int64_t b) const { return data_.get() + b * block_stride(); }
  // W[r][k] as stored (bf16 bits); r < rows, k < cols.
  uint16_t At(int64_t r, int64_t k) const {
    return data_[((r / kBlockRows) * k_pairs() + k / 2) * 2 * kBlockRows + 2 * (r % kBlockRows) +
                 (k % 2)];
  }

 private:
  friend PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols);
  struct Free {
    void operator()(uint16_t* p) const { std::free(p); }
  };
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  std::unique_ptr<uint16_t[], Free> data_;
};

// Packs W [rows x cols] (row-major bf16 bits).
PackedMatrix PackBf16Matrix(const uint16_t* w, int64_t rows, int64_t cols);

// One routed expert: y = down(silu(gate x) * up x), x and y of `hidden` values.
struct PackedExpert {
  PackedMatrix gate;  // [intermediate x hidden]
  PackedMatrix up;    // [intermediate x hidden]
  PackedMatrix down;  // [hidden x intermediate]

  int64_t hidden() const { return gate.cols(); }
  int64_t intermediate() const { return gate.rows(); }
  bool empty() const { return gate.empty(); }
  size_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
};

// Packs one expert from its bf16 matrices (gate/up [I x H], down [H x I]). InvalidArgument when a
// matrix is f32, carries a bias, or the shapes disagree.
absl::StatusOr<PackedExpert> PackExpert(const WeightMatrix& gate, const WeightMatrix& up,
                                        const WeightMatrix& down);

}  // namespace tandem
