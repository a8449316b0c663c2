#include "common/bf16.h"

#include <cmath>

namespace tandem {

float F8E4M3ToFloat(uint8_t v) {
  const uint32_t sign = (v >> 7) & 1u;
  const uint32_t exponent = (v >> 3) & 0xfu;
  const uint32_t mantissa = v & 0x7u;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) {
    magnitude = NAN;
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m * 2^-3 * 2^-6
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x8u), static_cast<int>(exponent) - 10);
  }
  return sign ? -magnitude : magnitude;
}

}  // namespace tandem
