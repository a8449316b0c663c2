// `tandem bench --synthetic`: the hybrid GPU + CPU path end to end at a real model's shapes, with
// random weights built in memory: prefill at each prompt length, then batch-1 decode, reporting
// tokens/s, where the time went per layer (GPU waits, routed experts, host work = launches), and
// decode as a fraction of the bandwidth roofline (routed-expert bytes per token over the read
// bandwidth measured in the same run).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/machine_limits.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/cli/synthetic_loader.h"
#include "coordinator/loaded_model.h"
#include "coordinator/remote_expert_executor.h"
#include "coordinator/synthetic_model.h"
#include "kernels/cpu/moe_format.h"

namespace tandem::cli {
namespace {

struct BenchFlags {
  std::string preset;
  int64_t layers = 0;
  bool synthetic = false;
  std::string prompt_lens = "32,128,512,2048,8192";
  int64_t decode_tokens = 128;
  uint64_t seed = 1;
  bool json = false;
  WorkerFlags workers;
};

absl::StatusOr<std::vector<int64_t>> ParseLengths(const std::string& text) {
  std::vector<int64_t> lens;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0)
      return absl::InvalidArgumentError(absl::StrCat("--prompt-lens: bad length \"", part, "\""));
    lens.push_back(v);
  }
  if (lens.empty()) return absl::InvalidArgumentError("--prompt-lens is empty");
  return lens;
}

// Per-token or per-layer split of ForwardTimes, in ms.
nlohmann::json Split(const ForwardTimes& t, double per) {
  return {{"experts_ms", t.experts_ms / per},
          {"gpu_wait_ms", t.gpu_wait_ms / per},
          {"host_ms", t.host_ms() / per},
          {"total_ms", t.total_ms / per}};
}

// Total compute time the workers report (0 without workers).
absl::StatusOr<double> WorkerBusyMs(RemoteExpertExecutor* workers) {
  double ms = 0;
  if (workers == nullptr) return ms;
  for (WorkerClient* client : workers->clients()) {
    if (client == nullptr) return absl::UnavailableError("a worker went down during the benchmark");
    TANDEM_ASSIGN_OR_RETURN(const auto stats, client->Stats());
    ms += stats.busy_ns() / 1e6;
  }
  return ms;
}

