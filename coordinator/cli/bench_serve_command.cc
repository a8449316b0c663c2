// `tandem bench-serve`: the serving benchmark. It serves a model (a checkpoint, or --synthetic
// random weights of a preset's shapes) with `tandem serve`'s scheduler and HTTP server on a free
// local port, then drives it with 1, 8, 32, ... concurrent streaming clients (bench/serve_load.h)
// and reports per level output tokens/s, time to first token and inter-token latency, with the
// output rate as a fraction of the batch-1 decode roofline (routed-expert bytes per token over the
// read bandwidth measured in the same run; batching may exceed it).
#include <omp.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/machine_limits.h"
#include "bench/serve_load.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/cli/model_source.h"
#include "coordinator/loaded_model.h"
#include "coordinator/serving/openai_server.h"
#include "coordinator/serving/scheduler.h"

namespace tandem::cli {
namespace {

struct BenchServeFlags {
  ModelSource source;
  std::string concurrency = "1,8,32";
  int requests_per_client = 3;
  int prompt_len = 128, max_tokens = 64;
  int64_t max_batch_tokens = 512;
  bool json = false;
  WorkerFlags workers;
};

absl::StatusOr<std::vector<int>> ParseLevels(const std::string& text) {
  std::vector<int> levels;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1)
      return absl::InvalidArgumentError(absl::StrCat("--concurrency: bad level \"", part, "\""));
    levels.push_back(v);
  }
  if (levels.empty()) return absl::InvalidArgumentError("--concurrency is empty");
  return levels;
}

absl::Status RunBenchServe(const BenchServeFlags& f) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> levels, ParseLevels(f.concurrency));
  if (f.prompt_len < 1 || f.max_tokens < 1 || f.requests_per_client < 1)
    return absl::InvalidArgumentError(
        "--prompt-len, --max-tokens and --requests-per-client must be >= 1");
  const int max_level = *std::max_element(levels.begin(), levels.end());
  const int64_t context = f.prompt_len + f.max_tokens + 1;
  FILE* log = f.json ? stderr : stdout;

  LoadOptions load;
  TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(f.workers, load));
  TANDEM_ASSIGN_OR_RETURN(load.device, ResolveDevice(load.device));
  load.max_model_len = context;
  load.load_tokenizer = false;  // the clients send token ids
  if (load.kv_cache_tokens == 0) load.kv_cache_tokens = (max_level + 1) * context;
  TANDEM_ASSIGN_OR_RETURN(SourcedModel model, LoadSourcedModel(f.source, load));
  Engine* engine = &model.engine();
  const ModelConfig* config = &model.config();
  const std::string name = model.name();
  const double bytes_per_token = model.bytes_per_token();
  const int threads = omp_get_max_threads();
  std::fprintf(log, "measuring read bandwidth (%d threads)...\n", threads);
  const bench::MachineLimits limits = bench::MeasureMachineLimits(threads);
  const double roofline = bytes_per_token > 0 ? limits.read_gbps * 1e9 / bytes_per_token : 0;

  SchedulerOptions so;
  so.max_model_len = context;
  so.max_num_seqs = max_level;
  so.max_batch_tokens = f.max_batch_tokens;
  so.max_waiting = 4 * max_level;
  ServingMetrics metrics;
  Scheduler scheduler(*engine, nullptr, so, &metrics);
  scheduler.Start();
  BackendSlot slot;
  OpenAiServer server(slot, metrics, 2 * max_level + 8);
  TANDEM_RETURN_IF_ERROR(server.Start("127.0.0.1", 0));
  ServedModel served;
  served.name = "bench";
  served.config = config;
  served.max_model_len = context;
  slot.Set({&scheduler, served, nullptr});
  std::fprintf(log, "%s on %s, experts %s; read bandwidth %.1f GB/s; batch-1 decode roofline "
               "%.2f tok/s (%.1f MB of routed experts per token)\n",
               name.c_str(), engine->Describe().c_str(), engine->experts().Describe().c_str(),
               limits.read_gbps, roofline, bytes_per_token / 1e6);

  bench::LoadLevel level;
  level.port = server.port();
  level.model = "bench";
  level.prompt_len = f.prompt_len;
  level.max_tokens = f.max_tokens;
  level.vocab_size = config->vocab_size;
  level.seed = f.source.seed;
  level.concurrency = 1;
  level.requests = 1;
  TANDEM_RETURN_IF_ERROR(bench::RunLoadLevel(level).status());  // warm-up
  std::fprintf(log, "%12s %9s %14s %12s %12s %12s %10s %10s\n", "concurrency", "requests",
               "output tok/s", "TTFT ms", "TTFT p50", "TTFT p99", "ITL ms", "/roofline");
  nlohmann::json rows = nlohmann::json::array();
  for (int c : levels) {
    level.concurrency = c;
    level.requests = c * f.requests_per_client;
    TANDEM_ASSIGN_OR_RETURN(bench::LoadResult r, bench::RunLoadLevel(level));
    if (r.failed > 0)
      return absl::InternalError(absl::StrCat(r.failed, " of ", r.requests,
                                              " requests failed, the first: ", r.first_error));
    const double fraction = roofline > 0 ? r.output_tokens_per_s / roofline : 0;
    std::fprintf(log, "%12d %9d %14.2f %12.1f %12.1f %12.1f %10.2f %10.3f\n", c, r.requests,
                 r.output_tokens_per_s, 1e3 * r.ttft_mean_s, 1e3 * r.ttft_p50_s,
                 1e3 * r.ttft_p99_s, 1e3 * r.itl_mean_s, fraction);
    rows.push_back({{"concurrency", c},
                    {"requests", r.requests},
                    {"output_tokens", r.output_tokens},
                    {"output_tokens_per_s", r.output_tokens_per_s},
                    {"ttft_ms", {{"mean", 1e3 * r.ttft_mean_s}, {"p50", 1e3 * r.ttft_p50_s},
                                 {"p99", 1e3 * r.ttft_p99_s}}},
                    {"itl_ms", 1e3 * r.itl_mean_s},
                    {"roofline_fraction", fraction}});
  }
  server.Stop();
  if (f.json) {
    PrintJson({{"model", name},
               {"engine", engine->Describe()},
               {"experts", engine->experts().Describe()},
               {"prompt_len", f.prompt_len},
               {"max_tokens", f.max_tokens},
               {"read_gbps", limits.read_gbps},
               {"roofline_tokens_per_s", roofline},
               {"levels", rows}});
  }
  return absl::OkStatus();
}

}  // namespace

Command AddBenchServeCommand(CLI::App& app) {
  auto f = std::make_shared<BenchServeFlags>();
  AddWorkerFlags(app, f->workers);
  f->source.Register(app);
  app.add_option("--concurrency", f->concurrency, "concurrent streams per level, comma-separated")
      ->capture_default_str();
  app.add_option("--requests-per-client", f->requests_per_client,
                 "requests each client sends one after another, per level")
      ->capture_default_str();
  app.add_option("--prompt-len", f->prompt_len, "prompt tokens (random ids)")->capture_default_str();
  app.add_option("--max-tokens", f->max_tokens, "generated tokens per request (EOS ignored)")
      ->capture_default_str();
  app.add_option("--max-num-batched-tokens", f->max_batch_tokens,
                 "tokens of one scheduler step (decode tokens plus prompt chunks)")
      ->capture_default_str();
  app.add_flag("--json", f->json, "print one JSON object on stdout (the table goes to stderr)");
  return [f] { return RunBenchServe(*f); };
}

}  // namespace tandem::cli
