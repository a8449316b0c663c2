#include "coordinator/serving/openai_protocol.h"

namespace tandem {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("'", field, "' ", what));
}

// Optional number fields with a range check.
absl::Status ReadNumber(const json& body, const char* field, double lo, double hi,
                        double& out) {
  if (!body.contains(field) || body[field].is_null()) return absl::OkStatus();
  if (!body[field].is_number()) return FieldError(field, "must be a number");
  out = body[field].get<double>();
  if (!(out >= lo && out <= hi))
    return FieldError(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", out));
  return absl::OkStatus();
}

absl::Status ReadInteger(const json& body, const char* field, int64_t& out, bool& present) {
  present = body.contains(field) && !body[field].is_null();
  if (!present) return absl::OkStatus();
  if (!body[field].is_number_integer()) return FieldError(field, "must be an integer");
  out = body[field].get<int64_t>();
  return absl::OkStatus();
}

// The text of a chat message's content: a string, or an array of {"type": "text", "text"} parts.
absl::StatusOr<std::string> MessageText(const json& content, size_t index) {
  const std::string field = absl::StrCat("messages[", index, "].content");
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return FieldError(field, "must be a string or an array of parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      return FieldError(field, "parts must be {\"type\": \"text\", \"text\": ...}");
    text += part["text"].get<std::string>();
  }
  return text;
}

absl::StatusOr<std::vector<int32_t>> ChatPrompt(const json& body, const ServedModel& model) {
  if (!body.contains("messages")) return FieldError("messages", "is required");
  const json& messages = body["messages"];
  if (!messages.is_array() || messages.empty())
    return FieldError("messages", "must be a non-empty array");
  nlohmann::ordered_json rendered_messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object()) return FieldError(absl::StrCat("messages[", i, "]"), "must be an object");
    if (!m.contains("role") || !m["role"].is_string())
      return FieldError(absl::StrCat("messages[", i, "].role"), "must be a string");
    const std::string role = m["role"].get<std::string>();  // checked by ChatPromptIds
    std::string text;
    if (m.contains("content") && !m["content"].is_null()) {
      TANDEM_ASSIGN_OR_RETURN(text, MessageText(m["content"], i));
    } else if (role != "assistant") {
      return FieldError(absl::StrCat("messages[", i, "].content"), "is required");
    }
    rendered_messages.push_back({{"role", role == "developer" ? "system" : role}, {"content", text}});
  }
  return ChatPromptIds(model, rendered_messages);
}

