// Syntax tree of a parsed Jinja template (produced by parser.h, executed by evaluator.h).
//
// Contract: plain immutable data once parsed; every node carries the 1-based line/column of its
// first token for error messages. Child layout per kind is documented on each enum value.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/jinja/value.h"

namespace tandem::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // args = items
    kTuple,    // args = items
    kDict,     // args = key0, value0, key1, value1, ...
    kGetAttr,  // args[0] = object, name = attribute      (obj.name)
    kGetItem,  // args[0] = object, args[1] = index or kSlice   (obj[index])
    kSlice,    // args[0..2] = start, stop, step (each may be null)
    kCall,     // args[0] = callee, args[1..] = positional, kwargs
    kFilter,   // args[0] = input (null inside filter blocks), args[1..] = positional, kwargs
    kTest,     // args[0] = input, args[1..] = positional, kwargs, name, negated
    kUnary,    // name = "-", "+" or "not"; args[0]
    kBinary,   // name = operator (+ - * / // % ** ~ and or); args[0], args[1]
    kCompare,  // args[0] = first operand, then ops[i] applied to args[i+1] (chained)
    kCond,     // args[0] = condition, args[1] = value if true, args[2] = else value (nullable)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  bool negated = false;          // kTest
};

// Left-hand side of `set`, `for` and `with`.
struct Target {
  enum class Kind { kName, kTuple, kNamespaceAttr };
  Kind kind = Kind::kName;
  std::vector<std::string> names;  // kName: 1 name; kTuple: the names; kNamespaceAttr: namespace
  std::string attr;                // kNamespaceAttr: attribute
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // nullable
};

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // expr: {{ expr }}
    kIf,        // branches (condition, body); else_body
    kFor,       // target, expr = iterable, filter = loop condition (nullable), body, else_body
    kSet,       // target, expr
    kSetBlock,  // target, filter = filter chain (nullable), body
    kMacro,     // name, params, body
    kBreak,
    kContinue,
    kFilterBlock,  // filter = filter chain, body
    kWith,         // assigns, body
    kScope,        // body rendered in place ({% generation %}, {% block %})
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::string name;
  std::vector<MacroParam> params;
  std::vector<std::pair<Target, ExprPtr>> assigns;
};

}  // namespace tandem::jinja
