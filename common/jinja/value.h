// The value model of the Jinja interpreter: a Python-like dynamic value.
//
// Contract: Value is a cheap-to-copy handle (strings, lists, dicts, namespaces and callables are
// shared, like Python references). Types: undefined (jinja2's default Undefined, carrying the
// error message raised when it is used), none, bool, int (int64), float (double), str (UTF-8),
// list / tuple, dict (string keys, insertion order kept), namespace (mutable attribute bag from
// `namespace(...)`) and callable (builtin function, bound method or macro). Str()/Repr()/Equals/
// Compare follow Python 3 (`str()`, `repr()`, `==`, `<`). Not thread-safe to mutate; the
// evaluator of one render is single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::jinja {

class Evaluator;
class Value;
struct CallArgs;

// Containers record their nesting depth (1 + deepest child container) so that runaway nesting
// is refused when built (kMaxValueDepth) instead of overflowing the stack later.
constexpr int kMaxValueDepth = 1000;

struct ArrayData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;
};

// Insertion-ordered string-keyed map (Python dict with str keys).
struct ObjectData {
  std::vector<std::pair<std::string, Value>> items;
  int depth = 1;
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(std::string key, Value value);
};

struct NamespaceData {
  ObjectData attrs;
};

using NativeFn = std::function<Value(Evaluator&, const CallArgs&)>;
struct CallableData {
  std::string name;
  NativeFn fn;
};

class Value {
 public:
  enum class Type {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kArray,
    kObject,
    kNamespace,
    kCallable
  };

  Value();                    // undefined
  Value(bool b);              // NOLINT(google-explicit-constructor)
  Value(int v);               // NOLINT
  Value(int64_t v);           // NOLINT
  Value(double v);            // NOLINT
  Value(std::string s);       // NOLINT
  Value(std::string_view s);  // NOLINT
  Value(const char* s);       // NOLINT

  // `message` is what using the undefined value raises, e.g. "'foo' is undefined".
  static Value Undefined(std::string message);
  static Value None();
  static Value Array(std::vector<Value> items = {}, bool is_tuple = false);
  static Value Object(std::shared_ptr<ObjectData> data = nullptr);
  static Value Namespace(std::shared_ptr<NamespaceData> data = nullptr);
  static Value Function(std::string name, NativeFn fn);
  static Value FromJson(const nlohmann::ordered_json& json);

  Type type() const { return static_cast<Type>(data_.index()); }
  bool IsUndefined() const { return type() == Type::kUndefined; }
  bool IsNone() const { return type() == Type::kNone; }
  bool IsBool() const { return type() == Type::kBool; }
  bool IsInt() const { return type() == Type::kInt; }
  bool IsFloat() const { return type() == Type::kFloat; }
  bool IsNumber() const { return IsBool() || IsInt() || IsFloat(); }  // Python numbers.Number
  bool IsString() const { return type() == Type::kString; }
  bool IsArray() const { return type() == Type::kArray; }
  bool IsObject() const { return type() == Type::kObject; }
  bool IsNamespace() const { return type() == Type::kNamespace; }
  bool IsCallable() const { return type() == Type::kCallable; }

  bool AsBool() const { return std::get<bool>(data_); }
  // Typed accessors; a value of another type throws JinjaError (Python's TypeError).
  int64_t AsInt() const;    // bool or int
  double AsDouble() const;  // bool, int or float
  const std::string& AsString() const;
  ArrayData& array() const { return *std::get<std::shared_ptr<ArrayData>>(data_); }
  ObjectData& object() const { return *std::get<std::shared_ptr<ObjectData>>(data_); }
  NamespaceData& ns() const { return *std::get<std::shared_ptr<NamespaceData>>(data_); }
  const CallableData& callable() const { return *std::get<std::shared_ptr<CallableData>>(data_); }
  const std::string& undefined_message() const { return *std::get<UndefPtr>(data_).message; }
  const void* identity() const;  // for `is sameas` on reference types
  int depth() const;             // container nesting depth; 0 for scalars

  bool Truthy() const;
  std::string Str() const;   // Python str(); undefined -> ""
  std::string Repr() const;  // Python repr()
  void AppendRepr(std::string* out, int level) const;
  std::string TypeName() const;  // Python type name: 'str', 'int', 'dict', 'NoneType', ...

 private:
  struct UndefPtr {
    std::shared_ptr<const std::string> message;
  };
  using StrPtr = std::shared_ptr<const std::string>;
  static Value FromJsonAt(const nlohmann::ordered_json& json, int level);
  std::variant<UndefPtr, std::nullptr_t, bool, int64_t, double, StrPtr, std::shared_ptr<ArrayData>,
               std::shared_ptr<ObjectData>, std::shared_ptr<NamespaceData>,
               std::shared_ptr<CallableData>>
      data_;
};

// Arguments of a call: positional then keyword, as written.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` (positional) or passed as `name`; nullptr if absent.
  const Value* Get(size_t index, std::string_view name) const;
  // Throws unless at most `max_positional` positional args and only keywords from `names`.
  void Check(std::string_view fn, size_t max_positional,
             std::initializer_list<std::string_view> names) const;
};

// Throws the value's error message if it is undefined (used before operations that fail on it).
void RequireDefined(const Value& v);

bool Equals(const Value& a, const Value& b);                       // Python ==
int Compare(const Value& a, const Value& b, std::string_view op);  // <0,0,>0; throws if unordered
std::string PyFloatRepr(double d);
std::string PyStringRepr(std::string_view s);

}  // namespace tandem::jinja
