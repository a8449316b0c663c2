// Python `json.dumps` over jinja Values, as used by the `tojson` filter of transformers' chat
// template environment (json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
// sort_keys=sort_keys)).
//
// Contract: byte-identical to CPython's json module for the supported types (None, bool, int,
// float incl. Infinity/NaN, str, list/tuple, dict); anything else (undefined, namespace,
// callable) throws "Object of type X is not JSON serializable". Pure function.
#pragma once

#include <optional>
#include <string>

#include "common/jinja/value.h"

namespace tandem::jinja {

struct JsonDumpOptions {
  std::optional<std::string> indent;  // nullopt = single line; else the per-level indent string
  std::optional<std::string> item_separator;  // default ", " (or "," when indenting)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
  bool ensure_ascii = false;
};

std::string JsonDumps(const Value& value, const JsonDumpOptions& options);

}  // namespace tandem::jinja
