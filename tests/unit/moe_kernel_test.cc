// The routed-expert kernels (kernels/cpu/moe_kernel.h) against the scalar reference, and the packed
// layout (moe_pack.h) against the plain bf16 matrices.
#include "kernels/cpu/moe_kernel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/bf16.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe_format.h"
#include "kernels/cpu/moe_kernel_impl.h"
#include "kernels/cpu/moe_pack.h"
#include "tests/moe_test_support.h"

namespace tandem {
namespace {

struct Bf16Expert {
  int64_t hidden = 0, inter = 0;
  std::vector<uint16_t> gate, up, down;  // [I x H], [I x H], [H x I]
};

std::vector<uint16_t> RandomBf16(int64_t count, float scale, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<uint16_t> v(count);
  for (auto& x : v) x = FloatToBf16(dist(rng));
  return v;
}

std::vector<float> RandomFloats(int64_t count, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

Bf16Expert RandomExpert(int64_t hidden, int64_t inter, std::mt19937& rng) {
  Bf16Expert e{hidden, inter, {}, {}, {}};
  e.gate = RandomBf16(inter * hidden, 1.0f / std::sqrt(static_cast<float>(hidden)), rng);
  e.up = RandomBf16(inter * hidden, 1.0f / std::sqrt(static_cast<float>(hidden)), rng);
  e.down = RandomBf16(hidden * inter, 1.0f / std::sqrt(static_cast<float>(inter)), rng);
  return e;
}

PackedExpert Pack(const Bf16Expert& e) {
  PackedExpert p;
  p.gate = PackBf16Matrix(e.gate.data(), e.inter, e.hidden);
  p.up = PackBf16Matrix(e.up.data(), e.inter, e.hidden);
  p.down = PackBf16Matrix(e.down.data(), e.hidden, e.inter);
  return p;
}

// The expert over the unpacked matrices, accumulated in double: independent of the packing.
std::vector<float> NaiveExpert(const Bf16Expert& e, const float* x, int64_t n) {
  std::vector<float> y(n * e.hidden);
  std::vector<float> act(e.inter);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < e.inter; ++r) {
      double g = 0, u = 0;
      for (int64_t k = 0; k < e.hidden; ++k) {
        g += double{Bf16ToFloat(e.gate[r * e.hidden + k])} * x[t * e.hidden + k];
        u += double{Bf16ToFloat(e.up[r * e.hidden + k])} * x[t * e.hidden + k];
      }
      act[r] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
    }
    for (int64_t d = 0; d < e.hidden; ++d) {
      double s = 0;
      for (int64_t r = 0; r < e.inter; ++r)
        s += double{Bf16ToFloat(e.down[d * e.inter + r])} * act[r];
      y[t * e.hidden + d] = static_cast<float>(s);
    }
  }
  return y;
}

struct Error {
  double max_rel = 0;  // max |y - ref| / max |ref|
  double rms_rel = 0;  // ||y - ref|| / ||ref||
};

Error Compare(const std::vector<float>& y, const std::vector<float>& ref) {
  double max_diff = 0, max_ref = 0, diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = std::abs(double{y[i]} - ref[i]);
    max_diff = std::max(max_diff, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
    max_ref = std::max(max_ref, std::abs(double{ref[i]}));
    diff2 += d * d;
    ref2 += double{ref[i]} * ref[i];
  }
  if (max_ref == 0) return {max_diff, std::sqrt(diff2)};
  return {max_diff / max_ref, std::sqrt(diff2 / ref2)};
}

std::vector<float> Forward(const ExpertKernel& k, const PackedExpert& e, const float* x,
                           int64_t n) {
  std::vector<float> y(n * e.hidden(), std::numeric_limits<float>::quiet_NaN());
  ExpertScratch scratch;
  ExpertForward(k, e, x, n, y.data(), &scratch);
  return y;
}

const ExpertKernel kReference{CpuKernel::kReference, ActivationPrecision::kF32};

// ---------------------------------------------------------------- packing

TEST(MoePackTest, LayoutHoldsEveryElementAndZeroPadding) {
  std::mt19937 rng(1);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {16, 2}, {17, 3}, {33, 70}}) {
    const std::vector<uint16_t> w = RandomBf16(rows * cols, 1.0f, rng);
    const PackedMatrix p = PackBf16Matrix(w.data(), rows, cols);
    ASSERT_EQ(p.row_blocks(), (rows + 15) / 16);
    ASSERT_EQ(p.k_pairs(), (cols + 1) / 2);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.block_data(0)) % 64, 0u);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k) ASSERT_EQ(p.At(r, k), w[r * cols + k]) << r << "," << k;
    // Documented formula, and zeros in the padding rows and column.
    int64_t nonzero_pad = 0;
    for (int64_t b = 0; b < p.row_blocks(); ++b)
      for (int64_t q = 0; q < p.k_pairs(); ++q)
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t j = 0; j < 2; ++j) {
            const uint16_t v = p.block(0)[(b * p.k_pairs() + q) * 32 + 2 * r + j];
            const int64_t row = 16 * b + r, col = 2 * q + j;
            if (row < rows && col < cols) {
              ASSERT_EQ(v, w[row * cols + col]);
            } else {
              nonzero_pad += v != 0;
            }
          }
    EXPECT_EQ(nonzero_pad, 0);
  }
}

