// The activation forms the expert kernels read (moe_kernel.h, moe_format.h): bf16 pairs, per-token
// int8 and the AMX tile order. On AVX-512 machines (CI included) the vectorized conversions run,
// and must give the scalar definitions' bits: checked here against those definitions written out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/bf16.h"
#include "kernels/cpu/moe_format.h"
#include "kernels/cpu/moe_kernel.h"

namespace tandem {
namespace {

std::vector<float> Values(int64_t count, std::mt19937& rng) {
  std::normal_distribution<float> d(0, 3.0f);
  std::vector<float> v(count);
  for (float& x : v) x = d(rng);
  return v;
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(ActivationFormsTest, Bf16PairsAreFloatToBf16OfEveryValue) {
  std::mt19937 rng(1);
  const float specials[] = {0.0f,
                            -0.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            1.00390625f /* a tie */,
                            1.01171875f,
                            3.4e38f,
                            1e-40f};
  for (int64_t k : {1, 2, 15, 31, 32, 33, 63, 64, 65, 200}) {
    const int64_t n = 3;
    std::vector<float> x = Values(n * k, rng);
    for (size_t i = 0; i < x.size() && i < std::size(specials); ++i)
      x[i * 7 % x.size()] = specials[i];
    std::vector<uint32_t> pairs(n * Bf16PairCount(k), 0xdeadbeef);
    ConvertToBf16Pairs(x.data(), n, k, pairs.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t p = 0; p < Bf16PairCount(k); ++p) {
        const uint32_t lo = FloatToBf16(x[t * k + 2 * p]);
        const uint32_t hi = 2 * p + 1 < k ? FloatToBf16(x[t * k + 2 * p + 1]) : 0u;
        ASSERT_EQ(pairs[t * Bf16PairCount(k) + p], lo | hi << 16) << "k " << k << " t " << t;
      }
  }
}

// QuantizeActivations's definition (moe_format.h), scalar.
void QuantizeByDefinition(const float* x, int64_t k, int8_t* q, float* scale, int32_t* sums) {
  const int64_t stride = Int8ActivationStride(k);
  float amax = 0;
  bool finite = true;
  for (int64_t i = 0; i < k; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite &= std::isfinite(x[i]);
  }
  *scale = finite ? amax / 127.0f : std::nanf("");
  const float inv = finite && *scale > 0 ? 1.0f / *scale : 0.0f;
  for (int64_t i = 0; i < stride; ++i) {
    const float v = i < k ? std::nearbyint(x[i] * inv) : 0.0f;
    q[i] = finite ? static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f)) : 0;
  }
  for (int64_t b = 0; b < stride / 32; ++b) {
    sums[b] = 0;
    for (int64_t i = 0; i < 32; ++i) sums[b] += q[b * 32 + i];
  }
}

TEST(ActivationFormsTest, Int8FormIsTheDefinitionBitForBit) {
  std::mt19937 rng(2);
  for (int64_t k : {1, 15, 16, 17, 45, 128, 129, 300}) {
    const int64_t n = 4, stride = Int8ActivationStride(k);
    std::vector<float> x = Values(n * k, rng);
    std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);           // token 1: all zero
    x[2 * k + k / 2] = std::numeric_limits<float>::quiet_NaN();  // token 2: poisoned
    x[3 * k] = 127.5f * 3;  // token 3: a value that rounds onto the clamp
    std::vector<int8_t> q(n * stride, 99), want_q(stride);
    std::vector<float> scale(n);
    std::vector<int32_t> sums(n * stride / 32), want_sums(stride / 32);
    QuantizeActivations(x.data(), n, k, q.data(), scale.data(), sums.data());
    for (int64_t t = 0; t < n; ++t) {
      float want_scale;
      QuantizeByDefinition(x.data() + t * k, k, want_q.data(), &want_scale, want_sums.data());
      EXPECT_EQ(
          Bits(scale[t]) == Bits(want_scale) || (std::isnan(scale[t]) && std::isnan(want_scale)),
          true)
          << "k " << k << " token " << t;
      for (int64_t i = 0; i < stride; ++i)
        ASSERT_EQ(q[t * stride + i], want_q[i]) << k << " " << t << " " << i;
      for (int64_t b = 0; b < stride / 32; ++b) ASSERT_EQ(sums[t * stride / 32 + b], want_sums[b]);
    }
  }
}

// The AMX tile form: 16-row tiles, K steps of 64 bytes (ExpertActivations::amx_tiles), filled for
// ranges that start on a tile, zero past the range's last row and past k.
TEST(ActivationFormsTest, TileFormHoldsTheRowsInTileOrder) {
  std::mt19937 rng(3);
  for (bool int8 : {false, true}) {
    for (int64_t k : {1, 33, 64, 100, 257}) {
      const int64_t first = 16, n = 21, rows = first + n + 5;  // this range: rows [16, 37)
      std::vector<float> x = Values(rows * k, rng);
      ActivationBuffer buf;
      buf.Reset(rows, k, ActivationForms{!int8, int8, true});
      buf.Fill(x.data(), first, first + n);
      const ExpertActivations v = buf.View(x.data(), first, n);
      ASSERT_NE(v.amx_tiles, nullptr);
      ASSERT_EQ(v.amx_tile_steps, AmxTileSteps(k, int8));
      EXPECT_EQ(buf.View(x.data(), first + 1, n - 1).amx_tiles, nullptr) << "not on a tile";
      for (int64_t t = 0; t < 32; ++t) {  // two whole tiles: rows past n are zero
        std::vector<uint8_t> want(v.amx_tile_steps * 64, 0);
        if (t < n) {
          if (int8) {
            std::memcpy(want.data(), v.q8 + t * Int8ActivationStride(k), k);
          } else {
            std::vector<uint32_t> pairs(Bf16PairCount(k));
            ConvertToBf16Pairs(x.data() + (first + t) * k, 1, k, pairs.data());
            std::memcpy(want.data(), pairs.data(), pairs.size() * 4);
          }
        }
        for (int64_t s = 0; s < v.amx_tile_steps; ++s) {
          const uint8_t* got =
              v.amx_tiles + ((t / 16) * v.amx_tile_steps + s) * 1024 + (t % 16) * 64;
          ASSERT_EQ(std::memcmp(got, want.data() + s * 64, 64), 0)
              << (int8 ? "int8" : "bf16") << " k " << k << " token " << t << " step " << s;
        }
      }
    }
  }
}

