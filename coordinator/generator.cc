#include "coordinator/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace tandem {

absl::StatusOr<GenerateResult> Generate(Engine& engine, const Tokenizer* tokenizer,
                                        int64_t max_model_len, const GenerateRequest& request,
                                        const TextCallback& on_text) {
  TANDEM_RETURN_IF_ERROR(request.sampling.Validate());
  if (request.prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (request.max_tokens < 0) return absl::InvalidArgumentError("max_tokens must be >= 0");
  if (static_cast<int64_t>(request.prompt_ids.size()) > max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", request.prompt_ids.size(),
                                                   " tokens; the context length is ", max_model_len));
  }
  const std::vector<int32_t>& eos = engine.config().eos_token_ids;
  std::unique_ptr<SequenceCache> cache_owner = engine.NewCache(max_model_len);
  SequenceCache& cache = *cache_owner;
  Sampler sampler(request.sampling);
  std::optional<StreamingDecoder> decoder;
  if (tokenizer) decoder.emplace(*tokenizer, /*skip_special_tokens=*/true);

  GenerateResult result;
  result.finish_reason = "length";
  std::vector<int32_t> history = request.prompt_ids;
  std::vector<int32_t> step(request.prompt_ids);
  for (int64_t i = 0; i < request.max_tokens; ++i) {
    if (cache.length() + static_cast<int64_t>(step.size()) > max_model_len) break;
    const auto start = std::chrono::steady_clock::now();
    TANDEM_ASSIGN_OR_RETURN(const int32_t next,
                            engine.ForwardAndSample(step, cache, sampler, history));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i == 0) {
      result.prefill_seconds = seconds;
    } else {
      result.decode_seconds += seconds;
      ++result.decode_steps;
    }
    result.ids.push_back(next);
    history.push_back(next);
    if (decoder) {
      std::string delta = decoder->Add(next);
      result.text += delta;
      if (on_text && !delta.empty()) on_text(delta);
    }
    if (!request.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      result.finish_reason = "stop";
      break;
    }
    step.assign(1, next);
  }
  if (decoder) {
    std::string rest = decoder->Finish();
    result.text += rest;
    if (on_text && !rest.empty()) on_text(rest);
  }
  return result;
}

}  // namespace tandem