TEST(MoePackTest, PackExpertChecksTheMatrices) {
  WeightMatrix gate{3, 4, std::vector<uint16_t>(12), {}, false, {}};
  WeightMatrix up = gate;
  WeightMatrix down{4, 3, std::vector<uint16_t>(12), {}, false, {}};
  auto ok = PackExpert(gate, up, down);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->hidden(), 4);
  EXPECT_EQ(ok->intermediate(), 3);
  WeightMatrix bad_down{3, 4, std::vector<uint16_t>(12), {}, false, {}};
  EXPECT_EQ(PackExpert(gate, up, bad_down).status().code(), absl::StatusCode::kInvalidArgument);
  WeightMatrix f32 = gate;
  f32.is_f32 = true;
  f32.f32.resize(12);
  EXPECT_EQ(PackExpert(f32, up, down).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MoeReferenceTest, MatchesTheUnpackedComputation) {
  std::mt19937 rng(2);
  for (auto [h, i] : {std::pair<int64_t, int64_t>{16, 32}, {17, 33}, {45, 71}, {5, 1}}) {
    const Bf16Expert e = RandomExpert(h, i, rng);
    const PackedExpert p = Pack(e);
    for (int64_t n : {1, 3, 17}) {
      const std::vector<float> x = RandomFloats(n * h, rng);
      const Error err = Compare(Forward(kReference, p, x.data(), n), NaiveExpert(e, x.data(), n));
      EXPECT_LT(err.max_rel, 1e-5) << "H=" << h << " I=" << i << " n=" << n;
    }
  }
}

// ---------------------------------------------------------------- every kernel vs the reference

struct KernelCase {
  std::string name;
  ExpertKernel kernel;
  double max_rel_tolerance;
};

class MoeKernelTest : public ::testing::TestWithParam<KernelCase> {
 protected:
  void SetUp() override {
    if (GetParam().kernel.isa != CpuKernel::kReference && !CanRunAvx512Bf16(DetectCpuFeatures()))
      GTEST_SKIP() << "this CPU cannot run the AVX-512 bf16 kernels (" << DescribeCpu() << ")";
    if (GetParam().kernel.isa == CpuKernel::kAmx && !CanRunAmxBf16(DetectCpuFeatures()))
      GTEST_SKIP() << "this CPU cannot run the AMX bf16 kernels (" << DescribeCpu() << ")";
  }
};

TEST_P(MoeKernelTest, MatchesReferenceOnRaggedShapes) {
  std::mt19937 rng(3);
  const std::pair<int64_t, int64_t> shapes[] = {{16, 32},   {17, 33}, {45, 71}, {100, 50},
                                                {129, 257}, {7, 1},   {1, 5},   {64, 200}};
  for (auto [h, i] : shapes) {
    const Bf16Expert e = RandomExpert(h, i, rng);
    const PackedExpert p = Pack(e);
    for (int64_t n : {1, 2, 3, 4, 5, 17}) {
      const std::vector<float> x = RandomFloats(n * h, rng);
      const Error err =
          Compare(Forward(GetParam().kernel, p, x.data(), n), Forward(kReference, p, x.data(), n));
      EXPECT_LT(err.max_rel, GetParam().max_rel_tolerance) << "H=" << h << " I=" << i << " n=" << n;
    }
  }
}

