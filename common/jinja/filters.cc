// Builtin filters (see builtins.h: FindFilter). Each mirrors the jinja2 filter of the same name
// (jinja2/filters.py) as configured by transformers (custom `tojson`, no autoescape).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/jinja/builtins.h"
#include "common/jinja/error.h"
#include "common/jinja/evaluator.h"
#include "common/jinja/json_dump.h"
#include "common/jinja/operators.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

Value StrList(std::vector<Value> items) { return Value::Array(std::move(items)); }

// Lowercases strings when sorting/comparing case-insensitively (jinja2 ignore_case).
Value IgnoreCase(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.IsString()) return Value(text::Lower(v.AsString()));
  return v;
}

Value KeyOf(Evaluator& ev, const Value& item, const Value* attribute, bool case_sensitive) {
  Value key = item;
  if (attribute && !attribute->IsNone()) {
    key = attribute->IsInt() ? ev.GetItem(item, *attribute)
                             : ev.GetDottedAttr(item, attribute->Str());
  }
  return IgnoreCase(key, case_sensitive);
}

Value FAbs(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("abs", 0, {});
  RequireDefined(v);
  if (v.IsFloat()) return Value(std::fabs(v.AsDouble()));
  if (v.IsInt() || v.IsBool()) return Value(static_cast<int64_t>(std::llabs(v.AsInt())));
  Fail("bad operand type for abs(): '" + v.TypeName() + "'");
}

Value FAttr(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("attr", 1, {"name"});
  std::string name = StrArg(a.Get(0, "name"), "");
  RequireDefined(v);
  if (v.IsNamespace()) {
    if (const Value* x = v.ns().attrs.Find(name)) return *x;
  } else if (auto m = FindMethod(v, name)) {
    return *m;
  }
  return Value::Undefined(Cat("'", v.TypeName(), " object' has no attribute '", name, "'"));
}

