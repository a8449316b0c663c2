// generate, logits and tokenize: the subcommands that open a model directory.
#include <cstdio>

#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"

namespace tandem::cli {
namespace {

struct ModelFlags {
  std::string model;
  std::string config;  // alternative config.json (e.g. another layout of the same checkpoint)
  int64_t max_model_len = 0;
  bool json = false;
  WorkerFlags workers;

  void Register(CLI::App& app) {
    AddWorkerFlags(app, workers);
    app.add_option("--model", model, "Hugging Face model directory")->required();
    app.add_option("--config", config, "config.json to use instead of MODEL/config.json");
    app.add_option("--max-model-len", max_model_len, "context length (default: the model's)");
    app.add_flag("--json", json, "print one JSON object on stdout");
  }
  absl::StatusOr<LoadOptions> Options(bool tokenizer = true) const {
    LoadOptions o;
    TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(workers, o));
    o.config_path = config;
    o.max_model_len = max_model_len;
    o.load_tokenizer = tokenizer;
    return o;
  }
};

void AddPromptFlags(CLI::App& app, PromptFlags& p) {
  app.add_option("--prompt", p.text, "prompt text (BOS added as the tokenizer asks)");
  app.add_option("--prompt-ids", p.ids, "prompt token ids, comma-separated");
  app.add_option("--chat", p.chat, "a user message, rendered with the chat template");
  app.add_option("--messages", p.messages, "a JSON list of chat messages");
}

}  // namespace

Command AddGenerateCommand(CLI::App& app) {
  auto model = std::make_shared<ModelFlags>();
  auto prompt = std::make_shared<PromptFlags>();
  auto req = std::make_shared<GenerateRequest>();
  auto seed = std::make_shared<std::optional<uint64_t>>();
  model->Register(app);
  AddPromptFlags(app, *prompt);
  app.add_option("--max-tokens", req->max_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--temperature", req->sampling.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-p", req->sampling.top_p)->capture_default_str();
  app.add_option("--top-k", req->sampling.top_k, "0 = off")->capture_default_str();
  app.add_option("--min-p", req->sampling.min_p)->capture_default_str();
  app.add_option("--repetition-penalty", req->sampling.repetition_penalty)->capture_default_str();
  app.add_option("--seed", *seed, "sampling seed");
  app.add_flag("--ignore-eos", req->ignore_eos, "do not stop at end-of-sequence tokens");
  return [=]() -> absl::Status {
    req->sampling.seed = *seed;
    TANDEM_RETURN_IF_ERROR(req->sampling.Validate());
    TANDEM_ASSIGN_OR_RETURN(LoadOptions options, model->Options());
    TANDEM_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(model->model, options));
    TANDEM_ASSIGN_OR_RETURN(req->prompt_ids, PromptToIds(*prompt, m.dir, m.tokenizer.get()));
    TextCallback stream;
    if (!model->json) {
      stream = [](std::string_view delta) {
        std::fwrite(delta.data(), 1, delta.size(), stdout);
        std::fflush(stdout);
      };
    }
    TANDEM_ASSIGN_OR_RETURN(GenerateResult r,
                            Generate(*m.engine, m.tokenizer.get(), m.max_model_len, *req, stream));
    const double ms_per_token = r.decode_steps ? 1e3 * r.decode_seconds / r.decode_steps : 0.0;
    if (model->json) {
      PrintJson({{"prompt_ids", req->prompt_ids},
                 {"ids", r.ids},
                 {"text", r.text},
                 {"finish_reason", r.finish_reason},
                 {"timing",
                  {{"prefill_ms", 1e3 * r.prefill_seconds},
                   {"decode_steps", r.decode_steps},
                   {"decode_ms_per_token", ms_per_token}}}});
    } else {
      std::fputc('\n', stdout);
      std::fprintf(stderr, "prefill: %zu tokens in %.1f ms; decode: %lld tokens, %.2f ms/token; experts: %s\n",
                   req->prompt_ids.size(), 1e3 * r.prefill_seconds,
                   static_cast<long long>(r.decode_steps), ms_per_token,
                   m.engine->experts().Describe().c_str());
    }
    return absl::OkStatus();
  };
}

Command AddLogitsCommand(CLI::App& app) {
  auto model = std::make_shared<ModelFlags>();
  auto prompt = std::make_shared<PromptFlags>();
  model->Register(app);
  AddPromptFlags(app, *prompt);
  return [=]() -> absl::Status {
    const bool needs_tokenizer = !prompt->ids.has_value();
    TANDEM_ASSIGN_OR_RETURN(LoadOptions options, model->Options(needs_tokenizer));
    TANDEM_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(model->model, options));
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, PromptToIds(*prompt, m.dir, m.tokenizer.get()));
    if (ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
    std::unique_ptr<SequenceCache> cache = m.engine->NewCache(m.max_model_len);
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> logits, m.engine->Forward(ids, *cache));
    if (model->json) {
      PrintJson({{"prompt_ids", ids}, {"logits", logits}});
    } else {
      for (size_t i = 0; i < logits.size(); ++i) std::printf("%zu\t%.6f\n", i, logits[i]);
    }
    return absl::OkStatus();
  };
}

Command AddTokenizeCommand(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto text = std::make_shared<std::optional<std::string>>();
  auto messages = std::make_shared<std::optional<std::string>>();
  auto flags = std::make_shared<std::array<bool, 3>>();  // generation prompt, special tokens, json
  app.add_option("--model", *model, "Hugging Face model directory")->required();
  app.add_option("--text", *text, "text to tokenize (no special tokens added)");
  app.add_option("--messages", *messages, "a JSON list of chat messages to render and tokenize");
  app.add_flag("--add-generation-prompt", (*flags)[0], "with --messages: end with the assistant prompt");
  app.add_flag("--add-special-tokens", (*flags)[1], "with --text: add the BOS/EOS the tokenizer asks for");
  app.add_flag("--json", (*flags)[2], "print one JSON object on stdout");
  return [=]() -> absl::Status {
    if (text->has_value() == messages->has_value())
      return absl::InvalidArgumentError("give exactly one of --text and --messages");
    TANDEM_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::FromDirectory(*model));
    std::vector<int32_t> ids;
    std::string rendered;
    if (text->has_value()) {
      ids = tokenizer->Encode(**text, (*flags)[1]);
    } else {
      TANDEM_ASSIGN_OR_RETURN(rendered, RenderChat(*model, **messages, (*flags)[0]));
      ids = tokenizer->Encode(rendered, /*add_special_tokens=*/false);
    }
    if ((*flags)[2]) {
      nlohmann::json out = {{"ids", ids}};
      if (messages->has_value()) out["text"] = rendered;
      PrintJson(out);
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
    return absl::OkStatus();
  };
}

}  // namespace tandem::cli
