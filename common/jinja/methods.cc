// Methods of str / list / tuple / dict values, as reachable from templates through
// jinja2's ImmutableSandboxedEnvironment (see builtins.h: FindMethod).
#include <algorithm>

#include "common/jinja/builtins.h"
#include "common/jinja/error.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

using MethodFn = Value (*)(const Value& self, const CallArgs& args);

const std::string& Str(const Value& self) { return self.AsString(); }

std::string RequireStr(const Value* v, std::string_view fn) {
  if (v == nullptr) Fail(Cat(fn, "() missing required argument"));
  if (!v->IsString()) {
    RequireDefined(*v);
    Fail(Cat(fn, "() argument must be str, not ", v->TypeName()));
  }
  return v->AsString();
}

// Applies Python's optional [start:end] of find/count/startswith to `s`.
std::string Window(const std::string& s, const CallArgs& a, size_t first) {
  const Value* start = a.Get(first, "start");
  const Value* end = a.Get(first + 1, "end");
  if (!start && !end) return s;
  std::optional<int64_t> b, e;
  if (start && !start->IsNone()) b = start->AsInt();
  if (end && !end->IsNone()) e = end->AsInt();
  return text::Slice(s, b, e, 1);
}

Value StrStrip(const Value& self, const CallArgs& a, bool left, bool right, const char* name) {
  a.Check(name, 1, {"chars"});
  return Value(text::Strip(Str(self), OptString(a.Get(0, "chars"), name), left, right));
}
Value MStrip(const Value& s, const CallArgs& a) { return StrStrip(s, a, true, true, "strip"); }
Value MLStrip(const Value& s, const CallArgs& a) { return StrStrip(s, a, true, false, "lstrip"); }
Value MRStrip(const Value& s, const CallArgs& a) { return StrStrip(s, a, false, true, "rstrip"); }

Value StringList(const std::vector<std::string>& parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.emplace_back(p);
  return Value::Array(std::move(out));
}

Value SplitImpl(const Value& self, const CallArgs& a, bool reverse) {
  a.Check(reverse ? "rsplit" : "split", 2, {"sep", "maxsplit"});
  std::optional<std::string> sep = OptString(a.Get(0, "sep"), "split");
  if (sep && sep->empty()) Fail("empty separator");
  int64_t maxsplit = IntArg(a.Get(1, "maxsplit"), -1, "maxsplit");
  return StringList(reverse ? text::RSplit(Str(self), sep, maxsplit)
                            : text::Split(Str(self), sep, maxsplit));
}
Value MSplit(const Value& s, const CallArgs& a) { return SplitImpl(s, a, false); }
Value MRSplit(const Value& s, const CallArgs& a) { return SplitImpl(s, a, true); }

Value MSplitLines(const Value& s, const CallArgs& a) {
  a.Check("splitlines", 1, {"keepends"});
  return StringList(text::SplitLines(Str(s), BoolArg(a.Get(0, "keepends"), false)));
}

Value AffixImpl(const Value& self, const CallArgs& a, bool prefix) {
  const char* name = prefix ? "startswith" : "endswith";
  a.Check(name, 3, {});
  const Value* arg = a.Get(0, "");
  if (arg == nullptr) Fail(Cat(name, "() takes at least 1 argument (0 given)"));
  std::string s = Window(Str(self), a, 1);
  std::vector<Value> options = arg->IsArray() ? arg->array().items : std::vector<Value>{*arg};
  for (const Value& o : options) {
    std::string p = RequireStr(&o, name);
    bool hit = p.size() <= s.size() && (prefix ? s.compare(0, p.size(), p) == 0
                                               : s.compare(s.size() - p.size(), p.size(), p) == 0);
    if (hit) return Value(true);
  }
  return Value(false);
}
Value MStartsWith(const Value& s, const CallArgs& a) { return AffixImpl(s, a, true); }
Value MEndsWith(const Value& s, const CallArgs& a) { return AffixImpl(s, a, false); }

Value MUpper(const Value& s, const CallArgs& a) {
  a.Check("upper", 0, {});
  return Value(text::Upper(Str(s)));
}
Value MLower(const Value& s, const CallArgs& a) {
  a.Check("lower", 0, {});
  return Value(text::Lower(Str(s)));
}
Value MTitle(const Value& s, const CallArgs& a) {
  a.Check("title", 0, {});
  return Value(text::PyTitle(Str(s)));
}
Value MCapitalize(const Value& s, const CallArgs& a) {
  a.Check("capitalize", 0, {});
  return Value(text::Capitalize(Str(s)));
}

