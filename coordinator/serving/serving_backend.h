// What the API servers (OpenAI HTTP, gRPC Inference) serve, shared by both: the model as clients
// see it, the scheduler that runs requests, and the health check. The servers start before the
// model is loaded; a BackendSlot is empty until then (requests get UNAVAILABLE / 503).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/chat_template.h"
#include "common/model_config.h"
#include "common/tokenizer.h"
#include "coordinator/serving/scheduler.h"
#include "nlohmann/json.hpp"

namespace tandem {

struct ServedModel {
  std::string name;  // the id clients name (/v1/models, ModelInfo)
  const Tokenizer* tokenizer = nullptr;         // null: token ids only
  const ChatTemplate* chat_template = nullptr;  // null: chat requests are refused
  const ChatTemplateConfig* chat_config = nullptr;
  const ModelConfig* config = nullptr;
  int64_t max_model_len = 0;
  std::string device, experts;  // Engine::Describe and ExpertExecutor::Describe
};

// The prompt of a chat: `messages` ([{"role", "content"}], content a string) rendered with the
// model's chat template (generation prompt added) and tokenized. InvalidArgument, naming the
// message, for a role other than system, user, assistant or tool; also when the model has no
// chat template or the template fails on the messages.
absl::StatusOr<std::vector<int32_t>> ChatPromptIds(const ServedModel& model,
                                                   const nlohmann::ordered_json& messages);

struct ServingBackend {
  Scheduler* scheduler = nullptr;  // owned by whoever fills the slot
  ServedModel model;
  std::function<absl::Status()> health;  // null: always healthy
};

// Thread-safe holder of the current backend.
class BackendSlot {
 public:
  void Set(ServingBackend backend) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const ServingBackend> Get() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const ServingBackend> backend_ ABSL_GUARDED_BY(mu_);
};

// OK when `backend` is set, healthy and not draining; else Unavailable saying why.
absl::Status BackendHealth(const ServingBackend* backend);

}  // namespace tandem
