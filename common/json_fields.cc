#include "common/json_fields.h"

#include <cmath>

namespace tandem {

bool JsonFields::Has(const std::string& key) const {
  auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

absl::Status JsonFields::Error(const std::string& key, const std::string& problem) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": field \"", key, "\" ", problem));
}

absl::StatusOr<std::optional<int64_t>> JsonFields::OptionalInt(const std::string& key) const {
  if (!Has(key)) return std::optional<int64_t>();
  const auto& v = object_.at(key);
  if (v.is_number_integer()) return std::optional<int64_t>(v.get<int64_t>());
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
      return std::optional<int64_t>(static_cast<int64_t>(d));
  }
  return Error(key, absl::StrCat("must be an integer, got ", v.dump()));
}

absl::StatusOr<std::optional<double>> JsonFields::OptionalDouble(const std::string& key) const {
  if (!Has(key)) return std::optional<double>();
  const auto& v = object_.at(key);
  if (v.is_number()) return std::optional<double>(v.get<double>());
  return Error(key, absl::StrCat("must be a number, got ", v.dump()));
}

absl::StatusOr<std::optional<bool>> JsonFields::OptionalBool(const std::string& key) const {
  if (!Has(key)) return std::optional<bool>();
  const auto& v = object_.at(key);
  if (v.is_boolean()) return std::optional<bool>(v.get<bool>());
  return Error(key, absl::StrCat("must be true or false, got ", v.dump()));
}

absl::StatusOr<std::optional<std::string>> JsonFields::OptionalString(
    const std::string& key) const {
  if (!Has(key)) return std::optional<std::string>();
  const auto& v = object_.at(key);
  if (v.is_string()) return std::optional<std::string>(v.get<std::string>());
  return Error(key, absl::StrCat("must be a string, got ", v.dump()));
}

absl::StatusOr<std::vector<int64_t>> JsonFields::IntOrIntList(const std::string& key) const {
  std::vector<int64_t> out;
  if (!Has(key)) return out;
  const auto& v = object_.at(key);
  if (v.is_number_integer()) {
    out.push_back(v.get<int64_t>());
    return out;
  }
  if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) return Error(key, "must be an integer or a list of integers");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  return Error(key, absl::StrCat("must be an integer or a list of integers, got ", v.dump()));
}

absl::StatusOr<int64_t> JsonFields::Int(const std::string& key) const {
  TANDEM_ASSIGN_OR_RETURN(auto v, OptionalInt(key));
  if (!v) return Error(key, "is required");
  return *v;
}

absl::StatusOr<int64_t> JsonFields::Int(const std::string& key, int64_t fallback) const {
  TANDEM_ASSIGN_OR_RETURN(auto v, OptionalInt(key));
  return v.value_or(fallback);
}

absl::StatusOr<double> JsonFields::Double(const std::string& key, double fallback) const {
  TANDEM_ASSIGN_OR_RETURN(auto v, OptionalDouble(key));
  return v.value_or(fallback);
}

absl::StatusOr<bool> JsonFields::Bool(const std::string& key, bool fallback) const {
  TANDEM_ASSIGN_OR_RETURN(auto v, OptionalBool(key));
  return v.value_or(fallback);
}

absl::StatusOr<std::string> JsonFields::String(const std::string& key,
                                               const std::string& fallback) const {
  TANDEM_ASSIGN_OR_RETURN(auto v, OptionalString(key));
  return v.value_or(fallback);
}

std::optional<std::string> JsonFields::FirstPresent(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (Has(k)) return std::string(k);
  return std::nullopt;
}

}  // namespace tandem
