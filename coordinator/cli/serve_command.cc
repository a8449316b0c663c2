// `tandem serve`: the OpenAI-compatible HTTP server and the gRPC Inference API over one model, with
// continuous batching.
// It listens at once (/health answers 503 while the model loads), serves until SIGTERM or SIGINT,
// then drains: new requests get 503, running ones finish (up to --drain-timeout), and it exits.
#include <signal.h>

#include <filesystem>

#include "common/chat_template.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/cli/synthetic_loader.h"
#include "coordinator/loaded_model.h"
#include "coordinator/serving/inference_service.h"
#include "coordinator/serving/openai_server.h"
#include "coordinator/serving/scheduler.h"
#include "spdlog/spdlog.h"

namespace tandem::cli {
namespace {

struct ServeFlags {
  std::string model, config, host = "0.0.0.0", served_model_name;
  bool synthetic = false;  // random weights of a preset's shapes instead of --model
  std::string preset;
  int64_t layers = 0;
  uint64_t seed = 1;
  int port = 8000;
  int grpc_port = 50051;
  int64_t max_model_len = 0;
  SchedulerOptions scheduler;
  double request_timeout_s = 0, drain_timeout_s = 30;
  WorkerFlags workers;
};

}  // namespace

Command AddServeCommand(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  AddWorkerFlags(app, f->workers);
  app.add_option("--model", f->model, "Hugging Face model directory");
  app.add_flag("--synthetic", f->synthetic,
               "serve random weights of --preset's shapes (token ids only: no tokenizer)");
  app.add_option("--preset", f->preset, "with --synthetic: qwen2-57b-a14b, deepseek-v3, ...");
  app.add_option("--layers", f->layers, "with --synthetic: decoder layers (0: all)");
  app.add_option("--seed", f->seed, "with --synthetic: the weights' seed")->capture_default_str();
  app.add_option("--config", f->config, "config.json to use instead of MODEL/config.json");
  app.add_option("--served-model-name", f->served_model_name,
                 "the model id clients name (default: the directory's name)");
  app.add_option("--host", f->host, "address to listen on")->capture_default_str();
  app.add_option("--port", f->port, "HTTP port (0: any free port, logged)")->capture_default_str();
  app.add_option("--grpc-port", f->grpc_port,
                 "gRPC port of the tandem.v1.Inference API (0: any free port, logged; -1: off)")
      ->capture_default_str();
  app.add_option("--max-model-len", f->max_model_len, "context length (default: the model's)");
  app.add_option("--max-num-seqs", f->scheduler.max_num_seqs, "requests in the running batch")
      ->capture_default_str();
  app.add_option("--max-num-batched-tokens", f->scheduler.max_batch_tokens,
                 "tokens of one step: decode tokens plus prompt chunks (chunked prefill)")
      ->capture_default_str();
  app.add_option("--max-waiting", f->scheduler.max_waiting,
                 "queued requests beyond which new ones get 429")
      ->capture_default_str();
  app.add_option("--request-timeout", f->request_timeout_s,
                 "seconds a request may take from arrival (0: no limit)")
      ->capture_default_str();
  app.add_option("--drain-timeout", f->drain_timeout_s,
                 "seconds running requests get to finish after SIGTERM")
      ->capture_default_str();
  return [f]() -> absl::Status {
    if (f->synthetic == !f->model.empty())
      return absl::InvalidArgumentError("give --model DIR or --synthetic --preset P, not both");
    if (f->scheduler.max_num_seqs < 1 || f->scheduler.max_batch_tokens < 1 ||
        f->scheduler.max_waiting < 0)
      return absl::InvalidArgumentError(
          "--max-num-seqs and --max-num-batched-tokens must be >= 1, --max-waiting >= 0");
    // Every thread started from here on inherits the blocked signals; this one takes them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    ServingMetrics metrics;
    BackendSlot slot;
    OpenAiServer server(slot, metrics, static_cast<int>(f->scheduler.max_num_seqs +
                                                        f->scheduler.max_waiting + 8));
    TANDEM_RETURN_IF_ERROR(server.Start(f->host, f->port));
    std::unique_ptr<GrpcInferenceServer> grpc_server;
    if (f->grpc_port >= 0) {
      TANDEM_ASSIGN_OR_RETURN(grpc_server, GrpcInferenceServer::Start(
                                               absl::StrCat(f->host, ":", f->grpc_port), slot));
    }
    spdlog::info("[serve] listening on http://{}:{} (loading {})", f->host, server.port(),
                 f->synthetic ? "synthetic " + f->preset : f->model);
    std::fprintf(stderr, "tandem serve: listening on %s:%d (HTTP)", f->host.c_str(),
                 server.port());
    if (grpc_server) std::fprintf(stderr, ", %s:%d (gRPC)", f->host.c_str(), grpc_server->port());
    std::fprintf(stderr, "\n");

    LoadOptions options;
    TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(f->workers, options));
    options.config_path = f->config;
    options.max_model_len = f->max_model_len;
    options.kv_cache_sequences = f->scheduler.max_num_seqs;  // when the size is automatic
    // The model: a checkpoint directory, or random weights of a preset's shapes.
    std::optional<LoadedModel> loaded;
    std::optional<SyntheticModel> synthetic;
    Engine* engine = nullptr;
    ServedModel served;
    std::string dir;
    if (f->synthetic) {
      TANDEM_ASSIGN_OR_RETURN(options.device, ResolveDevice(options.device));
      SyntheticRequest request{f->preset, f->layers, f->seed,
                               f->max_model_len > 0 ? f->max_model_len : 4096};
      request.kv_cache_tokens = options.kv_cache_tokens;
      TANDEM_ASSIGN_OR_RETURN(synthetic, LoadSyntheticModel(request, options));
      engine = synthetic->engine.get();
      served.name = f->preset;
      served.config = &synthetic->config;
      served.max_model_len = request.max_tokens;
    } else {
      TANDEM_ASSIGN_OR_RETURN(loaded, LoadModel(f->model, options));
      engine = loaded->engine.get();
      dir = loaded->dir;
      served.name = std::filesystem::path(dir).lexically_normal().filename().string();
      if (served.name.empty()) served.name = dir;
      served.tokenizer = loaded->tokenizer.get();
      served.config = &loaded->config;
      served.max_model_len = loaded->max_model_len;
    }
    if (!f->served_model_name.empty()) served.name = f->served_model_name;
    served.device = engine->Describe();
    served.experts = engine->experts().Describe();
    std::optional<ChatTemplateConfig> chat_config;
    std::optional<ChatTemplate> chat_template;
    if (dir.empty()) {
      // A synthetic model has no tokenizer or chat template.
    } else if (auto config = LoadChatTemplateConfig(dir); config.ok()) {
      auto parsed = ChatTemplate::Parse(config->chat_template);
      if (parsed.ok()) {
        chat_config = std::move(*config);
        chat_template = std::move(*parsed);
        served.chat_template = &*chat_template;
        served.chat_config = &*chat_config;
      } else {
        spdlog::warn("[serve] the chat template does not parse ({}): chat requests get 400",
                     parsed.status().ToString());
      }
    } else {
      spdlog::warn("[serve] no chat template ({}): chat requests get 400",
                   config.status().ToString());
    }

    SchedulerOptions so = f->scheduler;
    so.max_model_len = served.max_model_len;
    if (f->request_timeout_s > 0) so.request_timeout = absl::Seconds(f->request_timeout_s);
    Scheduler scheduler(*engine, served.tokenizer, so, &metrics);
    scheduler.Start();
    slot.Set({&scheduler, served, [&scheduler] { return scheduler.WorkerHealth(); }});
    spdlog::info("[serve] ready: model {} on {}, experts {}, up to {} requests in a batch",
                 served.name, served.device, served.experts, so.max_num_seqs);
    std::fprintf(stderr, "tandem serve: ready (model %s)\n", served.name.c_str());

    // Until a signal: keep the gRPC health status in step with the workers.
    int signal = -1;
    while (signal < 0) {
      if (grpc_server) grpc_server->SetServing(BackendHealth(slot.Get().get()).ok());
      const timespec tick{0, 500 * 1000 * 1000};
      siginfo_t info;
      signal = sigtimedwait(&signals, &info, &tick);
    }
    std::fprintf(stderr, "tandem serve: signal %d: draining\n", signal);
    scheduler.BeginDrain();
    if (grpc_server) grpc_server->SetServing(false);
    const bool idle = scheduler.WaitIdle(absl::Seconds(f->drain_timeout_s));
    if (!idle) spdlog::warn("[serve] drain timed out: cancelling what is left");
    server.Stop();
    if (grpc_server) grpc_server->Stop();
    std::fprintf(stderr, "tandem serve: stopped\n");
    return absl::OkStatus();
  };
}

}  // namespace tandem::cli
