#include "coordinator/cli/prompt.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/chat_template.h"
#include "kernels/cpu/isa.h"

namespace tandem::cli {

absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int32_t id;
    if (part.empty() || !absl::SimpleAtoi(part, &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: \"", part, "\" is not a non-negative integer"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<std::string> RenderChat(const std::string& model_dir,
                                       const std::string& messages_json,
                                       bool add_generation_prompt) {
  auto messages = nlohmann::ordered_json::parse(messages_json, nullptr, /*allow_exceptions=*/false);
  if (messages.is_discarded() || !messages.is_array()) {
    return absl::InvalidArgumentError(
        "--messages must be a JSON list of {\"role\", \"content\"} objects");
  }
  return RenderChatFromDirectory(model_dir, messages, add_generation_prompt);
}

absl::StatusOr<std::vector<int32_t>> PromptToIds(const PromptFlags& f, const std::string& model_dir,
                                                 const Tokenizer* tokenizer) {
  const int given =
      f.text.has_value() + f.ids.has_value() + f.chat.has_value() + f.messages.has_value();
  if (given != 1) {
    return absl::InvalidArgumentError(
        "give exactly one of --prompt, --prompt-ids, --chat (or --messages)");
  }
  if (f.ids) return ParseIdList(*f.ids);
  if (!tokenizer) return absl::FailedPreconditionError("this model has no tokenizer");
  if (f.text) return tokenizer->Encode(*f.text, /*add_special_tokens=*/true);
  std::string messages_json;
  if (f.chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", *f.chat}});
    messages_json = messages.dump();
  } else {
    messages_json = *f.messages;
  }
  TANDEM_ASSIGN_OR_RETURN(std::string rendered, RenderChat(model_dir, messages_json, true));
  return tokenizer->Encode(rendered, /*add_special_tokens=*/false);
}

void AddWorkerFlags(CLI::App& app, WorkerFlags& flags) {
  app.add_option("--device", flags.device,
                 "where attention, router, shared experts and dense layers run: auto (CUDA when a "
                 "GPU is visible), cpu or cuda")
      ->capture_default_str();
  app.add_option("--kv-cache-tokens", flags.kv_cache_tokens,
                 "GPU KV cache size in tokens, over all sequences (0: sized from free GPU memory)")
      ->capture_default_str();
  app.add_option("--cuda-graph", flags.cuda_graph,
                 "GPU backend: replay each decode step as one CUDA graph, the waits on the expert "
                 "workers included: on|off")
      ->capture_default_str();
  app.add_option("--ring-wait", flags.ring_wait,
                 "GPU backend with workers: the GPU waits for them with a stream memory operation "
                 "on a flag in the ring (memop) or in a host function (host-func)")
      ->capture_default_str();
  app.add_option("--workers", flags.workers,
                 "expert worker processes: auto (one per NUMA node), N, or 0 (in-process)")
      ->capture_default_str();
  app.add_option("--worker-addrs", flags.worker_addrs,
                 "comma-separated addresses of workers already running (unix:PATH or HOST:PORT)");
  app.add_option("--shard-mode", flags.shard_mode,
                 "split experts across workers: tp (each expert's rows) or ep (whole experts)")
      ->capture_default_str();
  app.add_option("--cpu-kernel", flags.cpu_kernel,
                 "routed-expert kernel: auto|reference|avx512|amx (chosen from CPUID when auto)")
      ->capture_default_str();
  app.add_option("--expert-dtype", flags.expert_dtype,
                 "routed experts as stored for the CPU: bf16, int8 (per-channel) or int4 "
                 "(per group), quantized at load")
      ->capture_default_str();
  app.add_option("--int4-group-size", flags.int4_group_size, "int4 group size: 32 or 128")
      ->capture_default_str();
  app.add_option("--schedule", flags.schedule,
                 "expert tasks to threads: dynamic (shared counter) or static (fixed slices)")
      ->capture_default_str();
}

absl::Status ApplyWorkerFlags(const WorkerFlags& flags, LoadOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(options.device, ParseDevice(flags.device));
  if (flags.kv_cache_tokens < 0)
    return absl::InvalidArgumentError("--kv-cache-tokens must be >= 0");
  options.kv_cache_tokens = flags.kv_cache_tokens;
  if (flags.cuda_graph != "on" && flags.cuda_graph != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cuda-graph must be on or off, not \"", flags.cuda_graph, "\""));
  }
  options.cuda_graph = flags.cuda_graph == "on";
  if (flags.ring_wait != "memop" && flags.ring_wait != "host-func") {
    return absl::InvalidArgumentError(
        absl::StrCat("--ring-wait must be memop or host-func, not \"", flags.ring_wait, "\""));
  }
  options.ring_wait = flags.ring_wait;
  if (flags.workers == "auto") {
    options.workers = -1;
  } else if (!absl::SimpleAtoi(flags.workers, &options.workers) || options.workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers must be auto or a number >= 0, got \"", flags.workers, "\""));
  }
  for (absl::string_view a : absl::StrSplit(flags.worker_addrs, ',', absl::SkipEmpty()))
    options.worker_addrs.emplace_back(a);
  if (flags.shard_mode == "tp") {
    options.shard_mode = ShardPlan::Mode::kTensorParallel;
  } else if (flags.shard_mode == "ep") {
    options.shard_mode = ShardPlan::Mode::kExpertParallel;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard-mode must be tp or ep, got \"", flags.shard_mode, "\""));
  }
  TANDEM_ASSIGN_OR_RETURN(options.cpu_kernel, ParseCpuKernel(flags.cpu_kernel));
  // Fail here, before anything starts, when this machine cannot run the requested kernel.
  TANDEM_RETURN_IF_ERROR(ResolveCpuKernel(options.cpu_kernel).status());
  TANDEM_ASSIGN_OR_RETURN(options.expert_format,
                          ParseExpertFormat(flags.expert_dtype, flags.int4_group_size));
  TANDEM_ASSIGN_OR_RETURN(options.schedule, ParseMoeSchedule(flags.schedule));
  return absl::OkStatus();
}

void PrintJson(const nlohmann::json& object) {
  const std::string text = object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace tandem::cli
