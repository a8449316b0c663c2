// Chat templates: renders a model's Jinja `chat_template` exactly as Hugging Face transformers'
// apply_chat_template(tokenize=False) does (jinja2 ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks and loopcontrols; `tojson` = json.dumps(ensure_ascii=False);
// globals raise_exception and strftime_now), using the interpreter in common/jinja/.
//
// Contract: ChatTemplate is immutable after Parse() and may be shared and rendered from many
// threads at once. Errors are absl::Status, never exceptions: syntax errors (including unknown
// filters/tests, as jinja2 reports them at compile time) are InvalidArgument with
// "line:column"; a template's raise_exception(msg) is InvalidArgument whose message is exactly
// msg; other render errors are InvalidArgument naming the template line; runaway templates
// (output > 256 MiB, > 10M loop iterations, call depth > 64) are ResourceExhausted.
//
// Supported Jinja subset and its limits: common/jinja/README.md.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

namespace jinja {
struct Stmt;
}  // namespace jinja

class ChatTemplate {
 public:
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // `context` is a JSON object of template variables, e.g. {"messages": [...],
  // "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "tools": [...]}.
  // Variables not given are undefined (transformers passes tools=None when there are none;
  // RenderChat below does the same).
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body)
      : body_(std::move(body)) {}
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// What a model directory says about chat formatting.
struct ChatTemplateConfig {
  std::string chat_template;  // the template source
  // transformers' special_tokens_map: bos_token, eos_token, unk_token, pad_token, ... (strings;
  // absent tokens are left out) — passed to the template as variables.
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};

// Reads MODEL_DIR/tokenizer_config.json: "chat_template" (a string, or a list of
// {"name", "template"} from which "default" is used) and the special tokens (string or
// {"content": ...}). A MODEL_DIR/chat_template.jinja (or chat_template.json) file, as newer
// transformers versions save, takes precedence over tokenizer_config.json's template.
absl::StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(const std::string& model_dir);

// Renders like tokenizer.apply_chat_template(messages, tokenize=False,
// add_generation_prompt=..., **extra_context): context = special tokens, messages,
// tools=None, documents=None, add_generation_prompt, then extra_context's keys (e.g. "tools",
// "enable_thinking") override.
absl::StatusOr<std::string> RenderChat(
    const ChatTemplate& chat_template, const ChatTemplateConfig& config,
    const nlohmann::ordered_json& messages, bool add_generation_prompt,
    const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

// LoadChatTemplateConfig + Parse + RenderChat in one call.
absl::StatusOr<std::string> RenderChatFromDirectory(
    const std::string& model_dir, const nlohmann::ordered_json& messages,
    bool add_generation_prompt,
    const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

}  // namespace tandem
