// --expert-dtype int8 / int4 on every fixture model, against the same model with bf16 experts:
// the logit error and the greedy agreement, printed as a report and bounded.
//
// Method: the bf16 model decodes 16 greedy tokens after the fixture's prompt; the quantized model
// is then fed the same tokens (teacher forcing), and at each of the 16 + 1 positions its logits
// are compared with the bf16 ones: max |logit error| (absolute, and relative to the bf16 logits'
// max |value|) and the fraction of positions whose argmax agrees.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "coordinator/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/moe_format.h"
#include "tests/fixture_paths.h"

namespace tandem {
namespace {

constexpr int kSteps = 16;

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Logits after the prompt and after each of `forced` (or, when forced is empty, after each of
// kSteps greedy tokens, which are returned in *greedy).
std::vector<std::vector<float>> Logits(LoadedModel& m, const std::vector<int32_t>& prompt,
                                       const std::vector<int32_t>& forced,
                                       std::vector<int32_t>* greedy) {
  auto cache = m.engine->NewCache(m.max_model_len);
  std::vector<std::vector<float>> out;
  auto logits = m.engine->Forward(prompt, *cache);
  EXPECT_TRUE(logits.ok()) << logits.status();
  if (!logits.ok()) return out;
  out.push_back(*logits);
  for (int i = 0; i < kSteps; ++i) {
    const int32_t next = forced.empty() ? Argmax(out.back()) : forced[i];
    if (greedy != nullptr) greedy->push_back(next);
    logits = m.engine->Forward(std::vector<int32_t>{next}, *cache);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return out;
    out.push_back(*logits);
  }
  return out;
}

struct Case {
  std::string dir;
  std::string dtype;
  int64_t group = 128;
  double min_agreement;  // bound on the greedy agreement
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.dir << " " << c.dtype << c.group; }

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const std::string& dir : testing::ModelFixtureDirs()) {
    cases.push_back({dir, "int8", 128, 0.8});
    cases.push_back({dir, "int4", 32, 0.5});
    cases.push_back({dir, "int4", 128, 0.5});
  }
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::filesystem::path(info.param.dir).filename().string() + "_" + info.param.dtype +
         (info.param.dtype == "int4" ? "_g" + std::to_string(info.param.group) : "");
}

class QuantizedExpertsTest : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizedExpertsTest, LogitErrorAndGreedyAgreementAgainstBf16) {
  const Case& c = GetParam();
  const nlohmann::json reference = testing::ReadJson(c.dir + "/reference.json");
  const auto prompt = reference["logits"]["prompt_ids"].get<std::vector<int32_t>>();
  LoadOptions bf16_options;
  bf16_options.load_tokenizer = false;
  bf16_options.device = Device::kCpu;
  auto bf16 = LoadModel(c.dir, bf16_options);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  LoadOptions q_options = bf16_options;
  auto format = ParseExpertFormat(c.dtype, c.group);
  ASSERT_TRUE(format.ok()) << format.status();
  q_options.expert_format = *format;
  auto quantized = LoadModel(c.dir, q_options);
  ASSERT_TRUE(quantized.ok()) << quantized.status();

  std::vector<int32_t> greedy;
  const auto want = Logits(*bf16, prompt, {}, &greedy);
  const auto got = Logits(*quantized, prompt, greedy, nullptr);
  ASSERT_EQ(want.size(), got.size());
  double max_err = 0, max_logit = 0;
  int agree = 0;
  for (size_t p = 0; p < want.size(); ++p) {
    for (size_t i = 0; i < want[p].size(); ++i) {
      max_err = std::max(max_err, double{std::abs(got[p][i] - want[p][i])});
      max_logit = std::max(max_logit, double{std::abs(want[p][i])});
    }
    agree += Argmax(got[p]) == Argmax(want[p]);
  }
  const double agreement = static_cast<double>(agree) / want.size();
  std::printf(
      "[ quant ] %-12s %-10s max |logit err| %.4f (%.2f%% of max |logit| %.3f), greedy "
      "agreement %d/%zu = %.2f\n",
      std::filesystem::path(c.dir).filename().c_str(), ExpertFormatName(*format).c_str(), max_err,
      100 * max_err / max_logit, max_logit, agree, want.size(), agreement);
  EXPECT_GE(agreement, c.min_agreement);
  EXPECT_GT(max_err, 0.0) << "quantization changed nothing: were the experts quantized?";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizedExpertsTest, ::testing::ValuesIn(Cases()), CaseName);

}  // namespace
}  // namespace tandem
