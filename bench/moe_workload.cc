#include "bench/moe_workload.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/bf16.h"

namespace tandem::bench {
namespace {

const std::vector<MoeShape>& Shapes() {
  static const std::vector<MoeShape> shapes = {
      {"qwen2-57b-a14b", 3584, 2560, 64, 8},
      {"deepseek-v3", 7168, 2048, 256, 8},
      {"deepseek-v2.5", 5120, 1536, 160, 6},
  };
  return shapes;
}

// A matrix of random bf16 values in [-scale, scale), rows generated in parallel.
WeightMatrix RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  WeightMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bf16.resize(rows * cols);
  const float scale = 1.0f / std::sqrt(static_cast<float>(cols));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t x =
        seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(r) * 0xBF58476D1CE4E5B9ull + 1;
    uint16_t* row = m.bf16.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      x ^= x << 13;  // xorshift64
      x ^= x >> 7;
      x ^= x << 17;
      const float u = static_cast<float>(x >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      row[c] = FloatToBf16((2.0f * u - 1.0f) * scale);
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<MoeShape> FindMoeShape(std::string_view name) {
  for (const MoeShape& s : Shapes())
    if (s.name == name) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --shape '", std::string(name), "'; one of: ", MoeShapeNames()));
}

std::string MoeShapeNames() {
  std::string out;
  for (const MoeShape& s : Shapes()) absl::StrAppend(&out, out.empty() ? "" : ", ", s.name);
  return out;
}

int64_t ExpertBytes(const MoeShape& s) { return 3 * s.hidden * s.intermediate * 2; }

int64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

int64_t HeldExpertBytes(const MoeShape& s, double packed_bytes_per_weight,
                        double onednn_bytes_per_weight) {
  const double weights = 3.0 * s.hidden * s.intermediate;
  return std::max(ExpertBytes(s), static_cast<int64_t>(weights * (packed_bytes_per_weight +
                                                                  onednn_bytes_per_weight)));
}

absl::StatusOr<int64_t> ChooseExpertCount(const MoeShape& s, int64_t held_expert_bytes,
                                          std::optional<int64_t> requested) {
  if (requested) {
    if (*requested < s.top_k || *requested > s.experts) {
      return absl::InvalidArgumentError(absl::StrCat("--experts ", *requested, " must be in [",
                                                     s.top_k, ", ", s.experts, "] for ", s.name));
    }
    return *requested;
  }
  const int64_t fit =
      static_cast<int64_t>(0.6 * MemAvailableBytes()) / std::max<int64_t>(1, held_expert_bytes);
  return std::max(s.top_k, std::min(s.experts, fit));
}

double PackedBytesPerWeight(const ExpertFormat& format) {
  switch (format.dtype) {
    case ExpertDtype::kBf16: return 2.0;
    case ExpertDtype::kInt8: return 1.0;
    default: return 0.5;
  }
}

MlpWeights RandomExpert(const MoeShape& s, int64_t e, uint64_t seed) {
  MlpWeights w;
  w.gate = RandomMatrix(s.intermediate, s.hidden, seed + 3 * e);
  w.up = RandomMatrix(s.intermediate, s.hidden, seed + 3 * e + 1);
  w.down = RandomMatrix(s.hidden, s.intermediate, seed + 3 * e + 2);
  return w;
}

std::vector<MlpWeights> RandomExperts(const MoeShape& s, int64_t count, uint64_t seed) {
  std::vector<MlpWeights> experts(count);
  for (int64_t e = 0; e < count; ++e) experts[e] = RandomExpert(s, e, seed);
  return experts;
}

RoutingGenerator::RoutingGenerator(int64_t experts, int64_t top_k, int64_t hidden, uint64_t seed)
    : experts_(experts), top_k_(top_k), hidden_(hidden), rng_(seed), cycle_(experts) {
  std::iota(cycle_.begin(), cycle_.end(), 0);
  std::shuffle(cycle_.begin(), cycle_.end(), rng_);
}

int32_t RoutingGenerator::NextInCycle() {
  if (cycle_pos_ == cycle_.size()) {
    std::shuffle(cycle_.begin(), cycle_.end(), rng_);
    cycle_pos_ = 0;
  }
  return cycle_[cycle_pos_++];
}

MoeInputs RoutingGenerator::Next(int64_t tokens) {
  MoeInputs in;
  in.tokens = tokens;
  in.hidden.resize(tokens * hidden_);
  in.ids.resize(tokens * top_k_);
  in.weights.resize(tokens * top_k_);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : in.hidden) v = normal(rng_);
  const bool cycle = tokens * top_k_ <= experts_;
  std::vector<int32_t> all(experts_);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t* ids = in.ids.data() + t * top_k_;
    if (cycle) {
      // A window of top_k consecutive cycle entries; distinct unless it wraps into a reshuffle.
      for (int64_t j = 0; j < top_k_; ++j) {
        int32_t e = NextInCycle();
        while (std::find(ids, ids + j, e) != ids + j) e = NextInCycle();
        ids[j] = e;
      }
    } else {
      for (int64_t j = 0; j < top_k_; ++j) {  // partial Fisher-Yates
        std::uniform_int_distribution<int64_t> pick(j, experts_ - 1);
        std::swap(all[j], all[pick(rng_)]);
        ids[j] = all[j];
      }
    }
    // Softmax over random logits of the chosen experts.
    float* w = in.weights.data() + t * top_k_;
    float sum = 0;
    for (int64_t j = 0; j < top_k_; ++j) sum += (w[j] = std::exp(normal(rng_)));
    for (int64_t j = 0; j < top_k_; ++j) w[j] /= sum;
  }
  std::vector<bool> seen(experts_, false);
  for (int32_t e : in.ids) seen[e] = true;
  for (int32_t e = 0; e < experts_; ++e)
    if (seen[e]) in.distinct_ids.push_back(e);
  in.distinct_experts = static_cast<int64_t>(in.distinct_ids.size());
  return in;
}

}  // namespace tandem::bench