TEST_P(MoeKernelTest, RowRangesComposeToTheWholeExpert) {
  std::mt19937 rng(4);
  const int64_t h = 83, inter = 101, n = 6;
  const Bf16Expert e = RandomExpert(h, inter, rng);
  const PackedExpert p = Pack(e);
  const ExpertKernel& k = GetParam().kernel;
  const std::vector<float> x = RandomFloats(n * h, rng);
  std::vector<uint32_t> x_pairs(n * Bf16PairCount(h));
  ConvertToBf16Pairs(x.data(), n, h, x_pairs.data());
  // Ranges of arbitrary widths, some inside one 16-row block, some across several.
  const std::vector<int64_t> cuts_i = {0, 5, 16, 19, 48, 49, 90, inter};
  const float kSentinel = -12345.0f;
  std::vector<float> act(n * inter, kSentinel);
  for (size_t c = 0; c + 1 < cuts_i.size(); ++c) {
    GateUpRows(k, p, {x.data(), x_pairs.data(), n, h}, cuts_i[c], cuts_i[c + 1], act.data());
    for (int64_t t = 0; t < n; ++t)  // nothing past the range written yet
      for (int64_t r = cuts_i[c + 1]; r < inter; ++r) ASSERT_EQ(act[t * inter + r], kSentinel);
  }
  std::vector<uint32_t> act_pairs(n * Bf16PairCount(inter));
  ConvertToBf16Pairs(act.data(), n, inter, act_pairs.data());
  const std::vector<int64_t> cuts_h = {0, 1, 32, 40, 64, 77, h};
  std::vector<float> y(n * h, kSentinel);
  for (size_t c = 0; c + 1 < cuts_h.size(); ++c) {
    DownRows(k, p, {act.data(), act_pairs.data(), n, inter}, cuts_h[c], cuts_h[c + 1], y.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t d = cuts_h[c + 1]; d < h; ++d) ASSERT_EQ(y[t * h + d], kSentinel);
  }
  // Same blocks, same arithmetic: bit-identical to the one-call forward.
  EXPECT_EQ(y, Forward(k, p, x.data(), n));
}

// ExpertShard::Run's bf16 AMX experts skip act's f32 rows: gate/up writes act as bf16 straight into
// the tile form down reads. In row ranges of any width, onto a buffer that held other bytes, that
// gives the bytes FillAmxTiles makes of GateUpRows's f32 act (every kernel: AMX bf16 writes the
// tiles from its epilogue, the others convert their f32 act).
TEST_P(MoeKernelTest, GateUpRowsToTilesWritesTheTileFormOfAct) {
  std::mt19937 rng(9);
  const ExpertKernel& k = GetParam().kernel;
  for (auto [h, inter] : {std::pair<int64_t, int64_t>{83, 101}, {64, 64}, {45, 200}}) {
    const Bf16Expert e = RandomExpert(h, inter, rng);
    const PackedExpert p = Pack(e);
    for (int64_t n : {4, 17, 40}) {
      const std::vector<float> x = RandomFloats(n * h, rng);
      std::vector<uint32_t> x_pairs(n * Bf16PairCount(h));
      ConvertToBf16Pairs(x.data(), n, h, x_pairs.data());
      const ExpertActivations xa{x.data(), x_pairs.data(), n, h};
      EXPECT_EQ(GateUpWritesTiles(k, p, n), k.isa == CpuKernel::kAmx &&
                                                k.activations == ActivationPrecision::kBf16 &&
                                                n >= AmxMinTokens());
      // The rows start at 16, as an expert's rows after another's in ExpertShard::Run.
      const int64_t first = 16, rows = first + n;
      std::vector<float> act(rows * inter, 0.0f);
      GateUpRows(k, p, xa, 0, inter, act.data() + first * inter);
      const ActivationForms tiles{false, false, true};
      ActivationBuffer want, got;
      want.Reset(rows, inter, tiles);
      want.FillAmxTiles(act.data(), nullptr, nullptr, first, rows);
      got.Reset(rows, inter, tiles);
      AmxTileRows out = got.DirectTiles(first, rows);
      const int64_t bytes = (n + 15) / 16 * out.steps * 1024;
      std::memset(out.tiles, 0xab, bytes);  // what an earlier call left
      out = got.DirectTiles(first, rows);
      const std::vector<int64_t> cuts = {0, 5, 16, 19, 48, 49, inter};
      for (size_t c = 0; c + 1 < cuts.size(); ++c)
        GateUpRowsToTiles(k, p, xa, std::min(cuts[c], inter), std::min(cuts[c + 1], inter), out);
      const ExpertActivations w = want.View(act.data(), first, n),
                              g = got.View(act.data(), first, n);
      ASSERT_EQ(g.amx_tiles, out.tiles);
      EXPECT_EQ(std::memcmp(g.amx_tiles, w.amx_tiles, bytes), 0)
          << "H=" << h << " I=" << inter << " n=" << n;
    }
  }
}

