// Builtin tests (`x is name`), global functions of the chat-template environment and the
// argument helpers shared by builtins (see builtins.h).
#include <ctime>

#include "common/jinja/builtins.h"
#include "common/jinja/error.h"
#include "common/jinja/evaluator.h"
#include "common/jinja/operators.h"

namespace tandem::jinja {

std::optional<std::string> OptString(const Value* v, std::string_view what) {
  if (v == nullptr || v->IsNone()) return std::nullopt;
  if (!v->IsString()) {
    RequireDefined(*v);
    Fail(Cat(what, " arg must be None or str"));
  }
  return v->AsString();
}

int64_t IntArg(const Value* v, int64_t fallback, std::string_view what) {
  if (v == nullptr) return fallback;
  if (v->IsInt() || v->IsBool()) return v->AsInt();
  RequireDefined(*v);
  Fail(Cat("'", v->TypeName(), "' object cannot be interpreted as an integer (", what, ")"));
}

bool BoolArg(const Value* v, bool fallback) { return v ? v->Truthy() : fallback; }

std::string StrArg(const Value* v, std::string_view fallback) {
  return v ? v->Str() : std::string(fallback);
}

namespace {

const Value& Arg(const CallArgs& a, std::string_view test) {
  const Value* v = a.Get(0, "");
  if (v == nullptr) Fail(Cat("test '", test, "' requires an argument"));
  return *v;
}

int CompareArg(const Value& v, const CallArgs& a, std::string_view op) {
  return Compare(v, Arg(a, op), op);
}

bool TBoolean(Evaluator&, const Value& v, const CallArgs&) { return v.IsBool(); }
bool TCallable(Evaluator&, const Value& v, const CallArgs&) { return v.IsCallable(); }
bool TDefined(Evaluator&, const Value& v, const CallArgs&) { return !v.IsUndefined(); }
bool TUndefined(Evaluator&, const Value& v, const CallArgs&) { return v.IsUndefined(); }
bool TNone(Evaluator&, const Value& v, const CallArgs&) { return v.IsNone(); }
bool TTrue(Evaluator&, const Value& v, const CallArgs&) { return v.IsBool() && v.AsBool(); }
bool TFalse(Evaluator&, const Value& v, const CallArgs&) { return v.IsBool() && !v.AsBool(); }
bool TString(Evaluator&, const Value& v, const CallArgs&) { return v.IsString(); }
bool TNumber(Evaluator&, const Value& v, const CallArgs&) { return v.IsNumber(); }
bool TInteger(Evaluator&, const Value& v, const CallArgs&) { return v.IsInt(); }
bool TFloat(Evaluator&, const Value& v, const CallArgs&) { return v.IsFloat(); }
bool TMapping(Evaluator&, const Value& v, const CallArgs&) { return v.IsObject(); }
bool TEscaped(Evaluator&, const Value&, const CallArgs&) { return false; }
bool TIterable(Evaluator&, const Value& v, const CallArgs&) {
  return v.IsUndefined() || v.IsString() || v.IsArray() || v.IsObject();
}
bool TSequence(Evaluator&, const Value& v, const CallArgs&) {
  return v.IsUndefined() || v.IsString() || v.IsArray() || v.IsObject();
}
bool TLower(Evaluator&, const Value& v, const CallArgs&) {
  std::string s = v.Str();
  bool cased = false;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
    cased = cased || (c >= 'a' && c <= 'z');
  }
  return cased;
}
bool TUpper(Evaluator&, const Value& v, const CallArgs&) {
  std::string s = v.Str();
  bool cased = false;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') return false;
    cased = cased || (c >= 'A' && c <= 'Z');
  }
  return cased;
}
bool TOdd(Evaluator&, const Value& v, const CallArgs&) {
  return BinaryOp("%", v, Value(int64_t{2})).AsDouble() == 1;
}
bool TEven(Evaluator&, const Value& v, const CallArgs&) {
  return BinaryOp("%", v, Value(int64_t{2})).AsDouble() == 0;
}
bool TDivisibleBy(Evaluator&, const Value& v, const CallArgs& a) {
  return BinaryOp("%", v, Arg(a, "divisibleby")).AsDouble() == 0;
}
bool TEq(Evaluator&, const Value& v, const CallArgs& a) { return Equals(v, Arg(a, "==")); }
bool TNe(Evaluator&, const Value& v, const CallArgs& a) { return !Equals(v, Arg(a, "!=")); }
bool TLt(Evaluator&, const Value& v, const CallArgs& a) { return CompareArg(v, a, "<") < 0; }
bool TLe(Evaluator&, const Value& v, const CallArgs& a) { return CompareArg(v, a, "<=") <= 0; }
bool TGt(Evaluator&, const Value& v, const CallArgs& a) { return CompareArg(v, a, ">") > 0; }
bool TGe(Evaluator&, const Value& v, const CallArgs& a) { return CompareArg(v, a, ">=") >= 0; }
bool TIn(Evaluator&, const Value& v, const CallArgs& a) { return Contains(Arg(a, "in"), v); }
bool TSameAs(Evaluator&, const Value& v, const CallArgs& a) {
  const Value& other = Arg(a, "sameas");
  if (v.identity() != nullptr || other.identity() != nullptr) {
    return v.identity() == other.identity();
  }
  return v.type() == other.type() && Equals(v, other);
}
bool TFilter(Evaluator&, const Value& v, const CallArgs&) {
  return v.IsString() && FindFilter(v.AsString()) != nullptr;
}
bool TTest(Evaluator&, const Value& v, const CallArgs&) {
  return v.IsString() && FindTest(v.AsString()) != nullptr;
}

