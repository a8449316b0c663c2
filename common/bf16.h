// Scalar conversions between the floating-point storage types of checkpoints and float32.
// Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <cstring>

namespace tandem {

inline float Bf16ToFloat(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round-to-nearest-even, as torch's float -> bfloat16 cast does; NaN stays NaN.
inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

// IEEE binary16 -> float32, exact (inline bit manipulation: no call or ldexp per element).
inline float F16ToFloat(uint16_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x8000u) << 16;
  const uint32_t em = v & 0x7fffu;  // exponent and mantissa
  uint32_t bits;
  if (em >= 0x7c00u) {
    bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13);  // Inf / NaN (payload kept)
  } else if (em >= 0x0400u) {
    bits = sign | ((em << 13) + ((127u - 15u) << 23));  // normal: rebias the exponent
  } else {
    const float magnitude = static_cast<float>(em) * 5.9604644775390625e-08f;  // m * 2^-24
    std::memcpy(&bits, &magnitude, sizeof bits);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// FP8 E4M3 "fn" variant (no infinities, 0x7f/0xff are NaN), as torch.float8_e4m3fn.
float F8E4M3ToFloat(uint8_t v);
// FP8 E5M2 (IEEE-like: infinities and NaNs), as torch.float8_e5m2: the top byte of a binary16.
inline float F8E5M2ToFloat(uint8_t v) { return F16ToFloat(static_cast<uint16_t>(v << 8)); }

}  // namespace tandem