TEST_P(MoeKernelTest, ZeroTokensAndEmptyRangesTouchNothing) {
  std::mt19937 rng(5);
  const Bf16Expert e = RandomExpert(40, 24, rng);
  const PackedExpert p = Pack(e);
  const ExpertKernel& k = GetParam().kernel;
  std::vector<float> y(40, 7.0f), act(24, 7.0f);
  ExpertScratch scratch;
  ExpertForward(k, p, nullptr, 0, y.data(), &scratch);
  const std::vector<float> x = RandomFloats(40, rng);
  std::vector<uint32_t> xp(Bf16PairCount(40));
  ConvertToBf16Pairs(x.data(), 1, 40, xp.data());
  GateUpRows(k, p, {x.data(), xp.data(), 0, 40}, 0, 24, act.data());
  GateUpRows(k, p, {x.data(), xp.data(), 1, 40}, 10, 10, act.data());
  DownRows(k, p, {act.data(), nullptr, 0, 24}, 0, 40, y.data());
  DownRows(k, p, {act.data(), nullptr, 1, 24}, 17, 17, y.data());
  EXPECT_EQ(y, std::vector<float>(40, 7.0f));
  EXPECT_EQ(act, std::vector<float>(24, 7.0f));
}

// A small routed MoE: 5 experts, top-3, one expert never chosen, and a token that picks the same
// expert twice (its two weights must both count). Tokens are grouped per expert as the scheduler
// does, each group runs through ExpertForward, and the weighted outputs are summed per token.
TEST_P(MoeKernelTest, SmallMoeWithRepeatedRouting) {
  std::mt19937 rng(6);
  const int64_t h = 37, inter = 53;
  std::vector<Bf16Expert> experts;
  std::vector<PackedExpert> packed;
  for (int64_t i = 0; i < testing::SmallMoe::kExperts; ++i) {
    experts.push_back(RandomExpert(h, inter, rng));
    packed.push_back(Pack(experts.back()));
  }
  const std::vector<float> x = RandomFloats(testing::SmallMoe::kTokens * h, rng);
  const testing::SmallMoe moe(rng);
  const std::vector<float> expected = moe.PerToken(x, h, [&](int e, const float* xt, float* y) {
    const std::vector<float> v = NaiveExpert(experts[e], xt, 1);
    std::copy(v.begin(), v.end(), y);
  });
  ExpertScratch scratch;
  const std::vector<float> out =
      moe.Grouped(x, h, [&](int64_t e, const float* xe, int64_t n, float* ye) {
        ExpertForward(GetParam().kernel, packed[e], xe, n, ye, &scratch);
      });
  const Error err = Compare(out, expected);
  EXPECT_LT(err.max_rel, GetParam().max_rel_tolerance);
}