// ExpertShard::Run's gather: rows taken from tokens (a token may feed several rows) straight into
// the tile form, converted here from f32 or (int8) copied from a buffer that quantized each token
// once, give the tiles (and int8 scales) of copying the rows and calling Fill.
TEST(ActivationFormsTest, TileFormOfGatheredTokensIsTheSameFromEverySource) {
  std::mt19937 rng(4);
  for (bool int8 : {false, true}) {
    for (int64_t k : {1, 33, 64, 100, 257}) {
      const int64_t tokens = 6, first = 16, n = 21, rows = first + n;
      std::vector<float> x = Values(tokens * k, rng);
      x[2 * k + k / 2] = std::numeric_limits<float>::quiet_NaN();  // token 2: poisoned
      std::vector<int64_t> src_row(n);
      for (int64_t r = 0; r < n; ++r) src_row[r] = (r * 5 + 3) % tokens;
      std::vector<float> copied(rows * k, 0.0f);
      for (int64_t r = 0; r < n; ++r)
        std::copy(x.begin() + src_row[r] * k, x.begin() + (src_row[r] + 1) * k,
                  copied.begin() + (first + r) * k);
      const ActivationForms tiles{false, int8, true};
      ActivationBuffer want, from_f32, from_tokens, token_forms;
      want.Reset(rows, k, tiles);
      want.Fill(copied.data(), first, rows);
      from_f32.Reset(rows, k, tiles);
      from_f32.FillAmxTiles(x.data(), nullptr, src_row.data(), first, rows);
      token_forms.Reset(tokens, k, ActivationForms{false, int8, false});
      token_forms.Fill(x.data(), 0, tokens);
      from_tokens.Reset(rows, k, tiles);
      from_tokens.FillAmxTiles(x.data(), int8 ? &token_forms : nullptr, src_row.data(), first,
                               rows);
      const ExpertActivations w = want.View(copied.data(), first, n);
      const int64_t bytes = 2 * w.amx_tile_steps * 1024;  // two whole tiles: n = 21 rows + padding
      for (const ActivationBuffer* got : {&from_f32, &from_tokens}) {
        const ExpertActivations g = got->View(x.data(), first, n);
        const char* which = got == &from_f32 ? "from f32" : "from quantized tokens";
        ASSERT_EQ(std::memcmp(g.amx_tiles, w.amx_tiles, bytes), 0)
            << (int8 ? "int8" : "bf16") << " k " << k << " " << which;
        if (int8)
          for (int64_t r = 0; r < n; ++r)
            EXPECT_EQ(Bits(g.q8_scale[r]), Bits(w.q8_scale[r]))
                << "k " << k << " row " << r << " " << which;
      }
    }
  }
}

// Reset keeps storage for its reserve_rows: calls of up to that many rows reuse it (ExpertShard
// reserves a token count's row bound, so the rows moving with the routing never regrow a buffer
// inside a call), and the forms of the rows are those of a buffer without the reserve.
TEST(ActivationFormsTest, ReservedRowsAreReusedInPlace) {
  std::mt19937 rng(5);
  for (bool int8 : {false, true}) {
    const int64_t k = 100, reserve = 80;
    const ActivationForms all{!int8, int8, true};
    std::vector<float> x = Values(reserve * k, rng);
    ActivationBuffer buf;
    buf.Reset(16, k, all, reserve);
    buf.Fill(x.data(), 0, 16);
    const ExpertActivations small = buf.View(x.data(), 0, 16);
    buf.Reset(reserve, k, all);
    buf.Fill(x.data(), 0, reserve);
    const ExpertActivations big = buf.View(x.data(), 0, reserve);
    EXPECT_EQ(big.amx_tiles, small.amx_tiles) << int8;
    EXPECT_EQ(big.bf16_pairs, small.bf16_pairs) << int8;
    EXPECT_EQ(big.q8, small.q8) << int8;
    EXPECT_EQ(big.q8_scale, small.q8_scale) << int8;
    ActivationBuffer plain;
    plain.Reset(reserve, k, all);
    plain.Fill(x.data(), 0, reserve);
    const ExpertActivations want = plain.View(x.data(), 0, reserve);
    const int64_t tile_bytes = (reserve + 15) / 16 * want.amx_tile_steps * 1024;
    EXPECT_EQ(std::memcmp(big.amx_tiles, want.amx_tiles, tile_bytes), 0) << int8;
    if (int8) {
      EXPECT_EQ(std::memcmp(big.q8, want.q8, reserve * Int8ActivationStride(k)), 0);
      EXPECT_EQ(std::memcmp(big.q8_scale, want.q8_scale, reserve * sizeof(float)), 0);
    } else {
      EXPECT_EQ(std::memcmp(big.bf16_pairs, want.bf16_pairs, reserve * Bf16PairCount(k) * 4), 0);
    }
  }
}

}  // namespace
}  // namespace tandem
