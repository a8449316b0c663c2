#include "coordinator/rope.h"

#include <algorithm>
#include <cmath>

namespace tandem {
namespace {

double YarnGetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double FindCorrectionDim(double num_rotations, int64_t dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2 * M_PI))) / (2 * std::log(base));
}

}  // namespace

Rope::Rope(const RopeConfig& config) : config_(config) {
  const int64_t dim = config.rotary_dim;
  const int64_t half = dim / 2;
  // base ** (2i / dim) in float32, as torch evaluates it.
  std::vector<float> pos_freqs(half);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    pos_freqs[i] = static_cast<float>(std::pow(config.theta, static_cast<double>(exponent)));
  }
  inv_freq_.resize(half);
  if (config.type == RopeConfig::Type::kDefault) {
    for (int64_t i = 0; i < half; ++i) inv_freq_[i] = 1.0f / pos_freqs[i];
    return;
  }
  // YaRN: blend interpolated and extrapolated frequencies with a linear ramp over the dims
  // whose wavelength falls between beta_fast and beta_slow rotations of the original context.
  const double factor = config.factor;
  const double max_pos = static_cast<double>(config.original_max_position_embeddings);
  double low = FindCorrectionDim(config.beta_fast, dim, config.theta, max_pos);
  double high = FindCorrectionDim(config.beta_slow, dim, config.theta, max_pos);
  if (config.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int64_t i = 0; i < half; ++i) {
    float ramp = static_cast<float>((static_cast<float>(i) - low) / (high - low));
    ramp = std::clamp(ramp, 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    const float inv_extra = 1.0f / pos_freqs[i];
    const float inv_inter = 1.0f / (static_cast<float>(factor) * pos_freqs[i]);
    inv_freq_[i] = inv_inter * (1.0f - extrapolation_factor) + inv_extra * extrapolation_factor;
  }
  if (config.attention_factor) {
    attention_factor_ = static_cast<float>(*config.attention_factor);
  } else if (config.mscale != 0.0 && config.mscale_all_dim != 0.0) {
    attention_factor_ = static_cast<float>(YarnGetMscale(factor, config.mscale) /
                                           YarnGetMscale(factor, config.mscale_all_dim));
  } else {
    attention_factor_ = static_cast<float>(YarnGetMscale(factor, 1.0));
  }
}

void Rope::CosSin(int64_t position, float* cos, float* sin) const {
  for (int64_t i = 0; i < config_.rotary_dim / 2; ++i) {
    const float angle = static_cast<float>(position) * inv_freq_[i];
    cos[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention_factor_;
    sin[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention_factor_;
  }
}

void Rope::Apply(float* heads, int64_t num_heads, int64_t head_stride, int64_t position) const {
  const int64_t half = config_.rotary_dim / 2;
  std::vector<float> cos_v(half), sin_v(half);
  CosSin(position, cos_v.data(), sin_v.data());
  for (int64_t h = 0; h < num_heads; ++h) {
    float* x = heads + h * head_stride;
    for (int64_t i = 0; i < half; ++i) {
      // Pair (a, b): adjacent values for DeepSeek's interleaved form, the two halves otherwise.
      float& a = config_.interleaved ? x[2 * i] : x[i];
      float& b = config_.interleaved ? x[2 * i + 1] : x[i + half];
      const float a0 = a, b0 = b;
      a = a0 * cos_v[i] - b0 * sin_v[i];
      b = b0 * cos_v[i] + a0 * sin_v[i];
    }
  }
}

}  // namespace tandem
