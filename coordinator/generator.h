// The generation loop of one request: prefill the prompt, then decode one token at a time,
// sampling, stopping at an EOS id (unless ignore_eos), at max_tokens, or at the context limit, and
// streaming text deltas that are always whole UTF-8 characters. Engine thread only.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/sampler.h"

namespace tandem {

struct GenerateRequest {
  std::vector<int32_t> prompt_ids;
  int64_t max_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
};

struct GenerateResult {
  std::vector<int32_t> ids;   // generated tokens (an EOS that stopped generation included)
  std::string text;           // their decoded text, special tokens skipped
  std::string finish_reason;  // "stop" (EOS) or "length" (max_tokens or context full)
  // Wall time of the prompt's forward pass and of the single-token steps after it.
  double prefill_seconds = 0;
  double decode_seconds = 0;
  int64_t decode_steps = 0;
};

using TextCallback = std::function<void(std::string_view delta)>;

absl::StatusOr<GenerateResult> Generate(Engine& engine, const Tokenizer* tokenizer,
                                        int64_t max_model_len, const GenerateRequest& request,
                                        const TextCallback& on_text = nullptr);

}  // namespace tandem
