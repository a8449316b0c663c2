// Expression parsing for Jinja templates (see parser_internal.h), mirroring jinja2/parser.py.
#include "common/jinja/parser_internal.h"

namespace tandem::jinja::parser_internal {

std::string Describe(const Token& t) {
  switch (t.type) {
    case TT::kText:
      return "template data";
    case TT::kVarBegin:
      return "begin of print statement";
    case TT::kVarEnd:
      return "end of print statement";
    case TT::kBlockBegin:
      return "begin of statement block";
    case TT::kBlockEnd:
      return "end of statement block";
    case TT::kName:
      return t.value;
    case TT::kString:
      return "string";
    case TT::kInt:
      return "integer";
    case TT::kFloat:
      return "float";
    case TT::kOperator:
      return t.value;
    case TT::kEnd:
      return "end of template";
  }
  return "token";
}

bool ExprParser::IsTupleEnd(std::initializer_list<std::string_view> extra_end) const {
  const Token& t = Cur();
  if (t.type == TT::kVarEnd || t.type == TT::kBlockEnd || t.type == TT::kEnd) return true;
  if (t.type == TT::kOperator && t.value == ")") return true;
  if (t.type == TT::kName) {
    for (auto n : extra_end) {
      if (t.value == n) return true;
    }
  }
  return false;
}

ExprPtr ExprParser::ParseTuple(bool explicit_parens, bool with_condexpr,
                               std::initializer_list<std::string_view> extra_end) {
  const Token& at = Cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) ExpectOp(",");
    if (IsTupleEnd(extra_end)) break;
    items.push_back(ParseExpression(with_condexpr));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) {
      Fail(Cur(), Cat("Expected an expression, got '", Describe(Cur()), "'"));
    }
  }
  auto e = MakeExpr(Expr::Kind::kTuple, at);
  e->args = std::move(items);
  return e;
}

ExprPtr ExprParser::ParseExpression(bool with_condexpr) {
  DepthGuard guard(this);
  if (!with_condexpr) return ParseOr();
  ExprPtr expr = ParseOr();
  while (IsName("if")) {
    const Token& at = Next();
    auto cond = MakeExpr(Expr::Kind::kCond, at);
    ExprPtr test = ParseOr();
    ExprPtr else_value = SkipName("else") ? ParseExpression(true) : nullptr;
    cond->args.push_back(std::move(test));
    cond->args.push_back(std::move(expr));
    cond->args.push_back(std::move(else_value));
    expr = std::move(cond);
  }
  return expr;
}

ExprPtr ExprParser::Binary(std::string op, ExprPtr left, ExprPtr right, const Token& at) {
  auto e = MakeExpr(Expr::Kind::kBinary, at);
  e->name = std::move(op);
  e->args.push_back(std::move(left));
  e->args.push_back(std::move(right));
  return e;
}

ExprPtr ExprParser::ParseOr() {
  ExprPtr left = ParseAnd();
  while (IsName("or")) {
    const Token& at = Next();
    left = Binary("or", std::move(left), ParseAnd(), at);
  }
  return left;
}

ExprPtr ExprParser::ParseAnd() {
  ExprPtr left = ParseNot();
  while (IsName("and")) {
    const Token& at = Next();
    left = Binary("and", std::move(left), ParseNot(), at);
  }
  return left;
}

ExprPtr ExprParser::ParseNot() {
  if (IsName("not")) {
    DepthGuard guard(this);
    const Token& at = Next();
    auto e = MakeExpr(Expr::Kind::kUnary, at);
    e->name = "not";
    e->args.push_back(ParseNot());
    return e;
  }
  return ParseCompare();
}

ExprPtr ExprParser::ParseCompare() {
  const Token& at = Cur();
  ExprPtr first = ParseMath1();
  std::vector<std::string> ops;
  std::vector<ExprPtr> operands;
  while (true) {
    if (Cur().type == TT::kOperator &&
        (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" || Cur().value == "<=" ||
         Cur().value == ">" || Cur().value == ">=")) {
      ops.push_back(Next().value);
    } else if (SkipName("in")) {
      ops.push_back("in");
    } else if (IsName("not") && Look().type == TT::kName && Look().value == "in") {
      Next();
      Next();
      ops.push_back("notin");
    } else {
      break;
    }
    operands.push_back(ParseMath1());
  }
  if (ops.empty()) return first;
  auto e = MakeExpr(Expr::Kind::kCompare, at);
  e->args.push_back(std::move(first));
  for (auto& o : operands) e->args.push_back(std::move(o));
  e->ops = std::move(ops);
  return e;
}

