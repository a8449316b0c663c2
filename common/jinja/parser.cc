// Jinja parser (see parser.h). Method names mirror jinja2/parser.py.
#include "common/jinja/parser.h"

#include <initializer_list>

#include "common/jinja/error.h"
#include "common/jinja/lexer.h"

namespace tandem::jinja {
namespace {

constexpr int kMaxNesting = 200;

using TT = Token::Type;

std::string Describe(const Token& t) {
  switch (t.type) {
    case TT::kText: return "template data";
    case TT::kVarBegin: return "begin of print statement";
    case TT::kVarEnd: return "end of print statement";
    case TT::kBlockBegin: return "begin of statement block";
    case TT::kBlockEnd: return "end of statement block";
    case TT::kName: return t.value;
    case TT::kString: return "string";
    case TT::kInt: return "integer";
    case TT::kFloat: return "float";
    case TT::kOperator: return t.value;
    case TT::kEnd: return "end of template";
  }
  return "token";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body ParseTemplate() {
    Body body = Subparse({});
    if (Cur().type != TT::kEnd) Fail(Cur(), Cat("unexpected '", Describe(Cur()), "'"));
    return body;
  }

 private:
  // --- token stream -----------------------------------------------------------------------
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
    explicit DepthGuard(Parser* p) : p(p) {
      if (++p->depth_ > kMaxNesting) p->Fail(p->Cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  ExprPtr MakeExpr(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // --- statements -------------------------------------------------------------------------
  // Parses until a block whose first name is in `end_names` (left as the current token) or the
  // end of the template (an error when end_names is not empty).
  Body Subparse(std::initializer_list<std::string_view> end_names,
                std::string_view innermost = "") {
    DepthGuard guard(this);
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.type == TT::kEnd) {
        if (end_names.size() == 0) return body;
        std::string quoted;
        for (auto n : end_names) quoted += Cat(quoted.empty() ? "" : " or ", "'", n, "'");
        Fail(t, Cat("Unexpected end of template. Jinja was looking for the following "
                             "tags: ",
                             quoted,
                             ". The innermost block that needs to be closed is '", innermost,
                             "'."));
      }
      if (t.type == TT::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->column = t.column;
        s->text = t.value;
        body.push_back(std::move(s));
        Next();
      } else if (t.type == TT::kVarBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = Cur().line;
        s->column = Cur().column;
        s->expr = ParseTuple(false, true, {});
        Expect(TT::kVarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == TT::kBlockBegin) {
        Next();
        if (Cur().type == TT::kName) {
          for (auto n : end_names) {
            if (Cur().value == n) return body;
          }
        }
        body.push_back(ParseStatement());
      } else {
        Fail(t, Cat("unexpected '", Describe(t), "'"));
      }
    }
  }

  // After the end name of a block: consume it and the block end.
  void EndBlock(std::string_view name) {
    if (!SkipName(name)) Fail(Cur(), Cat("expected '", name, "'"));
    Expect(TT::kBlockEnd, "end of statement block");
  }

  StmtPtr NewStmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  StmtPtr ParseStatement() {
    const Token& t = Cur();
    if (t.type != TT::kName) Fail(t, "tag name expected");
    std::string tag = t.value;
    if (tag == "for") return ParseFor();
    if (tag == "if") return ParseIf();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) Fail(t, Cat("'", tag, "' outside of a loop"));
      auto s = NewStmt(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, t);
      Next();
      Expect(TT::kBlockEnd, "end of statement block");
      return s;
    }
    if (tag == "filter") {
      auto s = NewStmt(Stmt::Kind::kFilterBlock, Next());
      s->filter = ParseFilterChain(nullptr, /*start_inline=*/true);
      Expect(TT::kBlockEnd, "end of statement block");
      s->body = Subparse({"endfilter"}, "filter");
      EndBlock("endfilter");
      return s;
    }
    if (tag == "with") return ParseWith();
    if (tag == "generation" || tag == "block") {
      auto s = NewStmt(Stmt::Kind::kScope, Next());
      if (tag == "block") ExpectName();
      Expect(TT::kBlockEnd, "end of statement block");
      std::string end = "end" + tag;
      s->body = Subparse({end}, tag);
      if (!SkipName(end)) Fail(Cur(), Cat("expected '", end, "'"));
      if (tag == "block" && Cur().type == TT::kName) Next();
      Expect(TT::kBlockEnd, "end of statement block");
      return s;
    }
    static const char* kUnsupported[] = {"call", "include", "import", "from", "extends",
                                         "do", "autoescape"};
    for (const char* u : kUnsupported) {
      if (tag == u) Fail(t, Cat("the '", tag, "' tag is not supported"));
    }
    Fail(t, Cat("Encountered unknown tag '", tag, "'."));
  }

  StmtPtr ParseFor() {
    auto s = NewStmt(Stmt::Kind::kFor, Next());
    s->target = ParseAssignTarget(/*with_namespace=*/false, {"in"});
    if (!SkipName("in")) Fail(Cur(), "expected 'in'");
    s->expr = ParseTuple(false, /*with_condexpr=*/false, {"recursive"});
    if (SkipName("if")) s->filter = ParseExpression(true);
    if (IsName("recursive")) Fail(Cur(), "recursive loops are not supported");
    Expect(TT::kBlockEnd, "end of statement block");
    ++loop_depth_;
    s->body = Subparse({"endfor", "else"}, "for");
    --loop_depth_;
    if (SkipName("else")) {
      Expect(TT::kBlockEnd, "end of statement block");
      s->else_body = Subparse({"endfor"}, "for");
    }
    EndBlock("endfor");
    return s;
  }

  StmtPtr ParseIf() {
    auto s = NewStmt(Stmt::Kind::kIf, Next());
    while (true) {
      ExprPtr cond = ParseTuple(false, /*with_condexpr=*/false, {});
      Expect(TT::kBlockEnd, "end of statement block");
      Body body = Subparse({"elif", "else", "endif"}, "if");
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (SkipName("elif")) continue;
      if (SkipName("else")) {
        Expect(TT::kBlockEnd, "end of statement block");
        s->else_body = Subparse({"endif"}, "if");
      }
      EndBlock("endif");
      return s;
    }
  }

  StmtPtr ParseSet() {
    const Token& at = Next();
    Target target = ParseAssignTarget(/*with_namespace=*/true, {});
    if (SkipOp("=")) {
      auto s = NewStmt(Stmt::Kind::kSet, at);
      s->target = std::move(target);
      s->expr = ParseTuple(false, true, {});
      Expect(TT::kBlockEnd, "end of statement block");
      return s;
    }
    auto s = NewStmt(Stmt::Kind::kSetBlock, at);
    s->target = std::move(target);
    if (IsOp("|")) s->filter = ParseFilterChain(nullptr, false);
    Expect(TT::kBlockEnd, "end of statement block");
    s->body = Subparse({"endset"}, "set");
    EndBlock("endset");
    return s;
  }

  StmtPtr ParseMacro() {
    auto s = NewStmt(Stmt::Kind::kMacro, Next());
    s->name = ExpectName();
    ExpectOp("(");
    bool have_default = false;
    while (!IsOp(")")) {
      if (!s->params.empty()) ExpectOp(",");
      MacroParam p;
      p.name = ExpectName();
      if (SkipOp("=")) {
        p.default_value = ParseExpression(true);
        have_default = true;
      } else if (have_default) {
        Fail(Cur(), "non-default argument follows default argument");
      }
      s->params.push_back(std::move(p));
    }
    ExpectOp(")");
    Expect(TT::kBlockEnd, "end of statement block");
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = Subparse({"endmacro"}, "macro");
    loop_depth_ = saved_loops;
    EndBlock("endmacro");
    return s;
  }

  StmtPtr ParseWith() {
    auto s = NewStmt(Stmt::Kind::kWith, Next());
    while (Cur().type != TT::kBlockEnd) {
      if (!s->assigns.empty()) ExpectOp(",");
      Target t = ParseAssignTarget(false, {});
      ExpectOp("=");
      s->assigns.emplace_back(std::move(t), ParseExpression(true));
    }
    Expect(TT::kBlockEnd, "end of statement block");
    s->body = Subparse({"endwith"}, "with");
    EndBlock("endwith");
    return s;
  }

  Target ParseAssignTarget(bool with_namespace, std::initializer_list<std::string_view> extra_end) {
    Target target;
    if (with_namespace && Cur().type == TT::kName && Look().type == TT::kOperator &&
        Look().value == ".") {
      target.kind = Target::Kind::kNamespaceAttr;
      target.names.push_back(Next().value);
      Next();
      target.attr = ExpectName();
      return target;
    }
    bool parens = SkipOp("(");
    bool is_tuple = parens;
    while (true) {
      if (!target.names.empty()) {
        if (!SkipOp(",")) break;
        is_tuple = true;
      }
      if (Cur().type != TT::kName) {
        if (!target.names.empty() && is_tuple) break;  // trailing comma
        Fail(Cur(), Cat("can't assign to '", Describe(Cur()), "'"));
      }
      bool stop = false;
      for (auto n : extra_end) stop = stop || Cur().value == n;
      if (stop) break;
      const std::string& n = Cur().value;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" ||
          n == "None") {
        Fail(Cur(), Cat("can't assign to '", n, "'"));
      }
      target.names.push_back(Next().value);
    }
    if (parens) ExpectOp(")");
    if (target.names.empty()) Fail(Cur(), "expected an assignment target");
    target.kind = is_tuple ? Target::Kind::kTuple : Target::Kind::kName;
    return target;
  }