struct TestEntry {
  const char* name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"boolean", TBoolean},
    {"callable", TCallable},
    {"defined", TDefined},
    {"divisibleby", TDivisibleBy},
    {"eq", TEq},
    {"equalto", TEq},
    {"==", TEq},
    {"escaped", TEscaped},
    {"even", TEven},
    {"false", TFalse},
    {"filter", TFilter},
    {"float", TFloat},
    {"ge", TGe},
    {">=", TGe},
    {"gt", TGt},
    {"greaterthan", TGt},
    {">", TGt},
    {"in", TIn},
    {"integer", TInteger},
    {"iterable", TIterable},
    {"le", TLe},
    {"<=", TLe},
    {"lower", TLower},
    {"lt", TLt},
    {"lessthan", TLt},
    {"<", TLt},
    {"mapping", TMapping},
    {"ne", TNe},
    {"!=", TNe},
    {"none", TNone},
    {"number", TNumber},
    {"odd", TOdd},
    {"sameas", TSameAs},
    {"sequence", TSequence},
    {"string", TString},
    {"test", TTest},
    {"true", TTrue},
    {"undefined", TUndefined},
    {"upper", TUpper},
};

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value Range(Evaluator&, const CallArgs& a) {
  a.Check("range", 3, {});
  if (a.positional.empty()) Fail("range expected at least 1 argument, got 0");
  int64_t start = 0, stop, step = 1;
  if (a.positional.size() == 1) {
    stop = IntArg(&a.positional[0], 0, "range");
  } else {
    start = IntArg(&a.positional[0], 0, "range");
    stop = IntArg(&a.positional[1], 0, "range");
    if (a.positional.size() > 2) step = IntArg(&a.positional[2], 1, "range");
  }
  if (step == 0) Fail("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) {
      Fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    out.emplace_back(i);
  }
  return Value::Array(std::move(out));
}

// dict(mapping_or_pairs?, **kwargs) -> fresh attribute bag (shared by dict() and namespace()).
std::shared_ptr<ObjectData> DictFromArgs(const CallArgs& a, std::string_view fn) {
  if (a.positional.size() > 1) {
    Fail(Cat(fn, "() expected at most 1 positional argument, got ", a.positional.size()));
  }
  auto data = std::make_shared<ObjectData>();
  if (!a.positional.empty()) {
    const Value& init = a.positional[0];
    if (init.IsObject()) {
      *data = init.object();
    } else if (init.IsArray()) {
      for (const Value& pair : init.array().items) {
        if (!pair.IsArray() || pair.array().items.size() != 2 ||
            !pair.array().items[0].IsString()) {
          Fail(Cat(fn, "(): expected a sequence of (str, value) pairs"));
        }
        data->Set(pair.array().items[0].AsString(), pair.array().items[1]);
      }
    } else {
      Fail(Cat("'", init.TypeName(), "' object is not iterable"));
    }
  }
  for (const auto& [k, v] : a.keyword) data->Set(k, v);
  return data;
}

Value Dict(Evaluator&, const CallArgs& a) { return Value::Object(DictFromArgs(a, "dict")); }

Value MakeNamespace(Evaluator& ev, const CallArgs& a) {
  auto ns = std::make_shared<NamespaceData>();
  ns->attrs = *DictFromArgs(a, "namespace");
  ev.TrackNamespace(ns);
  return Value::Namespace(std::move(ns));
}

Value RaiseException(Evaluator&, const CallArgs& a) {
  const Value* msg = a.Get(0, "message");
  throw JinjaError(JinjaError::Kind::kRaised, msg ? msg->Str() : std::string());
}

Value StrftimeNow(Evaluator&, const CallArgs& a) {
  a.Check("strftime_now", 1, {"format"});
  const Value* fmt = a.Get(0, "format");
  if (fmt == nullptr || !fmt->IsString()) Fail("strftime_now() requires a format string");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  size_t n = std::strftime(buf, sizeof(buf), fmt->AsString().c_str(), &tm);
  if (n == 0 && !fmt->AsString().empty()) Fail("strftime_now(): result too long");
  return Value(std::string(buf, n));
}

}  // namespace

TestFn FindTest(std::string_view name) {
  for (const TestEntry& t : kTests) {
    if (name == t.name) return t.fn;
  }
  return nullptr;
}

std::vector<std::pair<std::string, Value>> GlobalFunctions() {
  return {
      {"range", Value::Function("range", Range)},
      {"dict", Value::Function("dict", Dict)},
      {"namespace", Value::Function("namespace", MakeNamespace)},
      {"raise_exception", Value::Function("raise_exception", RaiseException)},
      {"strftime_now", Value::Function("strftime_now", StrftimeNow)},
  };
}

}  // namespace tandem::jinja
