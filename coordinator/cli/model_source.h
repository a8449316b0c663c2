// What `tandem serve` and `tandem bench-serve` run: a checkpoint directory (--model DIR) or random
// weights of a preset's shapes (--synthetic --preset P [--layers L] [--seed S]), loaded behind one
// type, so the two commands pick and describe their model the same way. Engine thread.
#pragma once

#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "coordinator/cli/synthetic_loader.h"
#include "coordinator/loaded_model.h"

namespace tandem::cli {

struct ModelSource {
  std::string model_dir;
  bool synthetic = false;
  std::string preset;
  int64_t layers = 0;
  uint64_t seed = 1;

  // --model, --synthetic, --preset, --layers, --seed.
  void Register(CLI::App& app);
};

class SourcedModel {
 public:
  Engine& engine() { return loaded_ ? *loaded_->engine : *synthetic_->engine; }
  const ModelConfig& config() const { return loaded_ ? loaded_->config : synthetic_->config; }
  const Tokenizer* tokenizer() const { return loaded_ ? loaded_->tokenizer.get() : nullptr; }
  // The checkpoint directory; empty for a synthetic model.
  std::string dir() const { return loaded_ ? loaded_->dir : std::string(); }
  // The directory's last component, or the preset.
  const std::string& name() const { return name_; }
  int64_t max_model_len() const {
    return loaded_ ? loaded_->max_model_len : synthetic_max_tokens_;
  }
  // Routed-expert bytes one decode token reads.
  double bytes_per_token() const { return bytes_per_token_; }

 private:
  friend absl::StatusOr<SourcedModel> LoadSourcedModel(const ModelSource&, LoadOptions);
  std::optional<LoadedModel> loaded_;
  std::optional<SyntheticModel> synthetic_;
  std::string name_;
  int64_t synthetic_max_tokens_ = 0;
  double bytes_per_token_ = 0;
};

// Exactly one of --model and --synthetic, else InvalidArgument. A synthetic model's context is
// options.max_model_len (0: 4096); its GPU KV cache options.kv_cache_tokens (0: automatic).
absl::StatusOr<SourcedModel> LoadSourcedModel(const ModelSource& source, LoadOptions options);

}  // namespace tandem::cli
