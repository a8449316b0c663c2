// Chat template rendering (see chat_template.h).
#include "common/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/jinja/ast.h"
#include "common/jinja/builtins.h"
#include "common/jinja/error.h"
#include "common/jinja/evaluator.h"
#include "common/jinja/parser.h"
#include "common/status.h"

namespace tandem {
namespace {

using jinja::Body;
using jinja::Expr;
using jinja::JinjaError;
using jinja::Stmt;

absl::Status ToStatus(const JinjaError& e) {
  switch (e.kind()) {
    case JinjaError::Kind::kSyntax:
      return absl::InvalidArgumentError(absl::StrCat("chat template syntax error at line ",
                                                     e.line(), ":", e.column(), ": ", e.message()));
    case JinjaError::Kind::kRaised:
      return absl::InvalidArgumentError(e.message());
    case JinjaError::Kind::kLimit:
      return absl::ResourceExhaustedError(
          absl::StrCat("chat template error at line ", e.line(), ": ", e.message()));
    case JinjaError::Kind::kRuntime:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("chat template error at line ", e.line(), ": ", e.message()));
}

// jinja2 rejects unknown filters and tests when compiling; so do we.
void CheckNames(const Expr* e) {
  if (e == nullptr) return;
  if (e->kind == Expr::Kind::kFilter && jinja::FindFilter(e->name) == nullptr) {
    throw JinjaError(JinjaError::Kind::kSyntax, absl::StrCat("No filter named '", e->name, "'."),
                     e->line, e->column);
  }
  if (e->kind == Expr::Kind::kTest && jinja::FindTest(e->name) == nullptr) {
    throw JinjaError(JinjaError::Kind::kSyntax, absl::StrCat("No test named '", e->name, "'."),
                     e->line, e->column);
  }
  for (const auto& a : e->args) CheckNames(a.get());
  for (const auto& [k, v] : e->kwargs) CheckNames(v.get());
}

void CheckNames(const Body& body) {
  for (const auto& s : body) {
    CheckNames(s->expr.get());
    CheckNames(s->filter.get());
    for (const auto& [cond, branch] : s->branches) {
      CheckNames(cond.get());
      CheckNames(branch);
    }
    for (const auto& p : s->params) CheckNames(p.default_value.get());
    for (const auto& [t, v] : s->assigns) CheckNames(v.get());
    CheckNames(s->body);
    CheckNames(s->else_body);
  }
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  return ss.str();
}

absl::StatusOr<nlohmann::ordered_json> ReadJson(const std::filesystem::path& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/
                                                           false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not valid JSON"));
  }
  return j;
}

absl::StatusOr<std::string> TemplateFromJson(const nlohmann::ordered_json& t,
                                             const std::string& where) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& entry : t) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return entry["template"].get<std::string>();
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": multiple chat templates with no \"default\" one"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": \"chat_template\" must be a string or a list of templates"));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  try {
    auto body = std::make_shared<Body>(jinja::Parse(source));
    CheckNames(*body);
    return ChatTemplate(std::move(body));
  } catch (const JinjaError& e) {
    return ToStatus(e);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("chat template parse failed: ", e.what()));
  }
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  try {
    std::vector<std::pair<std::string, jinja::Value>> vars;
    for (auto it = context.begin(); it != context.end(); ++it) {
      vars.emplace_back(it.key(), jinja::Value::FromJson(it.value()));
    }
    jinja::Evaluator evaluator;
    return evaluator.Render(*body_, std::move(vars));
  } catch (const JinjaError& e) {
    return ToStatus(e);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("chat template render failed: ", e.what()));
  }
}

absl::StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  ChatTemplateConfig config;
  nlohmann::ordered_json tok = nlohmann::ordered_json::object();
  fs::path tok_path = dir / "tokenizer_config.json";
  std::error_code ec;
  if (fs::exists(tok_path, ec)) {
    TANDEM_ASSIGN_OR_RETURN(tok, ReadJson(tok_path));
    if (!tok.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(tok_path.string(), " is not an object"));
    }
  }
  if (fs::exists(dir / "chat_template.jinja", ec)) {
    TANDEM_ASSIGN_OR_RETURN(config.chat_template, ReadFile(dir / "chat_template.jinja"));
  } else if (fs::exists(dir / "chat_template.json", ec)) {
    TANDEM_ASSIGN_OR_RETURN(auto j, ReadJson(dir / "chat_template.json"));
    if (!j.is_object() || !j.contains("chat_template")) {
      return absl::InvalidArgumentError("chat_template.json has no \"chat_template\"");
    }
    TANDEM_ASSIGN_OR_RETURN(config.chat_template,
                            TemplateFromJson(j["chat_template"], "chat_template.json"));
  } else if (tok.contains("chat_template") && !tok["chat_template"].is_null()) {
    TANDEM_ASSIGN_OR_RETURN(config.chat_template,
                            TemplateFromJson(tok["chat_template"], tok_path.string()));
  } else {
    return absl::NotFoundError(absl::StrCat("no chat template in ", model_dir,
                                            " (tokenizer_config.json has no \"chat_template\")"));
  }
  static const char* kTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                  "pad_token", "cls_token", "mask_token"};
  for (const char* name : kTokens) {
    if (!tok.contains(name)) continue;
    const auto& t = tok[name];
    if (t.is_string()) {
      config.special_tokens[name] = t;
    } else if (t.is_object() && t.contains("content") && t["content"].is_string()) {
      config.special_tokens[name] = t["content"];
    }
  }
  if (tok.contains("additional_special_tokens") && tok["additional_special_tokens"].is_array() &&
      !tok["additional_special_tokens"].empty()) {
    nlohmann::ordered_json extra = nlohmann::ordered_json::array();
    for (const auto& t : tok["additional_special_tokens"]) {
      if (t.is_string()) extra.push_back(t);
      if (t.is_object() && t.contains("content")) extra.push_back(t["content"]);
    }
    config.special_tokens["additional_special_tokens"] = std::move(extra);
  }
  return config;
}

absl::StatusOr<std::string> RenderChat(const ChatTemplate& chat_template,
                                       const ChatTemplateConfig& config,
                                       const nlohmann::ordered_json& messages,
                                       bool add_generation_prompt,
                                       const nlohmann::ordered_json& extra_context) {
  if (!extra_context.is_object()) {
    return absl::InvalidArgumentError("extra chat template context must be a JSON object");
  }
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  for (auto it = config.special_tokens.begin(); it != config.special_tokens.end(); ++it) {
    context[it.key()] = it.value();
  }
  for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
    context[it.key()] = it.value();
  }
  return chat_template.Render(context);
}

absl::StatusOr<std::string> RenderChatFromDirectory(const std::string& model_dir,
                                                    const nlohmann::ordered_json& messages,
                                                    bool add_generation_prompt,
                                                    const nlohmann::ordered_json& extra_context) {
  TANDEM_ASSIGN_OR_RETURN(ChatTemplateConfig config, LoadChatTemplateConfig(model_dir));
  TANDEM_ASSIGN_OR_RETURN(ChatTemplate chat_template, ChatTemplate::Parse(config.chat_template));
  return RenderChat(chat_template, config, messages, add_generation_prompt, extra_context);
}

}  // namespace tandem
