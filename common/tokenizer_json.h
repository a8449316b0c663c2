// Shared internals of the tokenizer components: the piece of text that flows through the
// encoding pipeline, and checked accessors for tokenizer.json fields that turn a missing or
// mistyped field into an absl::Status naming the component ("pre_tokenizer.Split: ...") instead
// of an exception. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer_internal {

class Regex;
using Json = nlohmann::json;

// String concatenation of std::string_view / strings / integers (absl::StrCat does not take
// std::string_view where absl::string_view is its own type, as in Debian's Abseil).
namespace cat_internal {
inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, char c) { out->push_back(c); }
template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
void Append(std::string* out, T v) {
  out->append(std::to_string(v));
}
}  // namespace cat_internal
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (cat_internal::Append(&out, args), ...);
  return out;
}

// A span of the input on its way through normalization, pre-tokenization and the model.
struct Piece {
  std::string text;
  // True when the piece begins at offset 0 of the original input (Metaspace's "first" scheme).
  bool at_start = false;
  // >= 0: an added token already recognized; its text is not tokenized further.
  int32_t id = -1;
};

absl::Status JsonError(std::string_view where, std::string_view what);
// obj[key] when present and not null, else nullptr.
const Json* FindField(const Json& obj, std::string_view key);
absl::StatusOr<std::string> GetString(const Json& obj, std::string_view key,
                                      std::string_view where);
absl::StatusOr<bool> GetBool(const Json& obj, std::string_view key, std::string_view where,
                             bool default_value);
// A single Unicode character given as a string (Metaspace's "replacement", Strip's "content").
absl::StatusOr<std::string> GetChar(const Json& obj, std::string_view key, std::string_view where);
// {"Regex": "..."} or {"String": "..."} (literal) under obj[key].
absl::StatusOr<std::unique_ptr<Regex>> GetPattern(const Json& obj, std::string_view key,
                                                  std::string_view where);
// The literal string of a {"String": "..."} pattern, or nullopt for a {"Regex": ...} one.
std::optional<std::string> LiteralPattern(const Json& obj, std::string_view key);
std::string TypeOf(const Json& obj);  // obj["type"] as a string, "" when absent

}  // namespace tandem::tokenizer_internal