// The error of rounding the activations to bf16, on a realistic expert shape (Qwen3-30B-A3B:
// H = 2048, I = 768): printed for the record, and bounded.
TEST_P(MoeKernelTest, ErrorOnARealisticShape) {
  std::mt19937 rng(7);
  const int64_t h = 2048, inter = 768;
  const Bf16Expert e = RandomExpert(h, inter, rng);
  const PackedExpert p = Pack(e);
  for (int64_t n : {1, 8}) {
    const std::vector<float> x = RandomFloats(n * h, rng);
    const std::vector<float> exact = NaiveExpert(e, x.data(), n);
    const Error err = Compare(Forward(GetParam().kernel, p, x.data(), n), exact);
    std::printf("%s H=%ld I=%ld n=%ld: max|err|/max|ref| = %.3g, ||err||/||ref|| = %.3g\n",
                GetParam().name.c_str(), static_cast<long>(h), static_cast<long>(inter),
                static_cast<long>(n), err.max_rel, err.rms_rel);
    EXPECT_LT(err.max_rel, GetParam().max_rel_tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, MoeKernelTest,
    ::testing::Values(
        KernelCase{"reference", {CpuKernel::kReference, ActivationPrecision::kF32}, 1e-5},
        KernelCase{"avx512_f32", {CpuKernel::kAvx512, ActivationPrecision::kF32}, 1e-5},
        KernelCase{"avx512_bf16", {CpuKernel::kAvx512, ActivationPrecision::kBf16}, 1e-2},
        KernelCase{"amx_f32", {CpuKernel::kAmx, ActivationPrecision::kF32}, 1e-5},
        KernelCase{"amx_bf16", {CpuKernel::kAmx, ActivationPrecision::kBf16}, 1e-2}),
    [](const ::testing::TestParamInfo<KernelCase>& info) { return info.param.name; });

// ---------------------------------------------------------------- AMX tiles (many tokens)

const ExpertKernel kAmxBf16{CpuKernel::kAmx, ActivationPrecision::kBf16};
const ExpertKernel kAvx512Bf16{CpuKernel::kAvx512, ActivationPrecision::kBf16};

class AmxKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanRunAmxBf16(DetectCpuFeatures()))
      GTEST_SKIP()
          << "this CPU cannot run the AMX bf16 kernels (needs amx_tile, amx_bf16, the OS's "
             "tile state and permission; have: "
          << DescribeCpu() << ")";
  }
};

// Token counts around the 16-token tiles and the 2-tile step, shapes with K not a multiple of 32
// (nor even) and rows not a multiple of 16: against the f32 reference (bf16 activation rounding)
// and against AVX-512 vdpbf16ps over the same bf16 activations: those differ by the summation
// order (and TDPBF16PS's own rounding), which can flip the bf16 rounding of an intermediate
// activation before the down projection (measured on the device: up to 3.8e-4 of max |y|).
TEST_F(AmxKernelTest, MatchesReferenceOnRaggedShapes) {
  std::mt19937 rng(11);
  const std::pair<int64_t, int64_t> shapes[] = {
      {16, 32}, {17, 33}, {45, 71}, {100, 50}, {129, 257}, {7, 1}, {1, 5}, {64, 200}, {96, 48}};
  double worst_ref = 0, worst_avx = 0;
  for (auto [h, i] : shapes) {
    const Bf16Expert e = RandomExpert(h, i, rng);
    const PackedExpert p = Pack(e);
    for (int64_t n : {1, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 48, 50, 64}) {
      const std::vector<float> x = RandomFloats(n * h, rng);
      // The AMX tiles themselves, whatever the dispatch's switch point (n < 16: one padded tile).
      std::vector<float> y(n * h), act(n * i);
      moe_internal::AmxGateUpRows(p, {x.data(), nullptr, n, h}, 0, i, act.data());
      moe_internal::AmxDownRows(p, {act.data(), nullptr, n, i}, 0, h, y.data());
      const Error ref = Compare(y, Forward(kReference, p, x.data(), n));
      const Error avx = Compare(y, Forward(kAvx512Bf16, p, x.data(), n));
      worst_ref = std::max(worst_ref, ref.max_rel);
      worst_avx = std::max(worst_avx, avx.max_rel);
      EXPECT_LT(ref.max_rel, 1e-2) << "H=" << h << " I=" << i << " n=" << n;
      EXPECT_LT(avx.max_rel, 2e-3) << "H=" << h << " I=" << i << " n=" << n;
    }
  }
  std::printf("amx ragged: max rel vs f32 reference %.3g, vs avx512_bf16 %.3g\n", worst_ref,
              worst_avx);
}