ExprPtr ExprParser::ParseMath1() {
  ExprPtr left = ParseConcat();
  while (IsOp("+") || IsOp("-")) {
    const Token& at = Next();
    left = Binary(at.value, std::move(left), ParseConcat(), at);
  }
  return left;
}

ExprPtr ExprParser::ParseConcat() {
  ExprPtr left = ParseMath2();
  while (IsOp("~")) {
    const Token& at = Next();
    left = Binary("~", std::move(left), ParseMath2(), at);
  }
  return left;
}

ExprPtr ExprParser::ParseMath2() {
  ExprPtr left = ParsePow();
  while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
    const Token& at = Next();
    left = Binary(at.value, std::move(left), ParsePow(), at);
  }
  return left;
}

ExprPtr ExprParser::ParsePow() {
  ExprPtr left = ParseUnary(true);
  while (IsOp("**")) {
    const Token& at = Next();
    left = Binary("**", std::move(left), ParseUnary(true), at);
  }
  return left;
}

ExprPtr ExprParser::ParseUnary(bool with_filter) {
  DepthGuard guard(this);
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const Token& at = Next();
    node = MakeExpr(Expr::Kind::kUnary, at);
    node->name = at.value;
    node->args.push_back(ParseUnary(false));
  } else {
    node = ParsePrimary();
  }
  node = ParsePostfix(std::move(node));
  if (with_filter) node = ParseFilterExpr(std::move(node));
  return node;
}

ExprPtr ExprParser::ParsePrimary() {
  const Token& t = Cur();
  if (t.type == TT::kName) {
    Next();
    auto e = MakeExpr(Expr::Kind::kLiteral, t);
    if (t.value == "true" || t.value == "True") {
      e->literal = Value(true);
    } else if (t.value == "false" || t.value == "False") {
      e->literal = Value(false);
    } else if (t.value == "none" || t.value == "None") {
      e->literal = Value::None();
    } else {
      e->kind = Expr::Kind::kName;
      e->name = t.value;
    }
    return e;
  }
  if (t.type == TT::kString) {
    auto e = MakeExpr(Expr::Kind::kLiteral, t);
    std::string s;
    while (Cur().type == TT::kString) s += Next().value;  // adjacent literals concatenate
    e->literal = Value(std::move(s));
    return e;
  }
  if (t.type == TT::kInt || t.type == TT::kFloat) {
    Next();
    auto e = MakeExpr(Expr::Kind::kLiteral, t);
    e->literal = t.type == TT::kInt ? Value(t.int_value) : Value(t.float_value);
    return e;
  }
  if (IsOp("(")) {
    Next();
    ExprPtr e = ParseTuple(/*explicit_parens=*/true, true, {});
    ExpectOp(")");
    return e;
  }
  if (IsOp("[")) {
    auto e = MakeExpr(Expr::Kind::kList, Next());
    while (!IsOp("]")) {
      if (!e->args.empty()) ExpectOp(",");
      if (IsOp("]")) break;
      e->args.push_back(ParseExpression(true));
    }
    ExpectOp("]");
    return e;
  }
  if (IsOp("{")) {
    auto e = MakeExpr(Expr::Kind::kDict, Next());
    while (!IsOp("}")) {
      if (!e->args.empty()) ExpectOp(",");
      if (IsOp("}")) break;
      e->args.push_back(ParseExpression(true));
      ExpectOp(":");
      e->args.push_back(ParseExpression(true));
    }
    ExpectOp("}");
    return e;
  }
  Fail(t, Cat("unexpected '", Describe(t), "'"));
}

