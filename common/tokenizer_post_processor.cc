// Post-processor parsing (see tokenizer_post_processor.h).
#include "common/tokenizer_post_processor.h"

#include <string>

#include "common/status.h"

namespace tandem::tokenizer_internal {
namespace {

constexpr std::string_view kWhere = "post_processor.TemplateProcessing";

absl::StatusOr<std::vector<int32_t>> SpecialIds(const Json& specials, const std::string& name) {
  const Json* entry = FindField(specials, name);
  if (entry == nullptr) {
    return JsonError(kWhere, Cat("special token '", name, "' is not in 'special_tokens'"));
  }
  const Json* ids = FindField(*entry, "ids");
  if (ids == nullptr || !ids->is_array()) {
    return JsonError(kWhere, Cat("special token '", name, "' has no 'ids' array"));
  }
  std::vector<int32_t> out;
  for (const Json& id : *ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return JsonError(kWhere, Cat("special token '", name, "' has a bad id"));
    }
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

absl::StatusOr<SpecialTemplate> ParseTemplate(const Json& j) {
  const Json* single = FindField(j, "single");
  if (single == nullptr) return JsonError(kWhere, "missing field 'single'");
  static const Json kEmpty = Json::object();
  const Json* specials = FindField(j, "special_tokens");
  if (specials == nullptr) specials = &kEmpty;
  // Pieces: {"SpecialToken": {"id": ...}} / {"Sequence": {"id": "A"}}.
  std::vector<std::pair<bool, std::string>> pieces;  // (is_sequence, special name)
  if (single->is_array()) {
    for (const Json& p : *single) {
      if (const Json* s = FindField(p, "SpecialToken"); s != nullptr) {
        TANDEM_ASSIGN_OR_RETURN(std::string name, GetString(*s, "id", kWhere));
        pieces.emplace_back(false, std::move(name));
      } else if (FindField(p, "Sequence") != nullptr) {
        pieces.emplace_back(true, "");
      } else {
        return JsonError(kWhere, "'single' items must be SpecialToken or Sequence");
      }
    }
  } else {
    return JsonError(kWhere, "'single' must be an array");
  }
  SpecialTemplate t;
  bool seen_sequence = false;
  for (const auto& [is_sequence, name] : pieces) {
    if (is_sequence) {
      if (seen_sequence) return JsonError(kWhere, "'single' uses the sequence twice");
      seen_sequence = true;
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, SpecialIds(*specials, name));
    auto& dst = seen_sequence ? t.suffix : t.prefix;
    dst.insert(dst.end(), ids.begin(), ids.end());
  }
  if (!seen_sequence) return JsonError(kWhere, "'single' has no $A sequence");
  return t;
}

}  // namespace

absl::StatusOr<SpecialTemplate> ParsePostProcessor(const Json& j) {
  if (j.is_null()) return SpecialTemplate{};
  if (!j.is_object()) return JsonError("post_processor", "must be an object or null");
  const std::string type = TypeOf(j);
  if (type == "TemplateProcessing") return ParseTemplate(j);
  if (type == "ByteLevel") return SpecialTemplate{};  // only adjusts offsets
  if (type == "Sequence") {
    const Json* list = FindField(j, "processors");
    if (list == nullptr || !list->is_array()) {
      return JsonError("post_processor.Sequence", "field 'processors' must be an array");
    }
    SpecialTemplate all;
    for (const Json& item : *list) {
      TANDEM_ASSIGN_OR_RETURN(SpecialTemplate t, ParsePostProcessor(item));
      // Each processor wraps the output of the previous one.
      all.prefix.insert(all.prefix.begin(), t.prefix.begin(), t.prefix.end());
      all.suffix.insert(all.suffix.end(), t.suffix.begin(), t.suffix.end());
    }
    return all;
  }
  if (type.empty()) return JsonError("post_processor", "missing field 'type'");
  return absl::UnimplementedError(Cat("unsupported post_processor '", type, "'"));
}

}  // namespace tandem::tokenizer_internal
