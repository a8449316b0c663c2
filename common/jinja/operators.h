// Python operator semantics on jinja Values: arithmetic (+ - * / // % **), string
// concatenation (~), unary minus/plus, containment (`in`) and printf-style `str % args`.
//
// Contract: results match CPython for int/float/bool/str/list operands; int overflow and
// unsupported operand types throw JinjaError with Python's message; using an undefined operand
// throws its undefined message. Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/jinja/value.h"

namespace tandem::jinja {

Value BinaryOp(std::string_view op, const Value& a, const Value& b);
Value UnaryOp(std::string_view op, const Value& v);  // "-" or "+"
bool Contains(const Value& container, const Value& item);
std::string PercentFormat(const std::string& format, const Value& args);

}  // namespace tandem::jinja
