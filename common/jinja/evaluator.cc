// Template execution (see evaluator.h).
#include "common/jinja/evaluator.h"

#include "common/jinja/builtins.h"
#include "common/jinja/error.h"
#include "common/jinja/operators.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

// jinja2's object_type_repr: how undefined-attribute messages name the object.
std::string ObjectTypeRepr(const Value& v) {
  if (v.IsNone()) return "None";
  if (v.IsNamespace()) return "jinja2.utils.Namespace object";
  return v.TypeName() + " object";
}

Value NoAttribute(const Value& obj, std::string_view name) {
  return Value::Undefined(Cat("'", ObjectTypeRepr(obj), "' has no attribute '", name, "'"));
}

Value NoElement(const Value& obj, const Value& key) {
  if (key.IsString()) return NoAttribute(obj, key.AsString());
  return Value::Undefined(Cat(ObjectTypeRepr(obj), " has no element ", key.Repr()));
}

// RAII: installs a fresh output buffer / scope / depth level and restores the previous one.
template <typename T>
class Restore {
 public:
  Restore(T* slot, T value) : slot_(slot), saved_(std::move(*slot)) { *slot_ = std::move(value); }
  ~Restore() { *slot_ = std::move(saved_); }

 private:
  T* slot_;
  T saved_;
};

}  // namespace

Evaluator::Evaluator(RenderLimits limits) : limits_(limits) {}

Evaluator::~Evaluator() {
  for (const auto& weak : namespaces_) {
    if (auto ns = weak.lock()) {
      std::vector<std::pair<std::string, Value>> attrs;
      attrs.swap(ns->attrs.items);  // empty the namespace first, then drop what it held
    }
  }
}

std::string Evaluator::Render(const Body& body, std::vector<std::pair<std::string, Value>> vars) {
  root_ = std::make_shared<Scope>();
  for (auto& [k, v] : GlobalFunctions()) root_->vars[k] = std::move(v);
  for (auto& [k, v] : vars) root_->vars[k] = std::move(v);
  scope_ = root_;
  std::string out;
  out_ = &out;
  ExecBody(body);
  out_ = nullptr;
  return out;
}

void Evaluator::Append(std::string_view s) {
  total_output_ += s.size();
  if (total_output_ > limits_.max_output_bytes) {
    throw JinjaError(JinjaError::Kind::kLimit,
                     Cat("template output exceeds ", limits_.max_output_bytes, " bytes"));
  }
  out_->append(s);
}

void Evaluator::CountIterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations) {
    throw JinjaError(JinjaError::Kind::kLimit,
                     Cat("template exceeds ", limits_.max_loop_iterations, " loop iterations"));
  }
}

