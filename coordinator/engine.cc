#include "coordinator/engine.h"

#include <unordered_set>

namespace tandem {

absl::StatusOr<Device> ParseDevice(const std::string& name) {
  if (name == "auto") return Device::kAuto;
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, cpu or cuda, got \"", name, "\""));
}

std::string_view DeviceName(Device device) {
  switch (device) {
    case Device::kAuto: return "auto";
    case Device::kCpu: return "cpu";
    case Device::kCuda: return "cuda";
  }
  return "?";
}

absl::Status ValidateForwardInput(const ModelConfig& config, std::span<const int32_t> tokens,
                                  const SequenceCache& cache) {
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  if (num_tokens == 0) return absl::InvalidArgumentError("no tokens to run");
  if (cache.length() + num_tokens > cache.capacity()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence of ", cache.length() + num_tokens,
                     " tokens exceeds the context length ", cache.capacity()));
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= config.vocab_size)
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary [0, ", config.vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> Engine::ForwardAndSample(std::span<const int32_t> tokens,
                                                 SequenceCache& cache, Sampler& sampler,
                                                 std::span<const int32_t> history) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> logits, Forward(tokens, cache));
  return sampler.Sample(logits, history);
}

absl::Status ValidateBatchInput(const ModelConfig& config, std::span<const SequenceStep> steps) {
  if (steps.empty()) return absl::InvalidArgumentError("a batched step needs a sequence");
  std::unordered_set<const SequenceCache*> seen;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].cache == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " of the step has no cache"));
    if (!seen.insert(steps[i].cache).second)
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, " of the step repeats another's cache"));
    if (absl::Status s = ValidateForwardInput(config, steps[i].tokens, *steps[i].cache); !s.ok())
      return absl::Status(s.code(), absl::StrCat("sequence ", i, " of the step: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateBatchSampling(std::span<const SequenceStep> steps,
                                   std::span<Sampler* const> samplers,
                                   std::span<const std::span<const int32_t>> histories) {
  if (samplers.size() != steps.size() || histories.size() != steps.size())
    return absl::InvalidArgumentError("a batched step needs one sampler and history per sequence");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<float>>> Engine::ForwardBatch(
    std::span<const SequenceStep> steps) {
  TANDEM_RETURN_IF_ERROR(ValidateBatchInput(config(), steps));
  std::vector<std::vector<float>> logits;
  for (const SequenceStep& step : steps) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> one, Forward(step.tokens, *step.cache));
    logits.push_back(std::move(one));
  }
  return logits;
}

absl::StatusOr<std::vector<int32_t>> Engine::ForwardBatchAndSample(
    std::span<const SequenceStep> steps, std::span<Sampler* const> samplers,
    std::span<const std::span<const int32_t>> histories) {
  TANDEM_RETURN_IF_ERROR(ValidateBatchSampling(steps, samplers, histories));
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::vector<float>> logits, ForwardBatch(steps));
  std::vector<int32_t> tokens(steps.size());
  for (size_t i = 0; i < steps.size(); ++i)
    tokens[i] = samplers[i] ? samplers[i]->Sample(logits[i], histories[i]) : -1;
  return tokens;
}

}  // namespace tandem
