// Value model (see value.h).
#include "common/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/jinja/error.h"
#include "common/jinja/text.h"

namespace tandem::jinja {

const Value* ObjectData::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* ObjectData::Find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {
int CheckDepth(int depth) {
  if (depth > kMaxValueDepth) Fail(Cat("value nested deeper than ", kMaxValueDepth, " levels"));
  return depth;
}
}  // namespace

void ObjectData::Set(std::string key, Value value) {
  depth = std::max(depth, CheckDepth(value.depth() + 1));
  if (Value* v = Find(key)) {
    *v = std::move(value);
  } else {
    items.emplace_back(std::move(key), std::move(value));
  }
}

Value::Value() : data_(UndefPtr{std::make_shared<const std::string>("value is undefined")}) {}
Value::Value(bool b) : data_(b) {}
Value::Value(int v) : data_(static_cast<int64_t>(v)) {}
Value::Value(int64_t v) : data_(v) {}
Value::Value(double v) : data_(v) {}
Value::Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
Value::Value(std::string_view s) : data_(std::make_shared<const std::string>(s)) {}
Value::Value(const char* s) : data_(std::make_shared<const std::string>(s)) {}

Value Value::Undefined(std::string message) {
  Value v;
  v.data_ = UndefPtr{std::make_shared<const std::string>(std::move(message))};
  return v;
}

Value Value::None() {
  Value v;
  v.data_ = nullptr;
  return v;
}

Value Value::Array(std::vector<Value> items, bool is_tuple) {
  Value v;
  auto data = std::make_shared<ArrayData>();
  for (const Value& item : items) data->depth = std::max(data->depth, item.depth() + 1);
  CheckDepth(data->depth);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  v.data_ = std::move(data);
  return v;
}

Value Value::Object(std::shared_ptr<ObjectData> data) {
  Value v;
  if (data) {
    for (const auto& [k, item] : data->items) data->depth = std::max(data->depth, item.depth() + 1);
    CheckDepth(data->depth);
  }
  v.data_ = data ? std::move(data) : std::make_shared<ObjectData>();
  return v;
}

Value Value::Namespace(std::shared_ptr<NamespaceData> data) {
  Value v;
  if (data) {
    for (const auto& [k, item] : data->attrs.items) {
      data->attrs.depth = std::max(data->attrs.depth, item.depth() + 1);
    }
    CheckDepth(data->attrs.depth);
  }
  v.data_ = data ? std::move(data) : std::make_shared<NamespaceData>();
  return v;
}

Value Value::Function(std::string name, NativeFn fn) {
  Value v;
  v.data_ = std::make_shared<CallableData>(CallableData{std::move(name), std::move(fn)});
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& json) { return FromJsonAt(json, 0); }

Value Value::FromJsonAt(const nlohmann::ordered_json& json, int level) {
  if (level > kMaxValueDepth) Fail(Cat("JSON nested deeper than ", kMaxValueDepth, " levels"));
  using J = nlohmann::ordered_json::value_t;
  switch (json.type()) {
    case J::null:
    case J::discarded:
      return None();
    case J::boolean:
      return Value(json.get<bool>());
    case J::number_integer:
      return Value(json.get<int64_t>());
    case J::number_unsigned: {
      uint64_t u = json.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case J::number_float:
      return Value(json.get<double>());
    case J::string:
      return Value(json.get_ref<const std::string&>());
    case J::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJsonAt(item, level + 1));
      return Array(std::move(items));
    }
    case J::object: {
      auto data = std::make_shared<ObjectData>();
      data->items.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it) {
        data->items.emplace_back(it.key(), FromJsonAt(it.value(), level + 1));
      }
      return Object(std::move(data));
    }
    case J::binary:
      Fail("binary JSON values are not supported in chat template contexts");
  }
  return None();
}

int64_t Value::AsInt() const {
  if (IsBool()) return AsBool() ? 1 : 0;
  if (!IsInt()) {
    RequireDefined(*this);
    Fail(Cat("'", TypeName(), "' object cannot be interpreted as an integer"));
  }
  return std::get<int64_t>(data_);
}

const std::string& Value::AsString() const {
  if (!IsString()) {
    RequireDefined(*this);
    Fail(Cat("expected a string, got '", TypeName(), "'"));
  }
  return *std::get<StrPtr>(data_);
}

double Value::AsDouble() const {
  if (IsFloat()) return std::get<double>(data_);
  return static_cast<double>(AsInt());
}

const void* Value::identity() const {
  switch (type()) {
    case Type::kArray:
      return &array();
    case Type::kObject:
      return &object();
    case Type::kNamespace:
      return &ns();
    case Type::kCallable:
      return &callable();
    default:
      return nullptr;
  }
}

int Value::depth() const {
  switch (type()) {
    case Type::kArray:
      return array().depth;
    case Type::kObject:
      return object().depth;
    case Type::kNamespace:
      return ns().attrs.depth;
    default:
      return 0;
  }
}