const Value* Evaluator::Lookup(const std::string& name) const {
  for (const Scope* s = scope_.get(); s != nullptr; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

std::string Evaluator::Capture(const Body& body) {
  std::string buffer;
  Restore<std::string*> out(&out_, &buffer);
  ExecBody(body);
  return buffer;
}

Evaluator::Flow Evaluator::ExecBody(const Body& body) {
  for (const StmtPtr& s : body) {
    Flow f = Exec(*s);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Evaluator::Flow Evaluator::Exec(const Stmt& s) {
  try {
    switch (s.kind) {
      case Stmt::Kind::kText:
        Append(s.text);
        return Flow::kNormal;
      case Stmt::Kind::kOutput:
        Append(Eval(*s.expr).Str());
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (Eval(*cond).Truthy()) return ExecBody(body);
        }
        return ExecBody(s.else_body);
      case Stmt::Kind::kFor:
        ExecFor(s);
        return Flow::kNormal;
      case Stmt::Kind::kSet:
        Assign(s.target, Eval(*s.expr));
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        {
          Restore<ScopePtr> scope(&scope_, std::make_shared<Scope>(Scope{scope_, {}}));
          captured = Capture(s.body);
        }
        Assign(s.target, ApplyFilterChain(s.filter.get(), Value(std::move(captured))));
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        ExecMacroDef(s);
        return Flow::kNormal;
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        {
          Restore<ScopePtr> scope(&scope_, std::make_shared<Scope>(Scope{scope_, {}}));
          captured = Capture(s.body);
        }
        Append(ApplyFilterChain(s.filter.get(), Value(std::move(captured))).Str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        std::vector<Value> values;
        for (const auto& [target, expr] : s.assigns) values.push_back(Eval(*expr));
        Restore<ScopePtr> scope(&scope_, std::make_shared<Scope>(Scope{scope_, {}}));
        for (size_t i = 0; i < values.size(); ++i) Assign(s.assigns[i].first, values[i]);
        return ExecBody(s.body);
      }
      case Stmt::Kind::kScope: {
        Restore<ScopePtr> scope(&scope_, std::make_shared<Scope>(Scope{scope_, {}}));
        return ExecBody(s.body);
      }
    }
  } catch (JinjaError& e) {
    if (e.line() == 0) e.set_position(s.line, s.column);
    throw;
  }
  return Flow::kNormal;
}

void Evaluator::Assign(const Target& t, const Value& v) {
  switch (t.kind) {
    case Target::Kind::kName:
      scope_->vars[t.names[0]] = v;
      return;
    case Target::Kind::kTuple: {
      std::vector<Value> items = Iterate(v);
      if (!v.IsArray() && !v.IsString()) Fail("cannot unpack non-sequence " + v.TypeName());
      if (items.size() != t.names.size()) {
        Fail(items.size() > t.names.size()
                 ? Cat("too many values to unpack (expected ", t.names.size(), ")")
                 : Cat("not enough values to unpack (expected ", t.names.size(), ", got ",
                       items.size(), ")"));
      }
      for (size_t i = 0; i < items.size(); ++i) scope_->vars[t.names[i]] = items[i];
      return;
    }
    case Target::Kind::kNamespaceAttr: {
      const Value* ns = Lookup(t.names[0]);
      if (ns == nullptr || !ns->IsNamespace()) {
        Fail("cannot assign attribute on non-namespace object");
      }
      ns->ns().attrs.Set(t.attr, v);
      return;
    }
  }
}

void Evaluator::ExecFor(const Stmt& s) {
  Value iterable = Eval(*s.expr);
  std::vector<Value> items = Iterate(iterable);
  // jinja2 gives each iteration a fresh frame: assignments in the body neither leak out of the
  // loop nor survive into the next iteration. The frame (and the `loop` object) are recycled
  // when nothing kept a reference to them.
  const ScopePtr outer = scope_;
  Restore<ScopePtr> scope(&scope_, outer);
  ScopePtr frame;
  auto fresh_frame = [&] {
    if (frame && frame.use_count() <= 2) {
      frame->vars.clear();
    } else {
      frame = std::make_shared<Scope>(Scope{outer, {}});
    }
    scope_ = frame;
  };
  if (s.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      CountIterations(1);
      fresh_frame();
      Assign(s.target, item);
      if (Eval(*s.filter).Truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  std::shared_ptr<ObjectData> loop;
  for (int64_t i = 0; i < n; ++i) {
    CountIterations(1);
    fresh_frame();
    if (!loop || loop.use_count() > 1) {
      loop = std::make_shared<ObjectData>();
      for (const char* key : {"index0", "index", "revindex0", "revindex", "first", "last", "length",
                              "depth", "depth0", "previtem", "nextitem"}) {
        loop->items.emplace_back(key, Value());
      }
      std::weak_ptr<ObjectData> weak = loop;
      loop->items.emplace_back(
          "cycle", Value::Function("loop.cycle", [weak](Evaluator&, const CallArgs& args) {
            std::shared_ptr<ObjectData> self = weak.lock();
            if (!self) Fail("loop.cycle() called outside of its loop");
            if (args.positional.empty()) Fail("no items for cycling given");
            return args.positional[self->items[0].second.AsInt() % args.positional.size()];
          }));
    }
    auto& f = loop->items;
    f[0].second = Value(i);
    f[1].second = Value(i + 1);
    f[2].second = Value(n - i - 1);
    f[3].second = Value(n - i);
    f[4].second = Value(i == 0);
    f[5].second = Value(i == n - 1);
    f[6].second = Value(n);
    f[7].second = Value(1);
    f[8].second = Value(0);
    f[9].second = i > 0 ? items[i - 1] : Value::Undefined("there is no previous item");
    f[10].second = i + 1 < n ? items[i + 1] : Value::Undefined("there is no next item");
    scope_->vars["loop"] = Value::Object(loop);
    Assign(s.target, items[i]);
    if (ExecBody(s.body) == Flow::kBreak) break;
  }
  if (n == 0) {
    fresh_frame();
    ExecBody(s.else_body);
  }
}

void Evaluator::ExecMacroDef(const Stmt& s) {
  std::weak_ptr<Scope> defining = scope_;
  const Stmt* macro = &s;
  Value fn =
      Value::Function(s.name, [macro, defining](Evaluator& ev, const CallArgs& args) -> Value {
        ScopePtr parent = defining.lock();
        if (!parent) parent = ev.root_;
        auto frame = std::make_shared<Scope>(Scope{parent, {}});
        const auto& params = macro->params;
        std::vector<Value> varargs;
        for (size_t i = 0; i < args.positional.size(); ++i) {
          if (i < params.size()) {
            frame->vars[params[i].name] = args.positional[i];
          } else {
            varargs.push_back(args.positional[i]);
          }
        }
        auto kwargs = std::make_shared<ObjectData>();
        for (const auto& [k, v] : args.keyword) {
          bool is_param = false;
          for (const auto& p : params) is_param = is_param || p.name == k;
          if (is_param) {
            if (frame->vars.contains(k)) {
              Fail(Cat("macro '", macro->name, "' got multiple values for argument '", k, "'"));
            }
            frame->vars[k] = v;
          } else {
            kwargs->Set(k, v);
          }
        }
        frame->vars["varargs"] = Value::Array(std::move(varargs), /*is_tuple=*/true);
        frame->vars["kwargs"] = Value::Object(std::move(kwargs));
        Restore<ScopePtr> scope(&ev.scope_, frame);
        for (const auto& p : params) {
          if (frame->vars.contains(p.name)) continue;
          frame->vars[p.name] =
              p.default_value ? ev.Eval(*p.default_value)
                              : Value::Undefined(Cat("parameter '", p.name, "' was not provided"));
        }
        return Value(ev.Capture(macro->body));
      });
  scope_->vars[s.name] = std::move(fn);
}

Value Evaluator::ApplyFilterChain(const Expr* chain, Value input) {
  if (chain == nullptr) return input;
  Value inner = ApplyFilterChain(chain->args[0].get(), std::move(input));
  CallArgs args = EvalArgs(*chain, 1);
  return ApplyFilter(chain->name, inner, args);
}

CallArgs Evaluator::EvalArgs(const Expr& e, size_t first_arg) {
  CallArgs args;
  for (size_t i = first_arg; i < e.args.size(); ++i) args.positional.push_back(Eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, Eval(*v));
  return args;
}

Value Evaluator::Eval(const Expr& e) {
  try {
    return EvalInner(e);
  } catch (JinjaError& err) {
    if (err.line() == 0) err.set_position(e.line, e.column);
    throw;
  }
}

Value Evaluator::EvalInner(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kName: {
      const Value* v = Lookup(e.name);
      return v ? *v : Value::Undefined(Cat("'", e.name, "' is undefined"));
    }
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(Eval(*a));
      return Value::Array(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      auto data = std::make_shared<ObjectData>();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value key = Eval(*e.args[i]);
        if (!key.IsString()) Fail("only string keys are supported in dict literals");
        data->Set(key.AsString(), Eval(*e.args[i + 1]));
      }
      return Value::Object(std::move(data));
    }
    case Expr::Kind::kGetAttr:
      return GetAttr(Eval(*e.args[0]), e.name);
    case Expr::Kind::kGetItem: {
      Value obj = Eval(*e.args[0]);
      if (e.args[1]->kind == Expr::Kind::kSlice) return EvalSlice(obj, *e.args[1]);
      return GetItem(obj, Eval(*e.args[1]));
    }
    case Expr::Kind::kSlice:
      Fail("slice outside of a subscript");
    case Expr::Kind::kCall: {
      Value callee = Eval(*e.args[0]);
      return Call(callee, EvalArgs(e, 1));
    }
    case Expr::Kind::kFilter: {
      Value input = Eval(*e.args[0]);
      return ApplyFilter(e.name, input, EvalArgs(e, 1));
    }
    case Expr::Kind::kTest: {
      Value input = Eval(*e.args[0]);
      bool r = ApplyTest(e.name, input, EvalArgs(e, 1));
      return Value(e.negated ? !r : r);
    }
    case Expr::Kind::kUnary: {
      Value v = Eval(*e.args[0]);
      if (e.name == "not") return Value(!v.Truthy());
      return UnaryOp(e.name, v);
    }
    case Expr::Kind::kBinary: {
      Value a = Eval(*e.args[0]);
      if (e.name == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
      if (e.name == "or") return a.Truthy() ? a : Eval(*e.args[1]);
      return BinaryOp(e.name, a, Eval(*e.args[1]));
    }
    case Expr::Kind::kCompare: {
      Value left = Eval(*e.args[0]);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = Eval(*e.args[i + 1]);
        const std::string& op = e.ops[i];
        bool r;
        if (op == "==") {
          r = Equals(left, right);
        } else if (op == "!=") {
          r = !Equals(left, right);
        } else if (op == "in") {
          r = Contains(right, left);
        } else if (op == "notin") {
          r = !Contains(right, left);
        } else {
          int c = Compare(left, right, op);
          r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!r) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::kCond: {
      if (Eval(*e.args[0]).Truthy()) return Eval(*e.args[1]);
      if (e.args[2]) return Eval(*e.args[2]);
      return Value::Undefined(Cat("the inline if-expression on line ", e.line,
                                  " evaluated to false and no else section was "
                                  "defined."));
    }
  }
  return Value();
}

Value Evaluator::EvalSlice(const Value& obj, const Expr& slice) {
  auto bound = [&](const ExprPtr& p) -> std::optional<int64_t> {
    if (!p) return std::nullopt;
    Value v = Eval(*p);
    if (v.IsNone()) return std::nullopt;
    if (!v.IsInt() && !v.IsBool()) {
      RequireDefined(v);
      Fail("slice indices must be integers or None");
    }
    return v.AsInt();
  };
  std::optional<int64_t> start = bound(slice.args[0]);
  std::optional<int64_t> stop = bound(slice.args[1]);
  int64_t step = bound(slice.args[2]).value_or(1);
  if (step == 0) Fail("slice step cannot be zero");
  RequireDefined(obj);
  if (obj.IsString()) return Value(text::Slice(obj.AsString(), start, stop, step));
  if (obj.IsArray()) {
    const auto& items = obj.array().items;
    std::vector<Value> out;
    for (int64_t i : text::SliceIndices(static_cast<int64_t>(items.size()), start, stop, step)) {
      out.push_back(items[i]);
    }
    return Value::Array(std::move(out), obj.array().is_tuple);
  }
  Fail(Cat("'", obj.TypeName(), "' object is not subscriptable"));
}

Value Evaluator::GetAttr(const Value& obj, const std::string& name) {
  RequireDefined(obj);
  if (obj.IsObject()) {
    // Python getattr first: dict methods shadow keys of the same name.
    if (auto m = FindMethod(obj, name)) return *m;
    if (const Value* v = obj.object().Find(name)) return *v;
    return NoAttribute(obj, name);
  }
  if (obj.IsNamespace()) {
    if (const Value* v = obj.ns().attrs.Find(name)) return *v;
    return NoAttribute(obj, name);
  }
  if (auto m = FindMethod(obj, name)) return *m;
  return NoAttribute(obj, name);
}

Value Evaluator::GetItem(const Value& obj, const Value& key) {
  RequireDefined(obj);
  if (obj.IsArray() || obj.IsString()) {
    if (key.IsInt() || key.IsBool()) {
      int64_t i = key.AsInt();
      if (obj.IsString()) {
        auto c = text::At(obj.AsString(), i);
        return c ? Value(*c) : NoElement(obj, key);
      }
      const auto& items = obj.array().items;
      int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return NoElement(obj, key);
      return items[i];
    }
  } else if (obj.IsObject()) {
    if (key.IsString()) {
      if (const Value* v = obj.object().Find(key.AsString())) return *v;
    }
  }
  RequireDefined(key);
  // jinja2 falls back to getattr for string keys.
  if (key.IsString()) {
    if (obj.IsNamespace()) {
      if (const Value* v = obj.ns().attrs.Find(key.AsString())) return *v;
    } else if (auto m = FindMethod(obj, key.AsString())) {
      return *m;
    }
  }
  return NoElement(obj, key);
}

Value Evaluator::GetDottedAttr(const Value& obj, const std::string& path) {
  Value cur = obj;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    cur = digits ? GetItem(cur, Value(static_cast<int64_t>(std::stoll(part))))
                 : GetItem(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value Evaluator::Call(const Value& callee, const CallArgs& args) {
  RequireDefined(callee);
  if (!callee.IsCallable()) Fail(Cat("'", callee.TypeName(), "' object is not callable"));
  if (call_depth_ >= limits_.max_call_depth) {
    throw JinjaError(JinjaError::Kind::kLimit,
                     Cat("maximum call depth (", limits_.max_call_depth, ") exceeded"));
  }
  Restore<int> depth(&call_depth_, call_depth_ + 1);
  return callee.callable().fn(*this, args);
}

Value Evaluator::ApplyFilter(const std::string& name, const Value& input, const CallArgs& args) {
  FilterFn fn = FindFilter(name);
  if (fn == nullptr) Fail(Cat("No filter named '", name, "'."));
  if (call_depth_ >= limits_.max_call_depth) {
    throw JinjaError(JinjaError::Kind::kLimit,
                     Cat("maximum call depth (", limits_.max_call_depth, ") exceeded"));
  }
  Restore<int> depth(&call_depth_, call_depth_ + 1);
  return fn(*this, input, args);
}

bool Evaluator::ApplyTest(const std::string& name, const Value& input, const CallArgs& args) {
  TestFn fn = FindTest(name);
  if (fn == nullptr) Fail(Cat("No test named '", name, "'."));
  return fn(*this, input, args);
}

std::vector<Value> Evaluator::Iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
      return {};
    case Value::Type::kArray:
      return v.array().items;
    case Value::Type::kObject: {
      std::vector<Value> keys;
      keys.reserve(v.object().items.size());
      for (const auto& [k, unused] : v.object().items) keys.emplace_back(k);
      return keys;
    }
    case Value::Type::kString: {
      std::vector<Value> chars;
      for (char32_t c : text::Decode(v.AsString())) {
        std::string s;
        text::AppendUtf8(c, &s);
        chars.emplace_back(std::move(s));
      }
      return chars;
    }
    default:
      Fail(Cat("'", v.TypeName(), "' object is not iterable"));
  }
}

}  // namespace tandem::jinja
