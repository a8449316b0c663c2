// The storage formats of packed routed-expert weights (`--expert-dtype`), and the int8 form of the
// activations that the quantized formats multiply with.
//
//   bf16: the checkpoint's bf16 values, unchanged.
//   int8: symmetric per output channel: q = round(w / s), s = max|w[row]| / 127, q in [-127, 127].
//   int4: symmetric per group of `group_size` (32 or 128) consecutive input columns of one row:
//         q = round(w / s), s = max|w[row, group]| / 7, q in [-7, 7] (stored as q + 8, a nibble).
// Quantized formats take int8 activations, quantized per token (QuantizeActivations): the kernels
// then compute y[t][r] = sx[t] * sum_groups sw[r][g] * (integer dot of the group), exactly (the
// integer sums cannot overflow for K < 2^17), in the same way on every ISA.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem {

enum class ExpertDtype { kBf16, kInt8, kInt4 };

struct ExpertFormat {
  ExpertDtype dtype = ExpertDtype::kBf16;
  int64_t group_size = 0;  // int4: 32 or 128; 0 otherwise

  bool quantized() const { return dtype != ExpertDtype::kBf16; }
  bool operator==(const ExpertFormat&) const = default;
};

// dtype "bf16" | "int8" | "int4"; int4_group_size (32 or 128) is used only for int4.
// InvalidArgument naming the accepted values otherwise.
absl::StatusOr<ExpertFormat> ParseExpertFormat(std::string_view dtype, int64_t int4_group_size);
// "bf16", "int8", "int4-g32", "int4-g128".
std::string ExpertFormatName(const ExpertFormat& format);

// Per-token int8 activations: x[t][k] ~= scale[t] * q[t][k].
//   q:      [n x Int8ActivationStride(k)], zero beyond k (so whole 64-byte tiles and int4 groups
//           of up to 128 can be read in place);
//   scale:  [n], max|x[t]| / 127 (0 for an all-zero token, whose q is all zero);
//   sums32: [n x Int8ActivationStride(k) / 32], sums of q over each 32-column block (the int4
//           kernels subtract 8 * sum for the nibbles' +8 offset).
inline int64_t Int8ActivationStride(int64_t k) { return (k + 127) / 128 * 128; }
void QuantizeActivations(const float* x, int64_t n, int64_t k, int8_t* q, float* scale,
                         int32_t* sums32);

}  // namespace tandem