bool Value::Truthy() const {
  switch (type()) {
    case Type::kUndefined:
    case Type::kNone:
      return false;
    case Type::kBool:
      return AsBool();
    case Type::kInt:
      return AsInt() != 0;
    case Type::kFloat:
      return AsDouble() != 0.0;
    case Type::kString:
      return !AsString().empty();
    case Type::kArray:
      return !array().items.empty();
    case Type::kObject:
      return !object().items.empty();
    case Type::kNamespace:
    case Type::kCallable:
      return true;
  }
  return false;
}

std::string Value::TypeName() const {
  switch (type()) {
    case Type::kUndefined:
      return "Undefined";
    case Type::kNone:
      return "NoneType";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kString:
      return "str";
    case Type::kArray:
      return array().is_tuple ? "tuple" : "list";
    case Type::kObject:
      return "dict";
    case Type::kNamespace:
      return "Namespace";
    case Type::kCallable:
      return "function";
  }
  return "object";
}

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::string sign = std::signbit(d) ? "-" : "";
  d = std::fabs(d);
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = std::stoi(sci.substr(e + 1));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exp + 1;
  int n = static_cast<int>(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out = "0." + std::string(-decpt, '0') + digits;
    } else if (decpt >= n) {
      out = digits + std::string(decpt - n, '0') + ".0";
    } else {
      out = digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
  } else {
    out = digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    int x = decpt - 1;
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    out += ebuf;
  }
  return sign + out;
}

std::string PyStringRepr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : text::Decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
               (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF ||
               (c >= 0xD800 && c <= 0xDFFF)) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      text::AppendUtf8(c, &out);
    }
  }
  out.push_back(quote);
  return out;
}

std::string Value::Repr() const {
  std::string out;
  AppendRepr(&out, 0);
  return out;
}

void Value::AppendRepr(std::string* out, int level) const {
  if (level > kMaxValueDepth) Fail("value nested too deeply to print (recursive namespace?)");
  switch (type()) {
    case Type::kUndefined:
      *out += "Undefined";
      return;
    case Type::kNone:
      *out += "None";
      return;
    case Type::kBool:
      *out += AsBool() ? "True" : "False";
      return;
    case Type::kInt:
      *out += std::to_string(AsInt());
      return;
    case Type::kFloat:
      *out += PyFloatRepr(AsDouble());
      return;
    case Type::kString:
      *out += PyStringRepr(AsString());
      return;
    case Type::kArray: {
      const ArrayData& a = array();
      *out += a.is_tuple ? "(" : "[";
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (i) *out += ", ";
        a.items[i].AppendRepr(out, level + 1);
      }
      if (a.is_tuple && a.items.size() == 1) *out += ",";
      *out += a.is_tuple ? ")" : "]";
      return;
    }
    case Type::kObject:
    case Type::kNamespace: {
      const ObjectData& o = IsObject() ? object() : ns().attrs;
      *out += IsObject() ? "{" : "<Namespace {";
      bool first = true;
      for (const auto& [k, v] : o.items) {
        if (!first) *out += ", ";
        first = false;
        *out += PyStringRepr(k) + ": ";
        v.AppendRepr(out, level + 1);
      }
      *out += IsObject() ? "}" : "}>";
      return;
    }
    case Type::kCallable:
      *out += "<function " + callable().name + ">";
      return;
  }
}

std::string Value::Str() const {
  if (IsString()) return AsString();
  if (IsUndefined()) return "";
  return Repr();
}

const Value* CallArgs::Get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

void CallArgs::Check(std::string_view fn, size_t max_positional,
                     std::initializer_list<std::string_view> names) const {
  if (positional.size() > max_positional) {
    Fail(Cat(fn, "() takes at most ", max_positional, " positional argument",
             max_positional == 1 ? "" : "s", " (", positional.size(), " given)"));
  }
  for (const auto& [k, v] : keyword) {
    bool known = false;
    for (std::string_view n : names) known = known || n == k;
    if (!known) Fail(Cat(fn, "() got an unexpected keyword argument '", k, "'"));
  }
}

void RequireDefined(const Value& v) {
  if (v.IsUndefined()) Fail(v.undefined_message());
}

bool Equals(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return a.AsDouble() == b.AsDouble();
    return a.AsInt() == b.AsInt();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone:
      return true;
    case Value::Type::kString:
      return a.AsString() == b.AsString();
    case Value::Type::kArray: {
      const ArrayData& x = a.array();
      const ArrayData& y = b.array();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!Equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Type::kObject: {
      const ObjectData& x = a.object();
      const ObjectData& y = b.object();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.Find(k);
        if (!other || !Equals(v, *other)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

int Compare(const Value& a, const Value& b, std::string_view op) {
  RequireDefined(a);
  RequireDefined(b);
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) {
      double x = a.AsDouble(), y = b.AsDouble();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.AsInt(), y = b.AsInt();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.IsString() && b.IsString()) {
    int c = a.AsString().compare(b.AsString());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.IsArray() && b.IsArray() && a.array().is_tuple == b.array().is_tuple) {
    const auto& x = a.array().items;
    const auto& y = b.array().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equals(x[i], y[i])) return Compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  Fail(Cat("'", op, "' not supported between instances of '", a.TypeName(), "' and '", b.TypeName(),
           "'"));
}

}  // namespace tandem::jinja
