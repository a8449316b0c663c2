// Python json.dumps (see json_dump.h).
#include "common/jinja/json_dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/jinja/error.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

constexpr int kMaxDepth = 512;

void AppendEscape(char32_t c, std::string* out) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
  out->append(buf);
}

void DumpString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (char32_t c : text::Decode(s)) {
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      AppendEscape(c, out);
    } else if (ensure_ascii && c > 0x7E) {
      if (c >= 0x10000) {
        char32_t v = c - 0x10000;
        AppendEscape(0xD800 | ((v >> 10) & 0x3FF), out);
        AppendEscape(0xDC00 | (v & 0x3FF), out);
      } else {
        AppendEscape(c, out);
      }
    } else {
      text::AppendUtf8(c, out);
    }
  }
  out->push_back('"');
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {
    item_sep_ = o.item_separator.value_or(o.indent ? "," : ", ");
    key_sep_ = o.key_separator.value_or(": ");
  }

  void Dump(const Value& v, int level, std::string* out) {
    if (level > kMaxDepth) Fail("tojson: value nested too deeply");
    switch (v.type()) {
      case Value::Type::kNone:
        out->append("null");
        return;
      case Value::Type::kBool:
        out->append(v.AsBool() ? "true" : "false");
        return;
      case Value::Type::kInt:
        out->append(std::to_string(v.AsInt()));
        return;
      case Value::Type::kFloat: {
        double d = v.AsDouble();
        if (std::isnan(d)) {
          out->append("NaN");
        } else if (std::isinf(d)) {
          out->append(d > 0 ? "Infinity" : "-Infinity");
        } else {
          out->append(PyFloatRepr(d));
        }
        return;
      }
      case Value::Type::kString:
        DumpString(v.AsString(), o_.ensure_ascii, out);
        return;
      case Value::Type::kArray: {
        const auto& items = v.array().items;
        if (items.empty()) {
          out->append("[]");
          return;
        }
        out->push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out->append(item_sep_);
          Newline(level + 1, out);
          Dump(items[i], level + 1, out);
        }
        Newline(level, out);
        out->push_back(']');
        return;
      }
      case Value::Type::kObject: {
        const auto& items = v.object().items;
        if (items.empty()) {
          out->append("{}");
          return;
        }
        std::vector<const std::pair<std::string, Value>*> order;
        for (const auto& kv : items) order.push_back(&kv);
        if (o_.sort_keys) {
          std::stable_sort(order.begin(), order.end(),
                           [](auto* a, auto* b) { return a->first < b->first; });
        }
        out->push_back('{');
        for (size_t i = 0; i < order.size(); ++i) {
          if (i) out->append(item_sep_);
          Newline(level + 1, out);
          DumpString(order[i]->first, o_.ensure_ascii, out);
          out->append(key_sep_);
          Dump(order[i]->second, level + 1, out);
        }
        Newline(level, out);
        out->push_back('}');
        return;
      }
      default:
        Fail("Object of type " + v.TypeName() + " is not JSON serializable");
    }
  }

 private:
  void Newline(int level, std::string* out) {
    if (!o_.indent) return;
    out->push_back('\n');
    for (int i = 0; i < level; ++i) out->append(*o_.indent);
  }

  const JsonDumpOptions& o_;
  std::string item_sep_;
  std::string key_sep_;
};

}  // namespace

std::string JsonDumps(const Value& value, const JsonDumpOptions& options) {
  std::string out;
  Dumper(options).Dump(value, 0, &out);
  return out;
}

}  // namespace tandem::jinja
