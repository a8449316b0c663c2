// Parser of Jinja templates into the syntax tree of ast.h, following jinja2's grammar and
// operator precedence (jinja2/parser.py) for the statement set used by chat templates:
// for/else (with loop filter), if/elif/else, set (incl. `ns.attr` and block set), macro,
// filter blocks, with, break/continue (loopcontrols), raw (in the lexer), generation/block.
//
// Contract: Parse() returns the template body or throws JinjaError(kSyntax) carrying the
// line:column of the offending token. Nesting depth is capped so hostile input cannot overflow
// the stack.
#pragma once

#include <string_view>

#include "common/jinja/ast.h"

namespace tandem::jinja {

Body Parse(std::string_view source);

}  // namespace tandem::jinja
