#include "coordinator/engine.h"

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

}  // namespace tandem