absl::StatusOr<std::vector<int32_t>> CompletionPrompt(const json& body, const ServedModel& model) {
  if (!body.contains("prompt")) return FieldError("prompt", "is required");
  json prompt = body["prompt"];
  // A one-element batch is one prompt; larger batches need n prompts' worth of choices.
  if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || prompt[0].is_array()))
    prompt = prompt[0];
  if (prompt.is_string()) {
    if (!model.tokenizer)
      return absl::InvalidArgumentError("this model has no tokenizer: send token ids");
    return model.tokenizer->Encode(prompt.get<std::string>(), /*add_special_tokens=*/true);
  }
  if (prompt.is_array()) {
    std::vector<int32_t> ids;
    for (const json& id : prompt) {
      if (!id.is_number_integer())
        return FieldError("prompt", "must be a string, or an array of token ids (one prompt)");
      const int64_t v = id.get<int64_t>();
      if (v < 0 || v > INT32_MAX) return FieldError("prompt", absl::StrCat("has a bad token id ", v));
      ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
  }
  return FieldError("prompt", "must be a string or an array of token ids");
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const std::string& body_text, bool chat,
                                                         const ServedModel& model) {
  json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    return absl::InvalidArgumentError("the body is not valid JSON (or not valid UTF-8)");
  if (!body.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  CompletionRequest out;
  out.chat = chat;
  if (body.contains("model")) {
    if (!body["model"].is_string()) return FieldError("model", "must be a string");
    out.model = body["model"].get<std::string>();
    if (out.model != model.name)
      return absl::NotFoundError(absl::StrCat("The model `", out.model, "` does not exist."));
  }
  out.model = model.name;
  ServeRequest& r = out.request;
  if (chat) {
    TANDEM_ASSIGN_OR_RETURN(r.prompt_ids, ChatPrompt(body, model));
  } else {
    TANDEM_ASSIGN_OR_RETURN(r.prompt_ids, CompletionPrompt(body, model));
  }
  if (r.prompt_ids.empty()) return FieldError(chat ? "messages" : "prompt", "is empty");
  const int64_t prompt = static_cast<int64_t>(r.prompt_ids.size());
  if (prompt > model.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "This model's maximum context length is ", model.max_model_len,
        " tokens. However, your prompt has ", prompt, " tokens."));
  }
  bool present = false;
  int64_t max_tokens = 0;
  TANDEM_RETURN_IF_ERROR(ReadInteger(body, "max_tokens", max_tokens, present));
  if (!present && chat) {
    TANDEM_RETURN_IF_ERROR(ReadInteger(body, "max_completion_tokens", max_tokens, present));
  }
  if (present && max_tokens < 1)
    return FieldError("max_tokens", absl::StrCat("must be at least 1, got ", max_tokens));
  // Defaults: OpenAI's 16 for completions; the rest of the context for chat.
  r.max_tokens = present ? max_tokens : chat ? model.max_model_len - prompt : 16;
  r.max_tokens = std::max<int64_t>(1, std::min(r.max_tokens, model.max_model_len - prompt + 1));

  double temperature = 1.0, top_p = 1.0, min_p = 0.0, repetition_penalty = 1.0;
  TANDEM_RETURN_IF_ERROR(ReadNumber(body, "temperature", 0, 2, temperature));
  TANDEM_RETURN_IF_ERROR(ReadNumber(body, "top_p", 0, 1, top_p));
  if (top_p == 0) return FieldError("top_p", "must be greater than 0");
  TANDEM_RETURN_IF_ERROR(ReadNumber(body, "min_p", 0, 1, min_p));
  TANDEM_RETURN_IF_ERROR(ReadNumber(body, "repetition_penalty", 1e-6, 1e6, repetition_penalty));
  for (const char* unsupported : {"presence_penalty", "frequency_penalty"}) {
    double v = 0;
    TANDEM_RETURN_IF_ERROR(ReadNumber(body, unsupported, -2, 2, v));
    if (v != 0) return FieldError(unsupported, "is not supported (only 0)");
  }
  int64_t top_k = 0, seed = 0, n = 1;
  TANDEM_RETURN_IF_ERROR(ReadInteger(body, "top_k", top_k, present));
  if (top_k < -1) return FieldError("top_k", "must be -1 (off), 0 (off) or positive");
  TANDEM_RETURN_IF_ERROR(ReadInteger(body, "n", n, present));
  if (n != 1) return FieldError("n", "must be 1");
  bool has_seed = false;
  TANDEM_RETURN_IF_ERROR(ReadInteger(body, "seed", seed, has_seed));
  r.sampling.temperature = temperature;
  r.sampling.top_p = top_p;
  r.sampling.top_k = std::max<int64_t>(0, top_k);
  r.sampling.min_p = min_p;
  r.sampling.repetition_penalty = repetition_penalty;
  if (has_seed) r.sampling.seed = static_cast<uint64_t>(seed);

  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& stop = body["stop"];
    if (stop.is_string()) {
      r.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4) {
      for (const json& s : stop) {
        if (!s.is_string()) return FieldError("stop", "must be a string or an array of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return FieldError("stop", "must be a string or an array of up to 4 strings");
    }
  }
  for (const char* flag : {"stream", "ignore_eos"}) {
    if (body.contains(flag) && !body[flag].is_null() && !body[flag].is_boolean())
      return FieldError(flag, "must be a boolean");
  }
  out.stream = body.value("stream", false);
  r.ignore_eos = body.value("ignore_eos", false);
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& options = body["stream_options"];
    if (!options.is_object()) return FieldError("stream_options", "must be an object");
    if (!out.stream) return FieldError("stream_options", "is only allowed with stream: true");
    if (options.contains("include_usage")) {
      if (!options["include_usage"].is_boolean())
        return FieldError("stream_options.include_usage", "must be a boolean");
      out.include_usage = options["include_usage"].get<bool>();
    }
  }
  return out;
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

nlohmann::json ErrorBody(const absl::Status& status) {
  const int http = HttpStatusFor(status);
  const char* type = http == 400   ? "invalid_request_error"
                     : http == 404 ? "not_found_error"
                     : http == 429 ? "rate_limit_exceeded"
                     : http == 503 ? "service_unavailable"
                     : http == 504 ? "timeout"
                                   : "internal_error";
  return {{"error", {{"message", std::string(status.message())}, {"type", type}, {"code", http}}}};
}

namespace {

json UsageJson(const TokenUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json FinishReason(const std::string& reason) {
  if (reason.empty()) return nullptr;
  return reason == "stop" || reason == "length" ? json(reason) : json("abort");
}

}  // namespace

nlohmann::json CompletionResponse(const CompletionRequest& request, const std::string& id,
                                  int64_t created, const std::string& text,
                                  const std::string& finish_reason, const TokenUsage& usage) {
  json choice = {{"index", 0}, {"finish_reason", FinishReason(finish_reason)}, {"logprobs", nullptr}};
  if (request.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", request.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", request.model},
          {"choices", json::array({choice})},
          {"usage", UsageJson(usage)}};
}

nlohmann::json StreamChunk(const CompletionRequest& request, const std::string& id,
                           int64_t created, const std::string& text,
                           const std::string& finish_reason, bool first) {
  json choice = {{"index", 0}, {"finish_reason", FinishReason(finish_reason)}, {"logprobs", nullptr}};
  if (request.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || finish_reason.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  json chunk = {{"id", id},
                {"object", request.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", request.model},
                {"choices", json::array({choice})}};
  if (request.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

nlohmann::json UsageChunk(const CompletionRequest& request, const std::string& id,
                          int64_t created, const TokenUsage& usage) {
  return {{"id", id},
          {"object", request.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", request.model},
          {"choices", json::array()},
          {"usage", UsageJson(usage)}};
}

}  // namespace tandem