Value FBatch(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("batch", 2, {"linecount", "fill_with"});
  int64_t n = IntArg(a.Get(0, "linecount"), 0, "linecount");
  if (n <= 0) Fail("batch(): linecount must be positive");
  const Value* fill = a.Get(1, "fill_with");
  std::vector<Value> out, cur;
  for (Value& item : ev.Iterate(v)) {
    cur.push_back(std::move(item));
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(StrList(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    while (fill && !fill->IsNone() && static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
    out.push_back(StrList(std::move(cur)));
  }
  return StrList(std::move(out));
}

Value FCapitalize(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("capitalize", 0, {});
  return Value(text::Capitalize(v.Str()));
}

Value FCenter(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("center", 1, {"width"});
  int64_t width = IntArg(a.Get(0, "width"), 80, "width");
  std::string s = v.Str();
  int64_t pad = width - text::Length(s);
  if (pad <= 0) return Value(s);
  int64_t left = pad / 2 + (pad & width & 1);
  return Value(std::string(left, ' ') + s + std::string(pad - left, ' '));
}

Value FDefault(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("default", 2, {"default_value", "boolean"});
  const Value* fallback = a.Get(0, "default_value");
  bool boolean = BoolArg(a.Get(1, "boolean"), false);
  if (v.IsUndefined() || (boolean && !v.Truthy())) return fallback ? *fallback : Value("");
  return v;
}

Value FDictSort(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("dictsort", 3, {"case_sensitive", "by", "reverse"});
  bool cs = BoolArg(a.Get(0, "case_sensitive"), false);
  std::string by = StrArg(a.Get(1, "by"), "key");
  bool reverse = BoolArg(a.Get(2, "reverse"), false);
  if (by != "key" && by != "value") Fail("You can only sort by either \"key\" or \"value\"");
  RequireDefined(v);
  if (!v.IsObject()) Fail("dictsort(): value must be a mapping");
  std::vector<Value> items;
  for (const auto& [k, x] : v.object().items) items.push_back(Value::Array({Value(k), x}, true));
  size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    int c =
        Compare(IgnoreCase(x.array().items[idx], cs), IgnoreCase(y.array().items[idx], cs), "<");
    return reverse ? c > 0 : c < 0;
  });
  return StrList(std::move(items));
}

Value FEscape(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("escape", 0, {});
  std::string out;
  for (char c : v.Str()) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return Value(std::move(out));
}

Value FFirst(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("first", 0, {});
  std::vector<Value> items = ev.Iterate(v);
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}

Value FLast(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("last", 0, {});
  RequireDefined(v);
  std::vector<Value> items = ev.Iterate(v);
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

std::optional<double> ParseFloat(const Value& v) {
  if (v.IsNumber()) return v.AsDouble();
  if (!v.IsString()) return std::nullopt;
  std::string s = text::Strip(v.AsString(), std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  std::string lower = text::Lower(s);
  if (lower.find("0x") != std::string::npos) return std::nullopt;  // strtod accepts hex
  return d;
}

Value FFloat(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("float", 1, {"default"});
  std::optional<double> d = ParseFloat(v);
  if (d) return Value(*d);
  const Value* fallback = a.Get(0, "default");
  return fallback ? *fallback : Value(0.0);
}

Value FInt(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("int", 2, {"default", "base"});
  const Value* fallback = a.Get(0, "default");
  int64_t base = IntArg(a.Get(1, "base"), 10, "base");
  if (v.IsInt() || v.IsBool()) return Value(v.AsInt());
  if (v.IsFloat() && std::isfinite(v.AsDouble())) {
    return Value(static_cast<int64_t>(std::trunc(v.AsDouble())));
  }
  if (v.IsString()) {
    std::string s = text::Strip(v.AsString(), std::nullopt, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (!s.empty()) {
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(s.c_str(), &end, static_cast<int>(base));
      if (end == s.c_str() + s.size() && errno == 0) return Value(static_cast<int64_t>(x));
    }
    std::optional<double> d = ParseFloat(v);
    if (d && std::isfinite(*d)) return Value(static_cast<int64_t>(std::trunc(*d)));
  }
  return fallback ? *fallback : Value(int64_t{0});
}

Value FFormat(Evaluator&, const Value& v, const CallArgs& a) {
  if (!a.keyword.empty()) {
    auto data = std::make_shared<ObjectData>();
    for (const auto& [k, x] : a.keyword) data->Set(k, x);
    return Value(PercentFormat(v.Str(), Value::Object(std::move(data))));
  }
  return Value(PercentFormat(v.Str(), Value::Array(a.positional, true)));
}

Value FIndent(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("indent", 3, {"width", "first", "blank"});
  const Value* w = a.Get(0, "width");
  std::string indention =
      (w && w->IsString()) ? w->AsString() : std::string(IntArg(w, 4, "width"), ' ');
  bool first = BoolArg(a.Get(1, "first"), false);
  bool blank = BoolArg(a.Get(2, "blank"), false);
  std::string s = v.Str() + "\n";
  std::vector<std::string> lines = text::SplitLines(s, false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n" + (lines[i].empty() ? lines[i] : indention + lines[i]);
    }
  }
  return Value(first ? indention + rv : rv);
}

Value FItems(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("items", 0, {});
  if (v.IsUndefined()) return StrList({});
  if (!v.IsObject()) Fail("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.object().items) out.push_back(Value::Array({Value(k), x}, true));
  return StrList(std::move(out));
}

Value FJoin(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("join", 2, {"d", "attribute"});
  std::string sep = StrArg(a.Get(0, "d"), "");
  const Value* attribute = a.Get(1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& item : ev.Iterate(v)) {
    if (!first) out += sep;
    first = false;
    out +=
        (attribute && !attribute->IsNone()) ? KeyOf(ev, item, attribute, true).Str() : item.Str();
  }
  return Value(std::move(out));
}

Value FLength(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("length", 0, {});
  switch (v.type()) {
    case Value::Type::kUndefined:
      return Value(int64_t{0});
    case Value::Type::kString:
      return Value(text::Length(v.AsString()));
    case Value::Type::kArray:
      return Value(static_cast<int64_t>(v.array().items.size()));
    case Value::Type::kObject:
      return Value(static_cast<int64_t>(v.object().items.size()));
    default:
      Fail("object of type '" + v.TypeName() + "' has no len()");
  }
}

Value FList(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("list", 0, {});
  return StrList(ev.Iterate(v));
}

Value FLower(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("lower", 0, {});
  return Value(text::Lower(v.Str()));
}

Value FUpper(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("upper", 0, {});
  return Value(text::Upper(v.Str()));
}

Value FMap(Evaluator& ev, const Value& v, const CallArgs& a) {
  std::vector<Value> out;
  if (a.positional.empty()) {
    a.Check("map", 0, {"attribute", "default"});
    const Value* attribute = a.Get(SIZE_MAX, "attribute");
    if (attribute == nullptr) Fail("map requires a filter argument");
    const Value* fallback = a.Get(SIZE_MAX, "default");
    for (const Value& item : ev.Iterate(v)) {
      Value x = KeyOf(ev, item, attribute, true);
      out.push_back((x.IsUndefined() && fallback) ? *fallback : x);
    }
    return StrList(std::move(out));
  }
  std::string name = a.positional[0].Str();
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : ev.Iterate(v)) out.push_back(ev.ApplyFilter(name, item, rest));
  return StrList(std::move(out));
}

Value MinMax(Evaluator& ev, const Value& v, const CallArgs& a, bool want_max) {
  a.Check(want_max ? "max" : "min", 2, {"case_sensitive", "attribute"});
  bool cs = BoolArg(a.Get(0, "case_sensitive"), false);
  const Value* attribute = a.Get(1, "attribute");
  std::vector<Value> items = ev.Iterate(v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    int c = Compare(KeyOf(ev, items[i], attribute, cs), KeyOf(ev, items[best], attribute, cs), "<");
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Value FMax(Evaluator& ev, const Value& v, const CallArgs& a) { return MinMax(ev, v, a, true); }
Value FMin(Evaluator& ev, const Value& v, const CallArgs& a) { return MinMax(ev, v, a, false); }

// select / reject / selectattr / rejectattr.
Value SelectImpl(Evaluator& ev, const Value& v, const CallArgs& a, bool by_attr, bool keep) {
  size_t first_test = by_attr ? 1 : 0;
  std::string attr;
  if (by_attr) {
    if (a.positional.empty()) Fail("Missing parameter for attribute name");
    attr = a.positional[0].Str();
  }
  std::string test;
  CallArgs test_args;
  if (a.positional.size() > first_test) {
    test = a.positional[first_test].Str();
    test_args.positional.assign(a.positional.begin() + first_test + 1, a.positional.end());
    test_args.keyword = a.keyword;
  }
  std::vector<Value> out;
  for (const Value& item : ev.Iterate(v)) {
    Value x = by_attr ? ev.GetDottedAttr(item, attr) : item;
    bool r = test.empty() ? x.Truthy() : ev.ApplyTest(test, x, test_args);
    if (r == keep) out.push_back(item);
  }
  return StrList(std::move(out));
}
Value FSelect(Evaluator& ev, const Value& v, const CallArgs& a) {
  return SelectImpl(ev, v, a, false, true);
}
Value FReject(Evaluator& ev, const Value& v, const CallArgs& a) {
  return SelectImpl(ev, v, a, false, false);
}
Value FSelectAttr(Evaluator& ev, const Value& v, const CallArgs& a) {
  return SelectImpl(ev, v, a, true, true);
}
Value FRejectAttr(Evaluator& ev, const Value& v, const CallArgs& a) {
  return SelectImpl(ev, v, a, true, false);
}

Value FReplace(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("replace", 3, {"old", "new", "count"});
  const Value* count = a.Get(2, "count");
  int64_t n = (count && !count->IsNone()) ? IntArg(count, -1, "count") : -1;
  return Value(text::Replace(v.Str(), StrArg(a.Get(0, "old"), ""), StrArg(a.Get(1, "new"), ""), n));
}

Value FReverse(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("reverse", 0, {});
  if (v.IsString()) return Value(text::Slice(v.AsString(), std::nullopt, std::nullopt, -1));
  RequireDefined(v);
  std::vector<Value> items = ev.Iterate(v);
  std::reverse(items.begin(), items.end());
  return StrList(std::move(items));
}

Value FRound(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("round", 2, {"precision", "method"});
  int64_t precision = IntArg(a.Get(0, "precision"), 0, "precision");
  std::string method = StrArg(a.Get(1, "method"), "common");
  if (method != "common" && method != "ceil" && method != "floor") {
    Fail("method must be common, ceil or floor");
  }
  RequireDefined(v);
  if (!v.IsNumber()) Fail("type " + v.TypeName() + " doesn't define __round__ method");
  double scale = std::pow(10.0, static_cast<double>(precision));
  if (method != "common") {
    double x = v.AsDouble() * scale;
    return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (!v.IsFloat()) {
    if (precision >= 0) return Value(v.AsInt());
    return Value(static_cast<int64_t>(std::nearbyint(v.AsDouble() / (1.0 / scale)) / scale));
  }
  double d = v.AsDouble();
  if (!std::isfinite(d)) return v;
  if (precision < 0 || precision > 300) return Value(std::nearbyint(d * scale) / scale);
  // Correctly rounded decimal conversion (ties-to-even on the exact binary value), as CPython.
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), d);
  return Value(std::strtod(buf, nullptr));
}

Value FSafe(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("safe", 0, {});
  return Value(v.Str());
}

Value FSort(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("sort", 3, {"reverse", "case_sensitive", "attribute"});
  bool reverse = BoolArg(a.Get(0, "reverse"), false);
  bool cs = BoolArg(a.Get(1, "case_sensitive"), false);
  const Value* attribute = a.Get(2, "attribute");
  std::vector<Value> items = ev.Iterate(v);
  std::vector<Value> keys;
  for (const Value& item : items) keys.push_back(KeyOf(ev, item, attribute, cs));
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    int c = Compare(keys[x], keys[y], "<");
    return reverse ? c > 0 : c < 0;
  });
  std::vector<Value> out;
  for (size_t i : order) out.push_back(items[i]);
  return StrList(std::move(out));
}

Value FString(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("string", 0, {});
  return Value(v.Str());
}

Value FSum(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("sum", 2, {"attribute", "start"});
  const Value* attribute = a.Get(0, "attribute");
  const Value* start = a.Get(1, "start");
  Value total = start ? *start : Value(int64_t{0});
  for (const Value& item : ev.Iterate(v)) {
    total = BinaryOp("+", total, KeyOf(ev, item, attribute, true));
  }
  return total;
}

Value FTitle(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("title", 0, {});
  return Value(text::JinjaTitle(v.Str()));
}

Value FToJson(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = BoolArg(a.Get(0, "ensure_ascii"), false);
  if (const Value* indent = a.Get(1, "indent"); indent && !indent->IsNone()) {
    o.indent = indent->IsString() ? indent->AsString()
                                  : std::string(std::max<int64_t>(0, indent->AsInt()), ' ');
  }
  if (const Value* seps = a.Get(2, "separators"); seps && !seps->IsNone()) {
    if (!seps->IsArray() || seps->array().items.size() != 2) {
      Fail("tojson(): separators must be a (item_separator, key_separator) pair");
    }
    o.item_separator = seps->array().items[0].Str();
    o.key_separator = seps->array().items[1].Str();
  }
  o.sort_keys = BoolArg(a.Get(3, "sort_keys"), false);
  return Value(JsonDumps(v, o));
}

Value FTrim(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("trim", 1, {"chars"});
  return Value(text::Strip(v.Str(), OptString(a.Get(0, "chars"), "trim"), true, true));
}

Value FUnique(Evaluator& ev, const Value& v, const CallArgs& a) {
  a.Check("unique", 2, {"case_sensitive", "attribute"});
  bool cs = BoolArg(a.Get(0, "case_sensitive"), false);
  const Value* attribute = a.Get(1, "attribute");
  std::vector<Value> out, seen;
  for (const Value& item : ev.Iterate(v)) {
    Value key = KeyOf(ev, item, attribute, cs);
    bool dup = false;
    for (const Value& s : seen) dup = dup || Equals(s, key);
    if (!dup) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return StrList(std::move(out));
}

Value FWordCount(Evaluator&, const Value& v, const CallArgs& a) {
  a.Check("wordcount", 0, {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : text::Decode(v.Str())) {
    bool w = c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
             (c >= 'A' && c <= 'Z') || (c >= 0x80 && !text::IsSpace(c));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", FAbs},
    {"attr", FAttr},
    {"batch", FBatch},
    {"capitalize", FCapitalize},
    {"center", FCenter},
    {"count", FLength},
    {"d", FDefault},
    {"default", FDefault},
    {"dictsort", FDictSort},
    {"e", FEscape},
    {"escape", FEscape},
    {"forceescape", FEscape},
    {"first", FFirst},
    {"float", FFloat},
    {"format", FFormat},
    {"indent", FIndent},
    {"int", FInt},
    {"items", FItems},
    {"join", FJoin},
    {"last", FLast},
    {"length", FLength},
    {"list", FList},
    {"lower", FLower},
    {"map", FMap},
    {"max", FMax},
    {"min", FMin},
    {"reject", FReject},
    {"rejectattr", FRejectAttr},
    {"replace", FReplace},
    {"reverse", FReverse},
    {"round", FRound},
    {"safe", FSafe},
    {"select", FSelect},
    {"selectattr", FSelectAttr},
    {"sort", FSort},
    {"string", FString},
    {"sum", FSum},
    {"title", FTitle},
    {"tojson", FToJson},
    {"trim", FTrim},
    {"unique", FUnique},
    {"upper", FUpper},
    {"wordcount", FWordCount},
};

}  // namespace

FilterFn FindFilter(std::string_view name) {
  for (const FilterEntry& f : kFilters) {
    if (name == f.name) return f.fn;
  }
  return nullptr;
}

}  // namespace tandem::jinja
