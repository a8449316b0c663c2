// Checked tokenizer.json field accessors (see tokenizer_json.h).
#include "common/tokenizer_json.h"

#include "common/tokenizer_regex.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {

absl::Status JsonError(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(Cat(where, ": ", what));
}

const Json* FindField(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<std::string> GetString(const Json& obj, std::string_view key,
                                      std::string_view where) {
  const Json* f = FindField(obj, key);
  if (f == nullptr) return JsonError(where, Cat("missing field '", key, "'"));
  if (!f->is_string()) return JsonError(where, Cat("field '", key, "' is not a string"));
  return f->get<std::string>();
}

absl::StatusOr<bool> GetBool(const Json& obj, std::string_view key, std::string_view where,
                             bool default_value) {
  const Json* f = FindField(obj, key);
  if (f == nullptr) return default_value;
  if (!f->is_boolean()) {
    return JsonError(where, Cat("field '", key, "' is not a boolean"));
  }
  return f->get<bool>();
}

absl::StatusOr<std::string> GetChar(const Json& obj, std::string_view key, std::string_view where) {
  absl::StatusOr<std::string> s = GetString(obj, key, where);
  if (!s.ok()) return s.status();
  size_t len = 0;
  if (s->empty() || DecodeUtf8(*s, 0, &len) < 0 || len != s->size()) {
    return JsonError(where, Cat("field '", key, "' must be a single character"));
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Regex>> GetPattern(const Json& obj, std::string_view key,
                                                  std::string_view where) {
  const Json* p = FindField(obj, key);
  if (p == nullptr) return JsonError(where, Cat("missing field '", key, "'"));
  if (p->is_object()) {
    if (const Json* s = FindField(*p, "String"); s != nullptr && s->is_string()) {
      return Regex::Literal(s->get<std::string>());
    }
    if (const Json* r = FindField(*p, "Regex"); r != nullptr && r->is_string()) {
      absl::StatusOr<std::unique_ptr<Regex>> re = Regex::Compile(r->get<std::string>());
      if (!re.ok()) return JsonError(where, std::string(re.status().message()));
      return re;
    }
  }
  return JsonError(where,
                   Cat("field '", key, "' must be {\"String\": \"...\"} or {\"Regex\": \"...\"}"));
}

std::optional<std::string> LiteralPattern(const Json& obj, std::string_view key) {
  const Json* p = FindField(obj, key);
  if (p == nullptr || !p->is_object()) return std::nullopt;
  const Json* s = FindField(*p, "String");
  if (s == nullptr || !s->is_string()) return std::nullopt;
  return s->get<std::string>();
}

std::string TypeOf(const Json& obj) {
  const Json* t = FindField(obj, "type");
  return (t != nullptr && t->is_string()) ? t->get<std::string>() : std::string();
}

}  // namespace tandem::tokenizer_internal