  // --- expressions ------------------------------------------------------------------------
  bool IsTupleEnd(std::initializer_list<std::string_view> extra_end) const {
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

  ExprPtr ParseTuple(bool explicit_parens, bool with_condexpr,
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

  ExprPtr ParseExpression(bool with_condexpr) {
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

  ExprPtr Binary(std::string op, ExprPtr left, ExprPtr right, const Token& at) {
    auto e = MakeExpr(Expr::Kind::kBinary, at);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      const Token& at = Next();
      left = Binary("or", std::move(left), ParseAnd(), at);
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      const Token& at = Next();
      left = Binary("and", std::move(left), ParseNot(), at);
    }
    return left;
  }

  ExprPtr ParseNot() {
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

  ExprPtr ParseCompare() {
    const Token& at = Cur();
    ExprPtr first = ParseMath1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      if (Cur().type == TT::kOperator &&
          (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" ||
           Cur().value == "<=" || Cur().value == ">" || Cur().value == ">=")) {
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

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const Token& at = Next();
      left = Binary(at.value, std::move(left), ParseConcat(), at);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      const Token& at = Next();
      left = Binary("~", std::move(left), ParseMath2(), at);
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& at = Next();
      left = Binary(at.value, std::move(left), ParsePow(), at);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      const Token& at = Next();
      left = Binary("**", std::move(left), ParseUnary(true), at);
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
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

  ExprPtr ParsePrimary() {
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

  ExprPtr ParsePostfix(ExprPtr node) {
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

  ExprPtr ParseSubscribed() {
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

  void ParseCallArgs(Expr* e) {
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

  ExprPtr ParseCall(ExprPtr callee) {
    auto e = MakeExpr(Expr::Kind::kCall, Cur());
    e->args.push_back(std::move(callee));
    ParseCallArgs(e.get());
    return e;
  }

  std::string ParseDottedName() {
    std::string name = ExpectName();
    while (IsOp(".")) {
      Next();
      name += "." + ExpectName();
    }
    return name;
  }

  ExprPtr ParseFilterChain(ExprPtr node, bool start_inline) {
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

  ExprPtr ParseFilterExpr(ExprPtr node) {
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

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body Parse(std::string_view source) { return Parser(Tokenize(source)).ParseTemplate(); }

}  // namespace tandem::jinja