// Row ranges of any width compose, bit-identically, into the one-call forward (n = 40: two tiles
// and a tail); the f32 activations are converted inside the call when no pairs are given.
TEST_F(AmxKernelTest, RowRangesComposeToTheWholeExpert) {
  std::mt19937 rng(12);
  const int64_t h = 83, inter = 101, n = 40;
  const Bf16Expert e = RandomExpert(h, inter, rng);
  const PackedExpert p = Pack(e);
  const std::vector<float> x = RandomFloats(n * h, rng);
  const float kSentinel = -12345.0f;
  std::vector<float> act(n * inter, kSentinel);
  const std::vector<int64_t> cuts_i = {0, 5, 16, 19, 48, 49, 90, inter};
  for (size_t c = 0; c + 1 < cuts_i.size(); ++c) {
    GateUpRows(kAmxBf16, p, {x.data(), nullptr, n, h}, cuts_i[c], cuts_i[c + 1], act.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = cuts_i[c + 1]; r < inter; ++r) ASSERT_EQ(act[t * inter + r], kSentinel);
  }
  std::vector<uint32_t> act_pairs(n * Bf16PairCount(inter));
  ConvertToBf16Pairs(act.data(), n, inter, act_pairs.data());
  const std::vector<int64_t> cuts_h = {0, 1, 32, 40, 64, 77, h};
  std::vector<float> y(n * h, kSentinel);
  for (size_t c = 0; c + 1 < cuts_h.size(); ++c) {
    DownRows(kAmxBf16, p, {act.data(), act_pairs.data(), n, inter}, cuts_h[c], cuts_h[c + 1],
             y.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t d = cuts_h[c + 1]; d < h; ++d) ASSERT_EQ(y[t * h + d], kSentinel);
  }
  EXPECT_EQ(y, Forward(kAmxBf16, p, x.data(), n));
}

