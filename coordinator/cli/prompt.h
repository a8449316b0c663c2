// Helpers shared by the CLI's commands: prompt flags to token ids, worker flags, JSON output.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "common/tokenizer.h"
#include "coordinator/loaded_model.h"
#include "nlohmann/json.hpp"

namespace tandem::cli {

struct PromptFlags {
  std::optional<std::string> text;      // --prompt: tokenized with the BOS the tokenizer asks for
  std::optional<std::string> ids;       // --prompt-ids 1,2,3
  std::optional<std::string> chat;      // --chat "user message"
  std::optional<std::string> messages;  // --messages JSON list of {role, content}
};

// "1,2,3" -> ids; a clear error on anything else.
absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text);

// Exactly one of the flags must be set. Chats render the model directory's chat template with
// add_generation_prompt and are tokenized without adding special tokens again.
absl::StatusOr<std::vector<int32_t>> PromptToIds(const PromptFlags& flags,
                                                 const std::string& model_dir,
                                                 const Tokenizer* tokenizer);

// Renders `messages_json` (a JSON list) with the model's chat template.
absl::StatusOr<std::string> RenderChat(const std::string& model_dir,
                                       const std::string& messages_json,
                                       bool add_generation_prompt);

// --device auto|cpu|cuda, --kv-cache-tokens, --cuda-graph on|off, --ring-wait, --workers N|auto, --worker-addrs A,B,...,
// --shard-mode tp|ep, --cpu-kernel, --expert-dtype, --int4-group-size and --schedule (every
// command that loads a model).
struct WorkerFlags {
  std::string device = "auto";
  int64_t kv_cache_tokens = 0;
  std::string cuda_graph = "on";
  std::string ring_wait = "memop";
  std::string workers = "auto";
  std::string worker_addrs;
  std::string shard_mode = "tp";
  std::string cpu_kernel = "auto";
  std::string expert_dtype = "bf16";
  int64_t int4_group_size = 128;
  std::string schedule = "dynamic";
};
void AddWorkerFlags(CLI::App& app, WorkerFlags& flags);
absl::Status ApplyWorkerFlags(const WorkerFlags& flags, LoadOptions& options);

// One JSON object on one line of stdout (invalid UTF-8 replaced, never an exception).
void PrintJson(const nlohmann::json& object);

}  // namespace tandem::cli
