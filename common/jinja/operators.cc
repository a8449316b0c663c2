// Python operators on Values (see operators.h).
#include "common/jinja/operators.h"

#include <cmath>
#include <cstdio>

#include "common/jinja/error.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

constexpr size_t kMaxRepeatBytes = size_t{1} << 28;

[[noreturn]] void Unsupported(std::string_view op, const Value& a, const Value& b) {
  Fail(Cat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '", b.TypeName(),
           "'"));
}

template <typename Op>
int64_t CheckedInt(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) Fail("integer overflow");
  return r;
}
bool AddOverflow(int64_t x, int64_t y, int64_t* r) { return __builtin_add_overflow(x, y, r); }
bool SubOverflow(int64_t x, int64_t y, int64_t* r) { return __builtin_sub_overflow(x, y, r); }
bool MulOverflow(int64_t x, int64_t y, int64_t* r) { return __builtin_mul_overflow(x, y, r); }

Value Repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.IsString()) {
    const std::string& s = seq.AsString();
    if (!s.empty() && static_cast<uint64_t>(n) > kMaxRepeatBytes / s.size()) {
      Fail("repeated string is too large");
    }
    std::string out;
    out.reserve(s.size() * n);
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.array().items;
  if (!items.empty() && static_cast<uint64_t>(n) > kMaxRepeatBytes / 16 / items.size()) {
    Fail("repeated list is too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::Array(std::move(out), seq.array().is_tuple);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  if (b == 0) Fail("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) Fail("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t PyMod(int64_t a, int64_t b) {
  if (b == 0) Fail("integer modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double PyFMod(double a, double b) {
  if (b == 0) Fail("float modulo");
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  if (r == 0) r = std::copysign(0.0, b);
  return r;
}

Value Arith(std::string_view op, const Value& a, const Value& b) {
  bool as_float = a.IsFloat() || b.IsFloat();
  if (op == "/") {
    double y = b.AsDouble();
    if (y == 0) Fail("division by zero");
    return Value(a.AsDouble() / y);
  }
  if (as_float) {
    double x = a.AsDouble(), y = b.AsDouble();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "//") {
      if (y == 0) Fail("float floor division by zero");
      return Value(std::floor(x / y));
    }
    if (op == "%") return Value(PyFMod(x, y));
    if (op == "**") {
      if (x == 0 && y < 0) Fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(x, y));
    }
  } else {
    int64_t x = a.AsInt(), y = b.AsInt();
    if (op == "+") return Value(CheckedInt(AddOverflow, x, y));
    if (op == "-") return Value(CheckedInt(SubOverflow, x, y));
    if (op == "*") return Value(CheckedInt(MulOverflow, x, y));
    if (op == "//") return Value(FloorDiv(x, y));
    if (op == "%") return Value(PyMod(x, y));
    if (op == "**") {
      if (y < 0) {
        if (x == 0) Fail("0.0 cannot be raised to a negative power");
        return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      int64_t result = 1;
      int64_t base = x;
      while (y > 0) {
        if (y & 1) result = CheckedInt(MulOverflow, result, base);
        y >>= 1;
        if (y > 0) base = CheckedInt(MulOverflow, base, base);
      }
      return Value(result);
    }
  }
  Fail(Cat("unknown operator ", op));
}

}  // namespace

Value BinaryOp(std::string_view op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.Str() + b.Str());
  RequireDefined(a);
  RequireDefined(b);
  if (op == "%" && a.IsString()) return Value(PercentFormat(a.AsString(), b));
  if (a.IsNumber() && b.IsNumber()) return Arith(op, a, b);
  if (op == "+") {
    if (a.IsString() && b.IsString()) return Value(a.AsString() + b.AsString());
    if (a.IsArray() && b.IsArray() && a.array().is_tuple == b.array().is_tuple) {
      std::vector<Value> items = a.array().items;
      items.insert(items.end(), b.array().items.begin(), b.array().items.end());
      return Value::Array(std::move(items), a.array().is_tuple);
    }
    if (a.IsString() || (a.IsArray() && !a.array().is_tuple)) {
      Fail(Cat("can only concatenate ", a.TypeName(), " (not \"", b.TypeName(), "\") to ",
               a.TypeName()));
    }
  }
  if (op == "*") {
    if ((a.IsString() || a.IsArray()) && (b.IsInt() || b.IsBool())) return Repeat(a, b.AsInt());
    if ((b.IsString() || b.IsArray()) && (a.IsInt() || a.IsBool())) return Repeat(b, a.AsInt());
  }
  Unsupported(op, a, b);
}

