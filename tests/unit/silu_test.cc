// silu.h: the exp behind SiluTimes is accurate, and the scalar and AVX-512 forms give the same bits
// (the kernels rely on it: a row's result must not depend on which path computed it).
#include "kernels/cpu/silu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/isa.h"

namespace tandem {
namespace {

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Distance in units in the last place between two finite positive floats.
int64_t UlpDistance(float a, float b) {
  return std::abs(static_cast<int64_t>(Bits(a)) - static_cast<int64_t>(Bits(b)));
}

TEST(SiluTest, ExpIsWithinTwoUlpOnItsRange) {
  int64_t worst = 0;
  float worst_x = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
    const float exact = static_cast<float>(std::exp(static_cast<double>(x)));
    const int64_t d = UlpDistance(ExpForSilu(x), exact);
    if (d > worst) worst = d, worst_x = x;
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
  EXPECT_EQ(ExpForSilu(0.0f), 1.0f);
}

TEST(SiluTest, SiluMatchesTheFormulaInDoubleAndHandlesExtremes) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-30.0f, 30.0f);
  for (int i = 0; i < 100000; ++i) {
    const float g = d(rng), u = d(rng);
    const double ref = g / (1.0 + std::exp(-static_cast<double>(g))) * u;
    EXPECT_NEAR(SiluTimes(g, u), ref, 4e-7 * std::fabs(ref) + 1e-30) << g << " " << u;
  }
  EXPECT_EQ(SiluTimes(1000.0f, 2.0f), 2000.0f);         // exp(-g) -> 0
  EXPECT_NEAR(SiluTimes(-1000.0f, 2.0f), 0.0f, 1e-30);  // exp(-g) clamped: a vanishing value
  EXPECT_EQ(SiluTimes(0.0f, 5.0f), 0.0f);
  EXPECT_TRUE(std::isnan(SiluTimes(std::numeric_limits<float>::quiet_NaN(), 1.0f)));
  EXPECT_TRUE(std::isnan(SiluTimes(1.0f, std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(SiluTimes(std::numeric_limits<float>::infinity(), 1.0f)) ||
              std::isinf(SiluTimes(std::numeric_limits<float>::infinity(), 1.0f)));
}

// SiluMul takes the AVX-512 form where the CPU has it and the scalar one elsewhere: both must be
// SiluTimes bit for bit, on every length (masked tails) and on special values.
TEST(SiluTest, VectorFormEqualsScalarBitForBit) {
  const CpuFeatures& f = DetectCpuFeatures();
  if (!(f.avx512f && f.os_avx512_state))
    GTEST_SKIP() << "no AVX-512F here: only the scalar form runs";
  std::mt19937 rng(5);
  std::vector<float> g, u;
  for (float s : {1e-3f, 0.3f, 3.0f, 30.0f, 100.0f}) {
    std::normal_distribution<float> d(0, s);
    for (int i = 0; i < 200000; ++i) g.push_back(d(rng)), u.push_back(d(rng));
  }
  const float specials[] = {0.0f,
                            -0.0f,
                            87.0f,
                            -87.0f,
                            88.0f,
                            -88.0f,
                            88.5f,
                            -89.0f,
                            1e-40f,
                            -1e-40f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max()};
  for (float s : specials) g.push_back(s), u.push_back(1.5f);
  for (int64_t len : {int64_t{1}, int64_t{15}, int64_t{17}, static_cast<int64_t>(g.size())}) {
    std::vector<float> vec(g.begin(), g.begin() + len);
    SiluMul(vec.data(), u.data(), len);
    for (int64_t i = 0; i < len; ++i) {
      const float scalar = SiluTimes(g[i], u[i]);
      ASSERT_EQ(Bits(vec[i]), Bits(scalar)) << "g " << g[i] << " u " << u[i] << " len " << len;
    }
  }
}

// The expert combine (ExpertShard::Run): the weighted sum of a token's rows, skipping rows held
// elsewhere (null), gives the written-out definition's bits on every length, on AVX-512 too.
TEST(WeightedRowSumTest, IsTheDefinitionBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 2.0f);
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 100, 7168}) {
    const int64_t count = 8;
    std::vector<std::vector<float>> rows(count, std::vector<float>(n));
    for (auto& r : rows)
      for (float& v : r) v = d(rng);
    std::vector<const float*> ptrs(count);
    std::vector<float> weights(count);
    for (int64_t j = 0; j < count; ++j) {
      ptrs[j] = j % 3 == 1 ? nullptr : rows[j].data();
      weights[j] = d(rng);
    }
    std::vector<float> want(n, 0.0f), got(n + 1, -7.0f);
    for (int64_t j = 0; j < count; ++j)
      if (ptrs[j] != nullptr)
        for (int64_t i = 0; i < n; ++i) {
          const float product = weights[j] * rows[j][i];
          want[i] = want[i] + product;
        }
    WeightedRowSum(ptrs.data(), weights.data(), count, n, got.data());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(Bits(got[i]), Bits(want[i])) << "n " << n << " i " << i;
    EXPECT_EQ(got[n], -7.0f) << "wrote past n = " << n;
  }
  float out = -1.0f;
  WeightedRowSum(nullptr, nullptr, 0, 1, &out);
  EXPECT_EQ(Bits(out), Bits(0.0f)) << "no rows: zero";
}

}  // namespace
}  // namespace tandem
