#include "coordinator/loaded_model.h"

#include "coordinator/in_process_expert_executor.h"
#include "spdlog/spdlog.h"

namespace tandem {

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options) {
  LoadedModel m;
  m.dir = dir;
  TANDEM_ASSIGN_OR_RETURN(m.config, LoadModelConfig(dir, options.config_path));
  m.max_model_len = m.config.max_position_embeddings;
  if (options.max_model_len > 0) {
    if (options.max_model_len > m.config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max-model-len ", options.max_model_len, " exceeds the model's max_position_embeddings ",
          m.config.max_position_embeddings));
    }
    m.max_model_len = options.max_model_len;
  }
  if (options.load_tokenizer) {
    TANDEM_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromDirectory(dir));
    if (m.tokenizer->vocab_size() > m.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": tokenizer has ", m.tokenizer->vocab_size(), " tokens but the model's vocab_size is ",
          m.config.vocab_size));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(m.checkpoint, Checkpoint::Open(dir));
  TANDEM_ASSIGN_OR_RETURN(auto experts, InProcessExpertExecutor::Create(m.config, *m.checkpoint));
  spdlog::info("[coordinator] {}: {} layers ({} MoE), {} experts top-{}, experts {}", dir,
               m.config.num_layers, m.config.NumMoeLayers(), m.config.moe.num_experts,
               m.config.moe.top_k, experts->Describe());
  TANDEM_ASSIGN_OR_RETURN(m.engine, CpuEngine::Create(m.config, *m.checkpoint, std::move(experts)));
  return m;
}

}  // namespace tandem
