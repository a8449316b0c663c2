#include "kernels/cpu/moe_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/convert_avx512.h"
#include "kernels/cpu/isa.h"

namespace tandem {

absl::StatusOr<ExpertFormat> ParseExpertFormat(std::string_view dtype, int64_t int4_group_size) {
  if (dtype == "bf16") return ExpertFormat{ExpertDtype::kBf16, 0};
  if (dtype == "int8") return ExpertFormat{ExpertDtype::kInt8, 0};
  if (dtype == "int4") {
    if (int4_group_size != 32 && int4_group_size != 128) {
      return absl::InvalidArgumentError(
          absl::StrCat("int4 group size must be 32 or 128, got ", int4_group_size));
    }
    return ExpertFormat{ExpertDtype::kInt4, int4_group_size};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown expert dtype '", std::string(dtype), "': expected bf16, int8 or int4"));
}

std::string ExpertFormatName(const ExpertFormat& format) {
  switch (format.dtype) {
    case ExpertDtype::kBf16:
      return "bf16";
    case ExpertDtype::kInt8:
      return "int8";
    case ExpertDtype::kInt4:
      return absl::StrCat("int4-g", format.group_size);
  }
  return "?";
}

void QuantizeActivations(const float* x, int64_t n, int64_t k, int8_t* q, float* scale,
                         int32_t* sums32) {
  const int64_t stride = Int8ActivationStride(k), blocks = stride / 32;
#if defined(__x86_64__)
  if (HasAvx512FBw()) {  // the same bits, 16 values at a time
    for (int64_t t = 0; t < n; ++t)
      convert_internal::QuantizeRow(x + t * k, k, q + t * stride, scale + t, sums32 + t * blocks);
    return;
  }
#endif
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * k;
    int8_t* qt = q + t * stride;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < k; ++i) {
      amax = std::max(amax, std::fabs(xt[i]));
      finite &= std::isfinite(xt[i]);
    }
    // A NaN or infinite activation makes the token's outputs NaN, as the float kernels would.
    const float s = finite ? amax / 127.0f : std::nanf("");
    scale[t] = s;
    const float inv = finite && s > 0.0f ? 1.0f / s : 0.0f;
    for (int64_t i = 0; i < k; ++i) {
      // |x * inv| <= 127 up to rounding of inv; the clamp keeps a 127.00001 from wrapping.
      const float v = std::nearbyint(xt[i] * inv);
      qt[i] = finite ? static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f)) : 0;
    }
    std::memset(qt + k, 0, stride - k);
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t sum = 0;
      for (int64_t i = 0; i < 32; ++i) sum += qt[b * 32 + i];
      sums32[t * blocks + b] = sum;
    }
  }
}

}  // namespace tandem
