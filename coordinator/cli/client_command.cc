// `tandem client`: a command-line client of a server's gRPC Inference API (`tandem serve`):
// streams the generated text to stdout as it arrives, or prints the model's description (--info).
#include <cstdio>

#include "common/grpc_channel.h"
#include "common/grpc_status.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "tandem/v1/inference.grpc.pb.h"

namespace tandem::cli {
namespace {

struct ClientFlags {
  std::string addr = "localhost:50051";
  std::optional<std::string> prompt, prompt_ids, chat;
  int64_t max_tokens = 64;
  double temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int64_t top_k = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool ignore_eos = false, info = false, json = false;
  double timeout_s = 0, connect_timeout_s = 10;
};

absl::Status PrintInfo(v1::Inference::Stub& stub) {
  grpc::ClientContext context;
  v1::ModelInfoResponse info;
  TANDEM_RETURN_IF_ERROR(FromGrpcStatus(stub.ModelInfo(&context, v1::ModelInfoRequest(), &info)));
  PrintJson({{"name", info.name()},
             {"model_type", info.model_type()},
             {"max_model_len", info.max_model_len()},
             {"vocab_size", info.vocab_size()},
             {"num_layers", info.num_layers()},
             {"num_experts", info.num_experts()},
             {"experts_per_token", info.experts_per_token()},
             {"device", info.device()},
             {"experts", info.experts()},
             {"has_chat_template", info.has_chat_template()}});
  return absl::OkStatus();
}

}  // namespace

Command AddClientCommand(CLI::App& app) {
  auto f = std::make_shared<ClientFlags>();
  app.add_option("--addr", f->addr, "the server's gRPC address (HOST:PORT)")->capture_default_str();
  app.add_option("--prompt", f->prompt, "prompt text");
  app.add_option("--prompt-ids", f->prompt_ids, "prompt token ids, comma-separated");
  app.add_option("--chat", f->chat, "a user message, rendered with the model's chat template");
  app.add_option("--max-tokens", f->max_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--temperature", f->temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-p", f->top_p)->capture_default_str();
  app.add_option("--top-k", f->top_k, "0 = off")->capture_default_str();
  app.add_option("--min-p", f->min_p)->capture_default_str();
  app.add_option("--repetition-penalty", f->repetition_penalty)->capture_default_str();
  app.add_option("--seed", f->seed, "sampling seed");
  app.add_option("--stop", f->stop, "stop string (repeatable)");
  app.add_flag("--ignore-eos", f->ignore_eos, "do not stop at end-of-sequence tokens");
  app.add_option("--timeout", f->timeout_s, "seconds the request may take (0: no limit)");
  app.add_option("--connect-timeout", f->connect_timeout_s, "seconds to wait for the server")
      ->capture_default_str();
  app.add_flag("--info", f->info, "print the served model's description and exit");
  app.add_flag("--json", f->json, "print one JSON object (text, ids, finish reason, usage)");
  return [f]() -> absl::Status {
    TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                            ConnectChannel(f->addr, absl::Seconds(f->connect_timeout_s)));
    auto stub = v1::Inference::NewStub(channel);
    if (f->info) return PrintInfo(*stub);
    v1::GenerateRequest request;
    const int given = f->prompt.has_value() + f->prompt_ids.has_value() + f->chat.has_value();
    if (given != 1) return absl::InvalidArgumentError("give exactly one of --prompt, --prompt-ids, --chat");
    if (f->prompt) request.set_prompt(*f->prompt);
    if (f->prompt_ids) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIdList(*f->prompt_ids));
      for (int32_t id : ids) request.add_prompt_ids(id);
    }
    if (f->chat) {
      v1::ChatMessage* m = request.add_messages();
      m->set_role("user");
      m->set_content(*f->chat);
    }
    request.set_max_tokens(f->max_tokens);
    v1::SamplingOptions* s = request.mutable_sampling();
    s->set_temperature(f->temperature);
    s->set_top_p(f->top_p);
    s->set_top_k(f->top_k);
    s->set_min_p(f->min_p);
    s->set_repetition_penalty(f->repetition_penalty);
    if (f->seed) s->set_seed(*f->seed);
    for (const std::string& stop : f->stop) request.add_stop(stop);
    request.set_ignore_eos(f->ignore_eos);

    grpc::ClientContext context;
    if (f->timeout_s > 0)
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::microseconds(static_cast<int64_t>(f->timeout_s * 1e6)));
    auto reader = stub->Generate(&context, request);
    v1::GenerateResponse response;
    std::string text, finish_reason;
    std::vector<int32_t> ids;
    v1::Usage usage;
    while (reader->Read(&response)) {
      text += response.text();
      ids.insert(ids.end(), response.token_ids().begin(), response.token_ids().end());
      if (!f->json) {
        std::fwrite(response.text().data(), 1, response.text().size(), stdout);
        std::fflush(stdout);
      }
      if (!response.finish_reason().empty()) {
        finish_reason = response.finish_reason();
        usage = response.usage();
      }
    }
    TANDEM_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
    if (f->json) {
      PrintJson({{"text", text},
                 {"ids", ids},
                 {"finish_reason", finish_reason},
                 {"usage",
                  {{"prompt_tokens", usage.prompt_tokens()},
                   {"completion_tokens", usage.completion_tokens()}}}});
    } else {
      std::fputc('\n', stdout);
      std::fprintf(stderr, "finish reason %s; %lld prompt tokens, %lld generated\n",
                   finish_reason.c_str(), static_cast<long long>(usage.prompt_tokens()),
                   static_cast<long long>(usage.completion_tokens()));
    }
    return absl::OkStatus();
  };
}

}  // namespace tandem::cli
