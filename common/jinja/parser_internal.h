// Internal to the Jinja parser: the token cursor and the expression grammar (parser_expr.cc),
// shared with the statement parser (parser.cc). Not for use outside common/jinja/parser*.cc.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/jinja/ast.h"
#include "common/jinja/error.h"
#include "common/jinja/lexer.h"

namespace tandem::jinja::parser_internal {

constexpr int kMaxNesting = 200;  // statement / expression nesting (stack safety)

using TT = Token::Type;

std::string Describe(const Token& t);

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  // Expression grammar, precedence as in jinja2/parser.py (method names mirror it).
  bool IsTupleEnd(std::initializer_list<std::string_view> extra_end) const;
  ExprPtr ParseTuple(bool explicit_parens, bool with_condexpr,
                     std::initializer_list<std::string_view> extra_end);
  ExprPtr ParseExpression(bool with_condexpr);
  ExprPtr Binary(std::string op, ExprPtr left, ExprPtr right, const Token& at);
  ExprPtr ParseOr();
  ExprPtr ParseAnd();
  ExprPtr ParseNot();
  ExprPtr ParseCompare();
  ExprPtr ParseMath1();
  ExprPtr ParseConcat();
  ExprPtr ParseMath2();
  ExprPtr ParsePow();
  ExprPtr ParseUnary(bool with_filter);
  ExprPtr ParsePrimary();
  ExprPtr ParsePostfix(ExprPtr node);
  ExprPtr ParseSubscribed();
  void ParseCallArgs(Expr* e);
  ExprPtr ParseCall(ExprPtr callee);
  std::string ParseDottedName();
  ExprPtr ParseFilterChain(ExprPtr node, bool start_inline);
  ExprPtr ParseFilterExpr(ExprPtr node);

 protected:
  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Look() const { return tokens_[pos_ + 1 < tokens_.size() ? pos_ + 1 : pos_]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool IsOp(std::string_view op) const { return Cur().type == TT::kOperator && Cur().value == op; }
  bool IsName(std::string_view n) const { return Cur().type == TT::kName && Cur().value == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }
  [[noreturn]] void Fail(const Token& t, const std::string& msg) const {
    throw JinjaError(JinjaError::Kind::kSyntax, msg, t.line, t.column);
  }
  const Token& Expect(TT type, std::string_view what) {
    if (Cur().type != type) {
      Fail(Cur(), Cat("expected ", what, ", got '", Describe(Cur()), "'"));
    }
    return Next();
  }
  void ExpectOp(std::string_view op) {
    if (!IsOp(op)) Fail(Cur(), Cat("expected '", op, "', got '", Describe(Cur()), "'"));
    Next();
  }
  std::string ExpectName() { return Expect(TT::kName, "name").value; }

  struct DepthGuard {
    explicit DepthGuard(ExprParser* p) : p(p) {
      if (++p->depth_ > kMaxNesting) p->Fail(p->Cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
    ExprParser* p;
  };

  ExprPtr MakeExpr(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace tandem::jinja::parser_internal