// The permission is per process: threads other than the one that detected the CPU use the tiles,
// concurrently, on disjoint row ranges, and get the same values as one serial call.
TEST_F(AmxKernelTest, ConcurrentThreadsOnDisjointRanges) {
  std::mt19937 rng(13);
  const int64_t h = 256, inter = 200, n = 37;
  const Bf16Expert e = RandomExpert(h, inter, rng);
  const PackedExpert p = Pack(e);
  const std::vector<float> x = RandomFloats(n * h, rng);
  std::vector<float> serial(n * inter), parallel(n * inter);
  GateUpRows(kAmxBf16, p, {x.data(), nullptr, n, h}, 0, inter, serial.data());
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < inter; r += 48)
    threads.emplace_back([&, r] {
      GateUpRows(kAmxBf16, p, {x.data(), nullptr, n, h}, r, std::min(inter, r + 48),
                 parallel.data());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(parallel, serial);
}

// The loop blocking (moe_internal::AmxTuning: K blocks, token chunks, weight groups) changes only
// the order in which C tiles are visited, never a (token, row)'s sequence of TDPs: every tuning
// gives the same bits, for bf16 and int8 weights (CanRunAmxBf16 covers amx_int8 too), on ragged
// shapes and token counts (tails of K, of tokens, of rows, of K blocks and chunks).
TEST_F(AmxKernelTest, EveryTuningGivesTheSameBits) {
  const moe_internal::AmxTuning defaults = moe_internal::GetAmxTuning();
  const moe_internal::AmxTuning tunings[] = {{4096, 4, 2},
                                             {3, 1, 16},
                                             {2, 2, 4},
                                             {5, 3, 8},
                                             {4096, 4, 16},
                                             {1, 100, 6},
                                             {28, 4, 16},
                                             {3, 1, 16, false},
                                             {4096, 4, 2, false},
                                             {8, 4, 16, false},
                                             {3, 1, 4, true, 256, 1},
                                             {2, 2, 16, true, 256, 2},
                                             {4096, 8, 16, true, 256, 2},
                                             {5, 3, 8, false, 256, 2},
                                             {1, 100, 6, true, 256, 0, true},
                                             {14, 8, 16, true, 256, 1, true},
                                             {4096, 4, 2, true, 256, 2, true},
                                             {3, 1, 16, false, 256, 1, true},
                                             // y stores ordinary (the 10th field; default:
                                             // non-temporal) and non-temporal
                                             {14, 8, 16, true, 256, 1, true, true, true, false},
                                             {4096, 4, 2, true, 256, 2, false, true, true, true}};
  ASSERT_FALSE(moe_internal::SetAmxTuning({0, 4, 2}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 0, 2}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 3}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 18}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 16, true, 40}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 16, true, 0}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 16, true, 256, 3}));
  ASSERT_FALSE(moe_internal::SetAmxTuning({16, 4, 16, true, 256, -1}));
  std::mt19937 rng(15);
  for (ExpertDtype dtype : {ExpertDtype::kBf16, ExpertDtype::kInt8}) {
    for (auto [h, inter] : {std::pair<int64_t, int64_t>{300, 230}, {129, 257}, {1024, 96}}) {
      const Bf16Expert e = RandomExpert(h, inter, rng);
      auto matrix = [](const std::vector<uint16_t>& v, int64_t rows, int64_t cols) {
        WeightMatrix w;
        w.rows = rows;
        w.cols = cols;
        w.bf16 = v;
        return w;
      };
      ExpertFormat format;
      format.dtype = dtype;
      auto p = PackExpert(matrix(e.gate, inter, h), matrix(e.up, inter, h),
                          matrix(e.down, h, inter), format);
      ASSERT_TRUE(p.ok()) << p.status();
      for (int64_t n : {4, 17, 33, 77, 130}) {
        const std::vector<float> x = RandomFloats(n * h, rng);
        std::vector<float> first;
        for (const auto& t : tunings) {
          ASSERT_TRUE(moe_internal::SetAmxTuning(t));
          const std::vector<float> y = Forward(kAmxBf16, *p, x.data(), n);
          if (first.empty()) {
            first = y;
            const Error err = Compare(y, Forward(kReference, *p, x.data(), n));
            EXPECT_LT(err.max_rel, dtype == ExpertDtype::kInt8 ? 1e-5 : 1e-2) << "n=" << n;
          } else {
            EXPECT_EQ(y, first) << "H=" << h << " I=" << inter << " n=" << n << " tuning "
                                << t.k_steps << "/" << t.chunk_pairs << "/" << t.group_blocks << "/"
                                << t.stream_weights << " prefetch " << t.prefetch << " defer "
                                << t.defer_epilogue;
          }
        }
      }
    }
  }
  ASSERT_TRUE(moe_internal::SetAmxTuning(defaults));
}

// The activation rounding error on realistic shapes (Qwen3-30B-A3B H = 2048, I = 768; and a
// DeepSeek-V3 expert H = 7168, I = 2048), printed for the record.
TEST_F(AmxKernelTest, ErrorOnRealisticShapes) {
  std::mt19937 rng(14);
  for (auto [h, inter, n] :
       {std::tuple<int64_t, int64_t, int64_t>{2048, 768, 64}, {7168, 2048, 20}}) {
    const Bf16Expert e = RandomExpert(h, inter, rng);
    const PackedExpert p = Pack(e);
    const std::vector<float> x = RandomFloats(n * h, rng);
    const std::vector<float> exact = Forward(kReference, p, x.data(), n);
    const Error err = Compare(Forward(kAmxBf16, p, x.data(), n), exact);
    std::printf("amx_bf16 H=%ld I=%ld n=%ld: max|err|/max|ref| = %.3g, ||err||/||ref|| = %.3g\n",
                static_cast<long>(h), static_cast<long>(inter), static_cast<long>(n), err.max_rel,
                err.rms_rel);
    EXPECT_LT(err.max_rel, 1e-2);
  }
}

}  // namespace
}  // namespace tandem
