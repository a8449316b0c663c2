// A small routed MoE for the kernel tests: 5 experts, top-3, expert 4 never chosen, tokens that
// pick one expert two or three times (every weight must count), and the two ways to compute its
// output.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

namespace tandem::testing {

struct SmallMoe {
  static constexpr int64_t kExperts = 5, kTokens = 7, kTopK = 3;
  static constexpr int kIds[kTokens][kTopK] = {{0, 1, 2}, {2, 2, 1}, {1, 0, 3}, {3, 3, 3},
                                               {0, 2, 1}, {1, 1, 0}, {2, 0, 3}};
  std::vector<float> weights;  // [kTokens x kTopK], in [0.05, 1)

  explicit SmallMoe(std::mt19937& rng) : weights(kTokens * kTopK) {
    std::uniform_real_distribution<float> wd(0.05f, 1.0f);
    for (auto& w : weights) w = wd(rng);
  }

  // sum_j w[t, j] * expert(ids[t, j], token t), one token at a time: one_token(e, x_t, y_t).
  template <typename OneToken>
  std::vector<float> PerToken(const std::vector<float>& x, int64_t h, OneToken one_token) const {
    std::vector<float> out(kTokens * h, 0.0f), y(h);
    for (int64_t t = 0; t < kTokens; ++t)
      for (int64_t j = 0; j < kTopK; ++j) {
        one_token(kIds[t][j], x.data() + t * h, y.data());
        for (int64_t d = 0; d < h; ++d) out[t * h + d] += weights[t * kTopK + j] * y[d];
      }
    return out;
  }

  // The same, with each expert's tokens grouped as the scheduler does and run in one call:
  // group(e, x_rows, n, y_rows) with the n rows back to back (a token once per choice).
  template <typename Group>
  std::vector<float> Grouped(const std::vector<float>& x, int64_t h, Group group) const {
    std::vector<float> out(kTokens * h, 0.0f);
    for (int64_t ex = 0; ex < kExperts; ++ex) {
      std::vector<std::pair<int64_t, float>> rows;  // (token, weight)
      for (int64_t t = 0; t < kTokens; ++t)
        for (int64_t j = 0; j < kTopK; ++j)
          if (kIds[t][j] == ex) rows.push_back({t, weights[t * kTopK + j]});
      const int64_t n = static_cast<int64_t>(rows.size());
      std::vector<float> xe(n * h), ye(n * h, std::numeric_limits<float>::quiet_NaN());
      for (int64_t i = 0; i < n; ++i)
        std::copy(x.begin() + rows[i].first * h, x.begin() + (rows[i].first + 1) * h,
                  xe.begin() + i * h);
      group(ex, xe.data(), n, ye.data());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t d = 0; d < h; ++d)
          out[rows[i].first * h + d] += rows[i].second * ye[i * h + d];
    }
    return out;
  }
};

}  // namespace tandem::testing