absl::Status RunBench(const BenchFlags& f) {
  if (!f.synthetic)
    return absl::InvalidArgumentError("tandem bench needs --synthetic (random weights of the "
                                      "preset's shapes; checkpoints are not benchmarked here)");
  LoadOptions load;
  TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(f.workers, load));
  TANDEM_ASSIGN_OR_RETURN(load.device, ResolveDevice(load.device));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> lens, ParseLengths(f.prompt_lens));
  if (f.decode_tokens < 0) return absl::InvalidArgumentError("--decode-tokens must be >= 0");
  const int64_t max_tokens = *std::max_element(lens.begin(), lens.end()) + f.decode_tokens + 1;

  FILE* log = f.json ? stderr : stdout;
  const SyntheticRequest request{f.preset, f.layers, f.seed, max_tokens};
  TANDEM_ASSIGN_OR_RETURN(SyntheticModel model, LoadSyntheticModel(request, load));
  Engine* engine = model.engine.get();
  RemoteExpertExecutor* workers = model.workers;
  const ModelConfig& config = model.config;
  const ExpertFormat& format = load.expert_format;
  const double bytes_per_token = model.bytes_per_token, held_bytes = model.held_bytes;
  const double expert_build_s = model.expert_build_s, engine_build_s = model.engine_build_s;
  const std::string experts_describe = model.experts;
  // Pinned only now: workers and the engine's expert thread take the CPUs this thread may use,
  // all of them, when they start.
  const int threads = omp_get_max_threads();
  bench::PinOpenMpThreads(threads);
  std::fprintf(log, "measuring read bandwidth (%d threads)...\n", threads);
  const bench::MachineLimits limits = bench::MeasureMachineLimits(threads);
  std::fprintf(log,
               "%s: %lld layers (%lld MoE), experts %s (%.1f GB, built in %.0f s), engine %s "
               "(built in %.0f s); read bandwidth %.1f GB/s\n",
               f.preset.c_str(), (long long)config.num_layers, (long long)config.NumMoeLayers(),
               ExpertFormatName(format).c_str(), held_bytes / 1e9, expert_build_s,
               engine->Describe().c_str(), engine_build_s, limits.read_gbps);

  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(config.vocab_size - 1));
  TANDEM_RETURN_IF_ERROR(engine->Prepare(max_tokens));
  {  // warm-up: first-use allocations, cuBLAS heuristics, page faults
    // 16 tokens and 3 decode steps, or what fits in short runs' context.
    auto cache = engine->NewCache(max_tokens);
    std::vector<int32_t> prompt(std::min<int64_t>(16, max_tokens - 1));
    for (int32_t& id : prompt) id = token(rng);
    TANDEM_RETURN_IF_ERROR(engine->Forward(prompt, *cache).status());
    const int64_t decode = std::min<int64_t>(3, max_tokens - static_cast<int64_t>(prompt.size()));
    for (int64_t i = 0; i < decode; ++i)
      TANDEM_RETURN_IF_ERROR(engine->Forward(std::vector<int32_t>{token(rng)}, *cache).status());
  }
  const double roofline_tok_s = limits.read_gbps * 1e9 / bytes_per_token;
  const int64_t moe_layers = config.NumMoeLayers();
  nlohmann::json runs = nlohmann::json::array();
  std::fprintf(log, "%8s %12s %14s %12s %14s %10s %24s\n", "prompt", "prefill ms", "prefill tok/s",
               "decode tok/s", "decode ms/tok", "roofline", "per MoE layer: exp/gpu/host ms");
  for (int64_t len : lens) {
    auto cache = engine->NewCache(max_tokens);
    std::vector<int32_t> prompt(len);
    for (int32_t& id : prompt) id = token(rng);
    // Greedy decode as generation runs it: the engine draws each token (on the GPU there).
    Sampler greedy{SamplingParams{}};
    engine->ResetTimes();
    TANDEM_ASSIGN_OR_RETURN(int32_t next, engine->ForwardAndSample(prompt, *cache, greedy, {}));
    const ForwardTimes prefill = engine->times();
    engine->ResetTimes();
    TANDEM_ASSIGN_OR_RETURN(const double busy_before, WorkerBusyMs(workers));
    for (int64_t i = 0; i < f.decode_tokens; ++i) {
      TANDEM_ASSIGN_OR_RETURN(
          next, engine->ForwardAndSample(std::vector<int32_t>{next}, *cache, greedy, {}));
    }
    ForwardTimes decode = engine->times();
    if (workers != nullptr) {
      // The workers' compute, out of the time the engine waited for the GPU and the workers.
      TANDEM_ASSIGN_OR_RETURN(const double busy_after, WorkerBusyMs(workers));
      decode.experts_ms = (busy_after - busy_before) / workers->count();
      decode.gpu_wait_ms = std::max(0.0, decode.gpu_wait_ms - decode.experts_ms);
    }
    const double decode_tok_s = decode.forwards ? 1e3 * decode.forwards / decode.total_ms : 0;
    const double per_layer_tokens = std::max<double>(1, decode.forwards) * moe_layers;
    std::fprintf(log, "%8lld %12.1f %14.1f %12.2f %14.2f %9.1f%% %10.2f/%.2f/%.2f\n",
                 (long long)len, prefill.total_ms, 1e3 * len / prefill.total_ms, decode_tok_s,
                 decode.forwards ? decode.total_ms / decode.forwards : 0.0,
                 100.0 * decode_tok_s / roofline_tok_s, decode.experts_ms / per_layer_tokens,
                 decode.gpu_wait_ms / per_layer_tokens, decode.host_ms() / per_layer_tokens);
    runs.push_back({{"prompt_len", len},
                    {"prefill", {{"ms", prefill.total_ms},
                                 {"tokens_per_s", 1e3 * len / prefill.total_ms},
                                 {"per_moe_layer", Split(prefill, moe_layers)}}},
                    {"decode", {{"tokens", decode.forwards},
                                {"tokens_per_s", decode_tok_s},
                                {"per_token", Split(decode, std::max<int64_t>(1, decode.forwards))},
                                {"per_moe_layer_token", Split(decode, per_layer_tokens)},
                                {"roofline_fraction", decode_tok_s / roofline_tok_s}}}});
  }
  std::fprintf(log, "decode roofline: %.1f MB of routed experts per token / %.1f GB/s = %.2f "
               "tok/s; host ms per token = launches and host work (GPU launch overhead)\n",
               bytes_per_token / 1e6, limits.read_gbps, roofline_tok_s);
  if (f.json) {
    PrintJson({{"preset", f.preset},
               {"layers", config.num_layers},
               {"moe_layers", moe_layers},
               {"expert_dtype", ExpertFormatName(format)},
               {"experts", experts_describe},
               {"engine", engine->Describe()},
               {"cuda_graph", f.workers.cuda_graph},
               {"read_gbps", limits.read_gbps},
               {"expert_bytes_per_token", bytes_per_token},
               {"roofline_tokens_per_s", roofline_tok_s},
               {"runs", runs}});
  }
  return absl::OkStatus();
}

}  // namespace

Command AddBenchCommand(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  f->workers.workers = "0";
  app.add_option("--preset", f->preset, "model shapes: " + SyntheticPresetNames())->required();
  app.add_option("--layers", f->layers, "decoder layers to build (0: all)")->capture_default_str();
  app.add_flag("--synthetic", f->synthetic, "random weights built in memory (no checkpoint)");
  app.add_option("--prompt-lens", f->prompt_lens, "prefill lengths, comma-separated")
      ->capture_default_str();
  app.add_option("--decode-tokens", f->decode_tokens, "batch-1 decode steps after each prefill")
      ->capture_default_str();
  app.add_option("--seed", f->seed, "weights and prompts")->capture_default_str();
  app.add_flag("--json", f->json, "print one JSON object on stdout (the table goes to stderr)");
  AddWorkerFlags(app, f->workers);
  return [f]() { return RunBench(*f); };
}

}  // namespace tandem::cli
