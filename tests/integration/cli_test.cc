// The `tandem` binary end to end: JSON output of generate / logits / tokenize on a fixture,
// the demo, and clear errors (message on stderr, non-zero exit) on bad input.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/fixture_paths.h"

namespace tandem {
namespace {

struct CliRun {
  int exit_code;
  std::string out;
  std::string err;
};

CliRun RunTandem(const std::string& args) {
  // One file per test process: ctest runs this binary's tests in parallel processes.
  const std::string err_path =
      ::testing::TempDir() + "/tandem_stderr." + std::to_string(getpid()) + ".txt";
  const std::string cmd = std::string(TANDEM_BIN) + " " + args + " 2>" + err_path;
  CliRun r{-1, "", ""};
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream ss;
  ss << err.rdbuf();
  r.err = ss.str();
  return r;
}

std::string Fixture(const char* arch) { return testing::FixturesDir() + "/" + arch; }

bool HasFixture(const char* arch) {
  return std::filesystem::exists(Fixture(arch) + "/reference.json");
}

TEST(Cli, GenerateJsonMatchesReferenceGreedyIds) {
  for (const char* arch : {"qwen3_moe", "deepseek_v3"}) {
    if (!HasFixture(arch)) GTEST_SKIP() << "fixture " << arch << " not generated yet";
    const auto ref = testing::ReadJson(Fixture(arch) + "/reference.json");
    std::string ids;
    for (const auto& id : ref["greedy"]["prompt_ids"]) ids += (ids.empty() ? "" : ",") + id.dump();
    const CliRun r = RunTandem("generate --model " + Fixture(arch) + " --prompt-ids " + ids +
                               " --max-tokens 16 --ignore-eos --device cpu --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["ids"], ref["greedy"]["ids"]) << arch;
    EXPECT_EQ(out["finish_reason"], "length");
    EXPECT_TRUE(out["text"].is_string());
    EXPECT_EQ(out["prompt_ids"], ref["greedy"]["prompt_ids"]);
  }
}

TEST(Cli, LogitsJsonMatchesReference) {
  if (!HasFixture("mixtral")) GTEST_SKIP() << "fixture mixtral not generated yet";
  const auto ref = testing::ReadJson(Fixture("mixtral") + "/reference.json");
  std::string ids;
  for (const auto& id : ref["logits"]["prompt_ids"]) ids += (ids.empty() ? "" : ",") + id.dump();
  const CliRun r =
      RunTandem("logits --model " + Fixture("mixtral") + " --prompt-ids " + ids + " --device cpu --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  const auto& expected = ref["logits"]["last_logits"];
  ASSERT_EQ(out["logits"].size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(out["logits"][i].get<double>(), expected[i].get<double>(), 1e-3);
}

TEST(Cli, TokenizeJsonMatchesReference) {
  if (!HasFixture("qwen2_moe")) GTEST_SKIP() << "fixture qwen2_moe not generated yet";
  const auto ref = testing::ReadJson(Fixture("qwen2_moe") + "/reference.json");
  const auto& item = ref["tokenize"][1];
  const std::string text = item["text"].get<std::string>();
  // Pass the text through a file-free shell quote: single quotes with ' escaped.
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const CliRun r =
      RunTandem("tokenize --model " + Fixture("qwen2_moe") + " --text " + quoted + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], item["ids"]);
}

TEST(Cli, DemoGeneratesFromItsOwnCheckpoint) {
  const std::string dir = ::testing::TempDir() + "/tandem_demo_model";
  const CliRun r = RunTandem("demo --dir " + dir + " --max-tokens 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["ids"].size(), 8u);
  // Deterministic: a second run writes the same model and generates the same ids.
  const CliRun again = RunTandem("demo --dir " + dir + " --max-tokens 8 --json");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["ids"], out["ids"]);
  // The written directory is a normal model directory for the other commands.
  const CliRun gen = RunTandem("generate --model " + dir + " --chat hello --max-tokens 4 --json");
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
}

// Quantized experts, in-process and in a worker process: the run works end to end and reports
// its format (the numbers themselves are checked by quantized_experts_test).
TEST(Cli, QuantizedExpertsRunInProcessAndInWorkers) {
  if (!HasFixture("qwen3_moe")) GTEST_SKIP() << "fixture qwen3_moe not generated yet";
  for (const char* flags : {"--workers 0 --expert-dtype int8 --schedule static",
                            "--workers 1 --expert-dtype int4 --int4-group-size 32"}) {
    const CliRun r = RunTandem("generate --model " + Fixture("qwen3_moe") +
                               " --prompt-ids 1,2,3 --max-tokens 4 --json " + flags);
    ASSERT_EQ(r.exit_code, 0) << flags << "\n" << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["ids"].size(), 4u) << flags;
  }
}

TEST(Cli, BadInputIsAClearError) {
  struct Case {
    std::string args;
    std::string message;
  } cases[] = {
      {"generate --model /nonexistent --prompt hi --max-tokens 1", "/nonexistent"},
      {"logits --model /nonexistent --prompt-ids 1 --json", "/nonexistent"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt-ids 1,x,3 --max-tokens 1", "\"x\""},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt-ids 99999999 --max-tokens 1",
       "outside the vocabulary"},
      {"generate --model " + Fixture("qwen3_moe") + " --max-tokens 1", "exactly one of"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt hi --temperature -1", "temperature"},
      {"tokenize --model " + Fixture("qwen3_moe") + " --messages '{not json' --json", "--messages"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt hi --expert-dtype fp8",
       "expected bf16, int8 or int4"},
      {"generate --model " + Fixture("qwen3_moe") +
           " --prompt hi --expert-dtype int4 "
           "--int4-group-size 64",
       "32 or 128"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt hi --schedule guided",
       "expected dynamic or static"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt hi --device tpu",
       "must be auto, cpu or cuda"},
      {"generate --model " + Fixture("qwen3_moe") + " --prompt hi --kv-cache-tokens -1",
       "--kv-cache-tokens must be >= 0"},
      {"bench --preset llama --synthetic", "unknown preset \"llama\""},
      {"bench --preset deepseek-v3 --layers 99 --synthetic", "--layers must be in [1, 61]"},
      {"bench --preset deepseek-v3 --layers 2", "needs --synthetic"},
      {"bench --preset deepseek-v3 --synthetic --cuda-graph maybe", "--cuda-graph must be on or off"},
      {"bench --preset deepseek-v3 --synthetic --ring-wait poll", "--ring-wait must be memop or host-func"},
      {"bench --preset deepseek-v3 --synthetic --prompt-lens 32,x", "bad length \"x\""},
  };
  if (!HasFixture("qwen3_moe")) GTEST_SKIP() << "fixture qwen3_moe not generated yet";
  for (const Case& c : cases) {
    const CliRun r = RunTandem(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
}

}  // namespace
}  // namespace tandem
