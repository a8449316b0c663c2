// `tandem serve`: the OpenAI-compatible HTTP server and the gRPC Inference API over one model, with
// continuous batching.
// It listens at once (/health answers 503 while the model loads), serves until SIGTERM or SIGINT,
// then drains: new requests get 503, running ones finish (up to --drain-timeout), and it exits.
#include <signal.h>

#include "common/chat_template.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/cli/model_source.h"
#include "coordinator/loaded_model.h"
#include "coordinator/serving/inference_service.h"
#include "coordinator/serving/openai_server.h"
#include "coordinator/serving/scheduler.h"
#include "spdlog/spdlog.h"

namespace tandem::cli {
namespace {

struct ServeFlags {
  ModelSource source;
  std::string config, host = "0.0.0.0", served_model_name;
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
  f->source.Register(app);
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
                 f->source.synthetic ? "synthetic " + f->source.preset : f->source.model_dir);
    std::fprintf(stderr, "tandem serve: listening on %s:%d (HTTP)", f->host.c_str(),
                 server.port());
    if (grpc_server) std::fprintf(stderr, ", %s:%d (gRPC)", f->host.c_str(), grpc_server->port());
    std::fprintf(stderr, "\n");

    LoadOptions options;
    TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(f->workers, options));
    options.config_path = f->config;
    options.max_model_len = f->max_model_len;
    options.kv_cache_sequences = f->scheduler.max_num_seqs;  // when the size is automatic
    TANDEM_ASSIGN_OR_RETURN(SourcedModel model, LoadSourcedModel(f->source, options));
    Engine& engine = model.engine();
    const std::string dir = model.dir();
    ServedModel served;
    served.name = f->served_model_name.empty() ? model.name() : f->served_model_name;
    served.tokenizer = model.tokenizer();
    served.config = &model.config();
    served.max_model_len = model.max_model_len();
    served.device = engine.Describe();
    served.experts = engine.experts().Describe();
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
    Scheduler scheduler(engine, served.tokenizer, so, &metrics);
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
