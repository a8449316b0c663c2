// Registry of the interpreter's builtins: filters (filters.cc), tests and global functions
// (tests_globals.cc), and methods of str / list / dict values (methods.cc).
//
// Contract: lookups are by name and never throw; the functions themselves follow jinja2 /
// Python semantics and throw JinjaError on bad input. All are stateless and thread-safe; the
// Evaluator passed in is only used for callbacks (filters applying other filters or tests,
// attribute lookup, iteration limits).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/jinja/value.h"

namespace tandem::jinja {

class Evaluator;

using FilterFn = Value (*)(Evaluator& ev, const Value& input, const CallArgs& args);
using TestFn = bool (*)(Evaluator& ev, const Value& input, const CallArgs& args);

FilterFn FindFilter(std::string_view name);  // nullptr if unknown
TestFn FindTest(std::string_view name);      // nullptr if unknown

// `obj.name` when `name` is a method of obj's Python type (str, list, tuple, dict): a callable
// bound to obj, or, for methods the immutable sandbox forbids (list.append, dict.update, ...),
// an undefined value whose use raises "access to attribute ... is unsafe.". nullopt otherwise.
std::optional<Value> FindMethod(const Value& obj, std::string_view name);

// Globals of transformers' chat template environment: range, dict, namespace,
// raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> GlobalFunctions();

// Shared argument helpers for builtins.
std::optional<std::string> OptString(const Value* v, std::string_view what);  // None -> nullopt
int64_t IntArg(const Value* v, int64_t fallback, std::string_view what);
bool BoolArg(const Value* v, bool fallback);
std::string StrArg(const Value* v, std::string_view fallback);

}  // namespace tandem::jinja