Value MReplace(const Value& s, const CallArgs& a) {
  a.Check("replace", 3, {"count"});
  std::string old_s = RequireStr(a.Get(0, ""), "replace");
  std::string new_s = RequireStr(a.Get(1, ""), "replace");
  return Value(text::Replace(Str(s), old_s, new_s, IntArg(a.Get(2, "count"), -1, "count")));
}

Value FindImpl(const Value& self, const CallArgs& a, bool reverse, bool raise) {
  a.Check("find", 3, {});
  std::string sub = RequireStr(a.Get(0, ""), "find");
  const Value* start = a.Get(1, "");
  int64_t offset = 0;
  std::string s = Window(Str(self), a, 1);
  if (start && !start->IsNone()) {
    offset = start->AsInt();
    if (offset < 0) offset = std::max<int64_t>(0, offset + text::Length(Str(self)));
  }
  int64_t r = text::Find(s, sub, reverse);
  if (r < 0) {
    if (raise) Fail("substring not found");
    return Value(int64_t{-1});
  }
  return Value(r + offset);
}
Value MFind(const Value& s, const CallArgs& a) { return FindImpl(s, a, false, false); }
Value MRFind(const Value& s, const CallArgs& a) { return FindImpl(s, a, true, false); }
Value MIndex(const Value& s, const CallArgs& a) { return FindImpl(s, a, false, true); }
Value MRIndex(const Value& s, const CallArgs& a) { return FindImpl(s, a, true, true); }

Value MCount(const Value& s, const CallArgs& a) {
  a.Check("count", 3, {});
  std::string sub = RequireStr(a.Get(0, ""), "count");
  return Value(text::Count(Window(Str(s), a, 1), sub));
}

Value MJoin(const Value& s, const CallArgs& a) {
  a.Check("join", 1, {});
  const Value* it = a.Get(0, "");
  if (it == nullptr) Fail("join() takes exactly one argument (0 given)");
  std::vector<Value> items;
  if (it->IsArray()) {
    items = it->array().items;
  } else if (it->IsObject()) {
    for (const auto& [k, v] : it->object().items) items.emplace_back(k);
  } else if (it->IsString()) {
    for (char32_t c : text::Decode(it->AsString())) items.emplace_back(text::Encode({&c, 1}));
  } else if (!it->IsUndefined()) {
    Fail("can only join an iterable");
  }
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].IsString()) {
      Fail(Cat("sequence item ", i, ": expected str instance, ", items[i].TypeName(), " found"));
    }
    if (i) out += Str(s);
    out += items[i].AsString();
  }
  return Value(std::move(out));
}

Value MFormat(const Value& self, const CallArgs& a) {
  const std::string& f = Str(self);
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') ++i;
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    size_t close = f.find('}', i);
    if (close == std::string::npos) Fail("Single '{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 0;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      if (colon + 1 < field.size()) Fail("format specs in str.format() are not supported");
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    const Value* v = nullptr;
    if (field.empty()) {
      v = a.Get(auto_index++, "");
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      v = a.Get(std::stoul(field), "");
    } else {
      v = a.Get(SIZE_MAX, field);
    }
    if (v == nullptr) Fail(Cat("format(): missing argument for field '", field, "'"));
    out += conversion == 'r' ? v->Repr() : v->Str();
  }
  return Value(std::move(out));
}