ExprPtr ExprParser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".")) {
      const Token& at = Next();
      const Token& attr = Cur();
      if (attr.type == TT::kName) {
        Next();
        auto e = MakeExpr(Expr::Kind::kGetAttr, at);
        e->name = attr.value;
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (attr.type == TT::kInt) {
        Next();
        auto e = MakeExpr(Expr::Kind::kGetItem, at);
        auto idx = MakeExpr(Expr::Kind::kLiteral, attr);
        idx->literal = Value(attr.int_value);
        e->args.push_back(std::move(node));
        e->args.push_back(std::move(idx));
        node = std::move(e);
      } else {
        Fail(attr, "expected name or number");
      }
    } else if (IsOp("[")) {
      const Token& at = Next();
      std::vector<ExprPtr> subs;
      while (!IsOp("]")) {
        if (!subs.empty()) ExpectOp(",");
        subs.push_back(ParseSubscribed());
      }
      ExpectOp("]");
      if (subs.empty()) Fail(at, "expected a subscript");
      auto e = MakeExpr(Expr::Kind::kGetItem, at);
      e->args.push_back(std::move(node));
      if (subs.size() == 1) {
        e->args.push_back(std::move(subs[0]));
      } else {
        auto tuple = MakeExpr(Expr::Kind::kTuple, at);
        tuple->args = std::move(subs);
        e->args.push_back(std::move(tuple));
      }
      node = std::move(e);
    } else if (IsOp("(")) {
      node = ParseCall(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::ParseSubscribed() {
  const Token& at = Cur();
  std::vector<ExprPtr> parts;
  if (IsOp(":")) {
    Next();
    parts.push_back(nullptr);
  } else {
    ExprPtr e = ParseExpression(true);
    if (!IsOp(":")) return e;
    Next();
    parts.push_back(std::move(e));
  }
  auto part_end = [&] { return IsOp("]") || IsOp(",") || IsOp(":"); };
  parts.push_back(part_end() ? nullptr : ParseExpression(true));
  if (SkipOp(":")) {
    parts.push_back((IsOp("]") || IsOp(",")) ? nullptr : ParseExpression(true));
  } else {
    parts.push_back(nullptr);
  }
  auto slice = MakeExpr(Expr::Kind::kSlice, at);
  slice->args = std::move(parts);
  return slice;
}

void ExprParser::ParseCallArgs(Expr* e) {
  ExpectOp("(");
  while (!IsOp(")")) {
    if (e->args.size() > 1 || !e->kwargs.empty()) {
      ExpectOp(",");
      if (IsOp(")")) break;
    }
    if (IsOp("*") || IsOp("**")) Fail(Cur(), "*args / **kwargs in calls are not supported");
    if (Cur().type == TT::kName && Look().type == TT::kOperator && Look().value == "=") {
      std::string key = Next().value;
      Next();
      e->kwargs.emplace_back(std::move(key), ParseExpression(true));
    } else {
      if (!e->kwargs.empty()) Fail(Cur(), "positional argument follows keyword argument");
      e->args.push_back(ParseExpression(true));
    }
  }
  ExpectOp(")");
}

ExprPtr ExprParser::ParseCall(ExprPtr callee) {
  auto e = MakeExpr(Expr::Kind::kCall, Cur());
  e->args.push_back(std::move(callee));
  ParseCallArgs(e.get());
  return e;
}

std::string ExprParser::ParseDottedName() {
  std::string name = ExpectName();
  while (IsOp(".")) {
    Next();
    name += "." + ExpectName();
  }
  return name;
}

ExprPtr ExprParser::ParseFilterChain(ExprPtr node, bool start_inline) {
  while (IsOp("|") || start_inline) {
    if (!start_inline) Next();
    start_inline = false;
    auto e = MakeExpr(Expr::Kind::kFilter, Cur());
    e->name = ParseDottedName();
    e->args.push_back(std::move(node));
    if (IsOp("(")) ParseCallArgs(e.get());
    node = std::move(e);
  }
  return node;
}

ExprPtr ExprParser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      node = ParseFilterChain(std::move(node), false);
    } else if (IsName("is")) {
      const Token& at = Next();
      auto e = MakeExpr(Expr::Kind::kTest, at);
      e->negated = SkipName("not");
      e->name = ParseDottedName();
      e->args.push_back(std::move(node));
      const Token& c = Cur();
      if (IsOp("(")) {
        ParseCallArgs(e.get());
      } else if ((c.type == TT::kName || c.type == TT::kString || c.type == TT::kInt ||
                  c.type == TT::kFloat || IsOp("[") || IsOp("{")) &&
                 !(c.type == TT::kName &&
                   (c.value == "else" || c.value == "or" || c.value == "and"))) {
        if (IsName("is")) Fail(c, "You cannot chain multiple tests with is");
        e->args.push_back(ParsePostfix(ParsePrimary()));
      }
      node = std::move(e);
    } else if (IsOp("(")) {
      node = ParseCall(std::move(node));
    } else {
      return node;
    }
  }
}

}  // namespace tandem::jinja::parser_internal
