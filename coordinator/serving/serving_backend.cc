#include "coordinator/serving/serving_backend.h"

namespace tandem {

absl::StatusOr<std::vector<int32_t>> ChatPromptIds(const ServedModel& model,
                                                   const nlohmann::ordered_json& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string role = messages[i].value("role", "");
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      return absl::InvalidArgumentError(absl::StrCat(
          "messages[", i, "].role must be system, user, assistant or tool, got \"", role, "\""));
  }
  if (!model.chat_template || !model.chat_config || !model.tokenizer)
    return absl::InvalidArgumentError("this model has no chat template: send a plain prompt");
  absl::StatusOr<std::string> prompt = RenderChat(*model.chat_template, *model.chat_config,
                                                  messages, /*add_generation_prompt=*/true);
  if (!prompt.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("the chat template failed on these messages: ", prompt.status().message()));
  return model.tokenizer->Encode(*prompt, /*add_special_tokens=*/false);
}

void BackendSlot::Set(ServingBackend backend) {
  auto b = std::make_shared<const ServingBackend>(std::move(backend));
  absl::MutexLock lock(&mu_);
  backend_ = std::move(b);
}

std::shared_ptr<const ServingBackend> BackendSlot::Get() const {
  absl::MutexLock lock(&mu_);
  return backend_;
}

absl::Status BackendHealth(const ServingBackend* backend) {
  if (backend == nullptr) return absl::UnavailableError("the model is loading");
  if (backend->scheduler->Snapshot().draining)
    return absl::UnavailableError("the server is shutting down");
  if (backend->health) {
    absl::Status s = backend->health();
    if (!s.ok()) return absl::UnavailableError(s.message());
  }
  return absl::OkStatus();
}

}  // namespace tandem
