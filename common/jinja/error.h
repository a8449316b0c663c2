// Internal error type of the Jinja interpreter (common/jinja/*).
//
// Contract: the interpreter's internals (lexer, parser, evaluator, builtins) report every
// problem by throwing JinjaError; nothing else is thrown on purpose. The public boundary
// (tandem::ChatTemplate in common/chat_template.h) catches it and turns it into an absl::Status,
// so no exception ever leaves the module. `line`/`column` are 1-based; 0 means "not known yet"
// (the evaluator fills in the line of the innermost node being evaluated as the error unwinds).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace tandem::jinja {

class JinjaError : public std::runtime_error {
 public:
  enum class Kind {
    kSyntax,   // template does not parse
    kRuntime,  // type errors, undefined access, unknown filter, ...
    kRaised,   // raise_exception(msg) called by the template: message is exactly msg
    kLimit,    // output / iteration / recursion limits exceeded
  };
  JinjaError(Kind kind, std::string message, int line = 0, int column = 0)
      : std::runtime_error(message),
        kind_(kind),
        message_(std::move(message)),
        line_(line),
        column_(column) {}

  Kind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  int line() const { return line_; }
  int column() const { return column_; }
  void set_position(int line, int column) {
    line_ = line;
    column_ = column;
  }

 private:
  Kind kind_;
  std::string message_;
  int line_;
  int column_;
};

namespace internal {
inline void AppendPiece(std::string* out, std::string_view s) { out->append(s); }
inline void AppendPiece(std::string* out, const char* s) { out->append(s); }
inline void AppendPiece(std::string* out, const std::string& s) { out->append(s); }
template <typename T>
requires std::is_integral_v<T> &&
    (!std::is_same_v<T, char>)&&(!std::is_same_v<T, bool>)void AppendPiece(std::string* out, T v) {
  out->append(std::to_string(v));
}
}  // namespace internal

// Concatenates strings, string_views and integers (absl::StrCat without its string_view
// type constraints).
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (internal::AppendPiece(&out, args), ...);
  return out;
}

// Throws a runtime error (line filled in later by the evaluator).
[[noreturn]] inline void Fail(std::string message) {
  throw JinjaError(JinjaError::Kind::kRuntime, std::move(message));
}

}  // namespace tandem::jinja