template <bool (*Pred)(char32_t)>
Value CharClass(const Value& s, const CallArgs& a) {
  a.Check("is...", 0, {});
  std::u32string u = text::Decode(Str(s));
  if (u.empty()) return Value(false);
  return Value(std::all_of(u.begin(), u.end(), Pred));
}
bool IsDigitC(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAlphaC(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAlnumC(char32_t c) { return IsDigitC(c) || IsAlphaC(c); }

Value CaseClass(const Value& s, const CallArgs& a, bool want_upper) {
  a.Check("is...", 0, {});
  bool any_cased = false;
  for (char c : Str(s)) {
    if (c >= 'a' && c <= 'z') {
      if (want_upper) return Value(false);
      any_cased = true;
    } else if (c >= 'A' && c <= 'Z') {
      if (!want_upper) return Value(false);
      any_cased = true;
    }
  }
  return Value(any_cased);
}
Value MIsLower(const Value& s, const CallArgs& a) { return CaseClass(s, a, false); }
Value MIsUpper(const Value& s, const CallArgs& a) { return CaseClass(s, a, true); }

Value PadImpl(const Value& s, const CallArgs& a, int where) {  // -1 ljust, 0 center, 1 rjust
  a.Check("pad", 2, {});
  int64_t width = IntArg(a.Get(0, ""), 0, "width");
  std::string fill = a.Get(1, "") ? RequireStr(a.Get(1, ""), "pad") : " ";
  if (text::Length(fill) != 1) Fail("The fill character must be exactly one character long");
  int64_t pad = width - text::Length(Str(s));
  if (pad <= 0) return s;
  int64_t left = where < 0 ? 0 : where > 0 ? pad : pad / 2 + (pad & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += Str(s);
  for (int64_t i = 0; i < pad - left; ++i) out += fill;
  return Value(std::move(out));
}
Value MLJust(const Value& s, const CallArgs& a) { return PadImpl(s, a, -1); }
Value MCenter(const Value& s, const CallArgs& a) { return PadImpl(s, a, 0); }
Value MRJust(const Value& s, const CallArgs& a) { return PadImpl(s, a, 1); }

Value MZFill(const Value& s, const CallArgs& a) {
  a.Check("zfill", 1, {});
  int64_t width = IntArg(a.Get(0, ""), 0, "width");
  std::string v = Str(s);
  int64_t pad = width - text::Length(v);
  if (pad <= 0) return s;
  size_t sign = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
  v.insert(sign, static_cast<size_t>(pad), '0');
  return Value(std::move(v));
}

Value PartitionImpl(const Value& s, const CallArgs& a, bool reverse) {
  a.Check("partition", 1, {});
  std::string sep = RequireStr(a.Get(0, ""), "partition");
  if (sep.empty()) Fail("empty separator");
  const std::string& v = Str(s);
  size_t hit = reverse ? v.rfind(sep) : v.find(sep);
  if (hit == std::string::npos) {
    return reverse ? Value::Array({Value(""), Value(""), s}, true)
                   : Value::Array({s, Value(""), Value("")}, true);
  }
  return Value::Array({Value(v.substr(0, hit)), Value(sep), Value(v.substr(hit + sep.size()))},
                      true);
}
Value MPartition(const Value& s, const CallArgs& a) { return PartitionImpl(s, a, false); }
Value MRPartition(const Value& s, const CallArgs& a) { return PartitionImpl(s, a, true); }

Value MRemovePrefix(const Value& s, const CallArgs& a) {
  std::string p = RequireStr(a.Get(0, ""), "removeprefix");
  const std::string& v = Str(s);
  return v.compare(0, p.size(), p) == 0 ? Value(v.substr(p.size())) : s;
}
Value MRemoveSuffix(const Value& s, const CallArgs& a) {
  std::string p = RequireStr(a.Get(0, ""), "removesuffix");
  const std::string& v = Str(s);
  return (p.size() <= v.size() && v.compare(v.size() - p.size(), p.size(), p) == 0)
             ? Value(v.substr(0, v.size() - p.size()))
             : s;
}

// --- dict -------------------------------------------------------------------------------
Value MItems(const Value& d, const CallArgs& a) {
  a.Check("items", 0, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.object().items) out.push_back(Value::Array({Value(k), v}, true));
  return Value::Array(std::move(out));
}
Value MKeys(const Value& d, const CallArgs& a) {
  a.Check("keys", 0, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.object().items) out.emplace_back(k);
  return Value::Array(std::move(out));
}
Value MValues(const Value& d, const CallArgs& a) {
  a.Check("values", 0, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.object().items) out.push_back(v);
  return Value::Array(std::move(out));
}
Value MGet(const Value& d, const CallArgs& a) {
  a.Check("get", 2, {});
  const Value* key = a.Get(0, "");
  if (key == nullptr) Fail("get expected at least 1 argument, got 0");
  const Value* fallback = a.Get(1, "");
  if (key->IsString()) {
    if (const Value* v = d.object().Find(key->AsString())) return *v;
  }
  return fallback ? *fallback : Value::None();
}
Value MCopy(const Value& v, const CallArgs& a) {
  a.Check("copy", 0, {});
  if (v.IsObject()) return Value::Object(std::make_shared<ObjectData>(v.object()));
  return Value::Array(v.array().items, v.array().is_tuple);
}

// --- list / tuple -----------------------------------------------------------------------
Value MListIndex(const Value& l, const CallArgs& a) {
  a.Check("index", 1, {});
  const Value* x = a.Get(0, "");
  if (x == nullptr) Fail("index expected at least 1 argument, got 0");
  const auto& items = l.array().items;
  for (size_t i = 0; i < items.size(); ++i) {
    if (Equals(items[i], *x)) return Value(static_cast<int64_t>(i));
  }
  Fail(Cat(x->Repr(), " is not in list"));
}
Value MListCount(const Value& l, const CallArgs& a) {
  a.Check("count", 1, {});
  const Value* x = a.Get(0, "");
  if (x == nullptr) Fail("count() takes exactly one argument (0 given)");
  int64_t n = 0;
  for (const Value& v : l.array().items) n += Equals(v, *x) ? 1 : 0;
  return Value(n);
}

struct MethodEntry {
  const char* name;
  MethodFn fn;
};

constexpr MethodEntry kStrMethods[] = {
    {"strip", MStrip},
    {"lstrip", MLStrip},
    {"rstrip", MRStrip},
    {"split", MSplit},
    {"rsplit", MRSplit},
    {"splitlines", MSplitLines},
    {"startswith", MStartsWith},
    {"endswith", MEndsWith},
    {"upper", MUpper},
    {"lower", MLower},
    {"casefold", MLower},
    {"title", MTitle},
    {"capitalize", MCapitalize},
    {"replace", MReplace},
    {"find", MFind},
    {"rfind", MRFind},
    {"index", MIndex},
    {"rindex", MRIndex},
    {"count", MCount},
    {"join", MJoin},
    {"format", MFormat},
    {"isdigit", CharClass<IsDigitC>},
    {"isdecimal", CharClass<IsDigitC>},
    {"isnumeric", CharClass<IsDigitC>},
    {"isalpha", CharClass<IsAlphaC>},
    {"isalnum", CharClass<IsAlnumC>},
    {"isspace", CharClass<text::IsSpace>},
    {"islower", MIsLower},
    {"isupper", MIsUpper},
    {"ljust", MLJust},
    {"rjust", MRJust},
    {"center", MCenter},
    {"zfill", MZFill},
    {"partition", MPartition},
    {"rpartition", MRPartition},
    {"removeprefix", MRemovePrefix},
    {"removesuffix", MRemoveSuffix},
};
constexpr MethodEntry kDictMethods[] = {
    {"items", MItems}, {"keys", MKeys}, {"values", MValues}, {"get", MGet}, {"copy", MCopy},
};
constexpr MethodEntry kListMethods[] = {
    {"index", MListIndex},
    {"count", MListCount},
    {"copy", MCopy},
};
constexpr const char* kUnsafeDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr const char* kUnsafeList[] = {"append", "clear", "pop",    "reverse",
                                       "insert", "sort",  "extend", "remove"};

template <size_t N>
std::optional<Value> Bind(const Value& obj, std::string_view name, const MethodEntry (&table)[N]) {
  for (const MethodEntry& m : table) {
    if (name == m.name) {
      MethodFn fn = m.fn;
      return Value::Function(m.name,
                             [obj, fn](Evaluator&, const CallArgs& args) { return fn(obj, args); });
    }
  }
  return std::nullopt;
}

template <size_t N>
std::optional<Value> Unsafe(const Value& obj, std::string_view name,
                            const char* const (&names)[N]) {
  for (const char* n : names) {
    if (name == n) {
      return Value::Undefined(
          Cat("access to attribute '", name, "' of '", obj.TypeName(), "' object is unsafe."));
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> FindMethod(const Value& obj, std::string_view name) {
  if (obj.IsString()) return Bind(obj, name, kStrMethods);
  if (obj.IsObject()) {
    if (auto m = Bind(obj, name, kDictMethods)) return m;
    return Unsafe(obj, name, kUnsafeDict);
  }
  if (obj.IsArray()) {
    if (auto m = Bind(obj, name, kListMethods)) return m;
    if (!obj.array().is_tuple) return Unsafe(obj, name, kUnsafeList);
  }
  return std::nullopt;
}

}  // namespace tandem::jinja
