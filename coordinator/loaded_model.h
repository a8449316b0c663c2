// A model directory opened for serving: config, tokenizer, checkpoint and the CPU engine with
// its expert executor. Created once at start-up; then driven by one engine thread.
#pragma once

#include <memory>
#include <string>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "common/tokenizer.h"
#include "coordinator/cpu_engine.h"

namespace tandem {

struct LoadOptions {
  std::string config_path;    // default: DIR/config.json
  int64_t max_model_len = 0;  // 0: max_position_embeddings
  bool load_tokenizer = true;
};

struct LoadedModel {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Tokenizer> tokenizer;  // null when not requested
  std::unique_ptr<CpuEngine> engine;
  int64_t max_model_len = 0;
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options);

}  // namespace tandem
