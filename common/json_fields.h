// Typed, validated access to fields of a JSON object (config files, requests). Every failure is
// an absl::Status naming the source and the field, never an exception.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem {

class JsonFields {
 public:
  // `object` must outlive this view. `source` names the document in errors (e.g. a file path).
  JsonFields(const nlohmann::json& object, std::string source)
      : object_(object), source_(std::move(source)) {}

  bool Has(const std::string& key) const;  // present and not null

  absl::StatusOr<std::optional<int64_t>> OptionalInt(const std::string& key) const;
  absl::StatusOr<std::optional<double>> OptionalDouble(const std::string& key) const;
  absl::StatusOr<std::optional<bool>> OptionalBool(const std::string& key) const;
  absl::StatusOr<std::optional<std::string>> OptionalString(const std::string& key) const;
  // An int or a list of ints (e.g. eos_token_id); empty when absent.
  absl::StatusOr<std::vector<int64_t>> IntOrIntList(const std::string& key) const;

  absl::StatusOr<int64_t> Int(const std::string& key) const;  // required
  absl::StatusOr<int64_t> Int(const std::string& key, int64_t fallback) const;
  absl::StatusOr<double> Double(const std::string& key, double fallback) const;
  absl::StatusOr<bool> Bool(const std::string& key, bool fallback) const;
  absl::StatusOr<std::string> String(const std::string& key, const std::string& fallback) const;

  // The first of `keys` that is present, for fields with several historical names.
  std::optional<std::string> FirstPresent(std::initializer_list<const char*> keys) const;

  absl::Status Error(const std::string& key, const std::string& problem) const;
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json& object_;
  std::string source_;
};

}  // namespace tandem
