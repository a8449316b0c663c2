// `tandem`: the coordinator binary. Subcommands: generate, logits, tokenize, demo, probe, topology,
// serve, client, bench, bench-serve.
#include <cstdio>
#include <vector>

#include "coordinator/cli/commands.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"Tandem: CPU/GPU hybrid inference for Mixture-of-Experts models"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")->capture_default_str();
  std::vector<std::pair<CLI::App*, tandem::cli::Command>> commands;
  auto add = [&](const char* name, const char* help, auto adder) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands.emplace_back(sub, adder(*sub));
  };
  add("generate", "generate text from a prompt", tandem::cli::AddGenerateCommand);
  add("logits", "print the last position's logits of a prompt", tandem::cli::AddLogitsCommand);
  add("tokenize", "tokenize text or a chat", tandem::cli::AddTokenizeCommand);
  add("demo", "write a small random-weight model and generate from it",
      tandem::cli::AddDemoCommand);
  add("probe", "wait until a gRPC server reports SERVING", tandem::cli::AddProbeCommand);
  add("topology", "show NUMA nodes, or plan worker placement", tandem::cli::AddTopologyCommand);
  add("serve", "serve a model over the OpenAI HTTP API, with continuous batching",
      tandem::cli::AddServeCommand);
  add("client", "stream a generation from a server's gRPC API", tandem::cli::AddClientCommand);
  add("bench", "hybrid prefill / decode benchmark on random weights of a real model's shapes",
      tandem::cli::AddBenchCommand);
  add("bench-serve", "serving benchmark: output tokens/s and time to first token at 1, 8, 32 "
      "concurrent streams", tandem::cli::AddBenchServeCommand);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_default_logger(spdlog::stderr_color_mt("tandem"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  for (auto& [sub, run] : commands) {
    if (!sub->parsed()) continue;
    absl::Status status = run();
    if (!status.ok()) {
      std::fprintf(stderr, "tandem %s: error: %s\n", sub->get_name().c_str(),
                   std::string(status.message()).c_str());
      return 1;
    }
  }
  return 0;
}