Value UnaryOp(std::string_view op, const Value& v) {
  RequireDefined(v);
  if (!v.IsNumber()) {
    Fail(Cat("bad operand type for unary ", op, ": '", v.TypeName(), "'"));
  }
  if (op == "+") return v.IsBool() ? Value(v.AsInt()) : v;
  if (v.IsFloat()) return Value(-v.AsDouble());
  if (v.AsInt() == INT64_MIN) Fail("integer overflow");
  return Value(-v.AsInt());
}

bool Contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kUndefined:
      return false;
    case Value::Type::kString:
      if (!item.IsString()) {
        Fail(Cat("'in <string>' requires string as left operand, not ", item.TypeName()));
      }
      return container.AsString().find(item.AsString()) != std::string::npos;
    case Value::Type::kArray:
      for (const Value& v : container.array().items) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Type::kObject:
      if (item.IsArray() && !item.array().is_tuple) Fail("unhashable type: 'list'");
      if (item.IsObject()) Fail("unhashable type: 'dict'");
      return item.IsString() && container.object().Find(item.AsString()) != nullptr;
    default:
      Fail(Cat("argument of type '", container.TypeName(), "' is not iterable"));
  }
}

std::string PercentFormat(const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const ObjectData* mapping = nullptr;
  if (args.IsArray() && args.array().is_tuple) {
    positional = args.array().items;
  } else {
    if (args.IsObject()) mapping = &args.object();
    positional.push_back(args);
  }
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (++i >= format.size()) Fail("incomplete format");
    const Value* arg = nullptr;
    if (format[i] == '(') {
      size_t close = format.find(')', i);
      if (close == std::string::npos) Fail("incomplete format key");
      if (mapping == nullptr) Fail("format requires a mapping");
      std::string key = format.substr(i + 1, close - i - 1);
      arg = mapping->Find(key);
      if (arg == nullptr) Fail(Cat("KeyError: '", key, "'"));
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string::npos) {
      flags.push_back(format[i++]);
    }
    std::string width, precision;
    while (i < format.size() && isdigit(static_cast<unsigned char>(format[i]))) {
      width.push_back(format[i++]);
    }
    if (i < format.size() && format[i] == '.') {
      precision.push_back(format[i++]);
      while (i < format.size() && isdigit(static_cast<unsigned char>(format[i]))) {
        precision.push_back(format[i++]);
      }
    }
    if (i >= format.size()) Fail("incomplete format");
    char type = format[i];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (next >= positional.size()) Fail("not enough arguments for format string");
      arg = &positional[next++];
    }
    std::string piece;
    char buf[512];
    std::string spec = "%" + flags + width + precision;
    switch (type) {
      case 's':
      case 'r': {
        std::string s = type == 's' ? arg->Str() : arg->Repr();
        if (precision.size() > 1) s = text::Slice(s, 0, std::stoll(precision.substr(1)), 1);
        int64_t w = width.empty() ? 0 : std::stoll(width);
        int64_t pad = w - text::Length(s);
        if (pad > 0) {
          if (flags.find('-') != std::string::npos) {
            s.append(pad, ' ');
          } else {
            s.insert(0, pad, ' ');
          }
        }
        piece = s;
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg->IsNumber()) {
          Fail(Cat("%", std::string(1, type), " format: a real number is required, not ",
                   arg->TypeName()));
        }
        long long v = arg->IsFloat() ? static_cast<long long>(arg->AsDouble()) : arg->AsInt();
        std::string t(1, type == 'i' ? 'd' : type);
        std::snprintf(buf, sizeof(buf), (spec + "ll" + t).c_str(), v);
        piece = buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->IsNumber()) {
          Fail(Cat("must be real number, not ", arg->TypeName()));
        }
        std::snprintf(buf, sizeof(buf), (spec + std::string(1, type)).c_str(), arg->AsDouble());
        piece = buf;
        break;
      }
      case 'c': {
        if (arg->IsString() && text::Length(arg->AsString()) == 1) {
          piece = arg->AsString();
        } else if (arg->IsInt()) {
          text::AppendUtf8(static_cast<char32_t>(arg->AsInt()), &piece);
        } else {
          Fail("%c requires int or char");
        }
        break;
      }
      default:
        Fail(Cat("unsupported format character '", std::string(1, type), "'"));
    }
    out += piece;
  }
  if (!used_mapping && mapping == nullptr && next < positional.size()) {
    Fail("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace tandem::jinja
