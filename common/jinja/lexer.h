// Tokenizer of Jinja template source, reproducing jinja2's lexer with trim_blocks=True and
// lstrip_blocks=True (the transformers chat-template environment).
//
// Contract: Tokenize() normalizes newlines (\r\n, \r -> \n), drops one trailing newline
// (keep_trailing_newline=False), applies whitespace control (`{%-`, `-%}`, `{{-`, `-}}`, `{#-`,
// `-#}`, `{%+`, `+%}`), trim_blocks (first newline after a block or comment tag) and
// lstrip_blocks (spaces/tabs before a block or comment tag at the start of a line), removes
// comments, turns `{% raw %}` bodies into text, and splits tag contents into expression tokens.
// String literals are decoded with Python escape semantics. Errors throw JinjaError(kSyntax)
// with line:column.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja {

struct Token {
  enum class Type {
    kText,        // template data between tags (already whitespace-processed)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,    // value = decoded string
    kInt,       // int_value
    kFloat,     // float_value
    kOperator,  // value = operator text
    kEnd,       // end of template
  };
  Type type;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 0;
  int column = 0;
};

std::vector<Token> Tokenize(std::string_view source);

}  // namespace tandem::jinja
