#include "coordinator/cli/model_source.h"

#include <filesystem>

namespace tandem::cli {

void ModelSource::Register(CLI::App& app) {
  app.add_option("--model", model_dir, "Hugging Face model directory");
  app.add_flag("--synthetic", synthetic,
               "random weights of --preset's shapes instead (token ids only: no tokenizer)");
  app.add_option("--preset", preset, "with --synthetic: qwen2-57b-a14b, deepseek-v3, ...");
  app.add_option("--layers", layers, "with --synthetic: decoder layers (0: all)");
  app.add_option("--seed", seed, "seed of the synthetic weights (and of bench-serve's prompts)")
      ->capture_default_str();
}

absl::StatusOr<SourcedModel> LoadSourcedModel(const ModelSource& source, LoadOptions options) {
  if (source.synthetic == !source.model_dir.empty())
    return absl::InvalidArgumentError("give --model DIR or --synthetic --preset P, not both");
  SourcedModel m;
  if (source.synthetic) {
    TANDEM_ASSIGN_OR_RETURN(options.device, ResolveDevice(options.device));
    const SyntheticRequest request{source.preset, source.layers, source.seed,
                                   options.max_model_len > 0 ? options.max_model_len : 4096,
                                   options.kv_cache_tokens};
    TANDEM_ASSIGN_OR_RETURN(m.synthetic_, LoadSyntheticModel(request, options));
    m.name_ = source.preset;
    m.synthetic_max_tokens_ = request.max_tokens;
    m.bytes_per_token_ = m.synthetic_->bytes_per_token;
  } else {
    TANDEM_ASSIGN_OR_RETURN(m.loaded_, LoadModel(source.model_dir, options));
    m.name_ = std::filesystem::path(m.loaded_->dir).lexically_normal().filename().string();
    if (m.name_.empty()) m.name_ = m.loaded_->dir;
    m.bytes_per_token_ = EstimatedExpertBytesPerToken(m.loaded_->config, options.expert_format);
  }
  return m;
}

}  // namespace tandem::cli
