// Jinja parser (see parser.h): statements here, expressions in parser_expr.cc. Method names
// mirror jinja2/parser.py.
#include "common/jinja/parser.h"

#include "common/jinja/parser_internal.h"

namespace tandem::jinja {
namespace {

using parser_internal::Describe;
using parser_internal::ExprParser;
using parser_internal::TT;

class Parser : public ExprParser {
 public:
  explicit Parser(std::vector<Token> tokens) : ExprParser(std::move(tokens)) {}

  Body ParseTemplate() {
    Body body = Subparse({});
    if (Cur().type != TT::kEnd) Fail(Cur(), Cat("unexpected '", Describe(Cur()), "'"));
    return body;
  }

 private:
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
                    quoted, ". The innermost block that needs to be closed is '", innermost, "'."));
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
    static const char* kUnsupported[] = {"call",    "include", "import",    "from",
                                         "extends", "do",      "autoescape"};
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

  int loop_depth_ = 0;
};

}  // namespace

Body Parse(std::string_view source) { return Parser(Tokenize(source)).ParseTemplate(); }

}  // namespace tandem::jinja
