// Jinja tokenizer (see lexer.h). Mirrors jinja2/lexer.py's rules; comments below name the
// jinja2 behaviour each branch reproduces.
#include "common/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/jinja/error.h"
#include "common/jinja/text.h"

namespace tandem::jinja {
namespace {

bool IsWs(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string RStripWs(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && IsWs(s[e - 1])) --e;
  return std::string(s.substr(0, e));
}

class Lexer {
 public:
  explicit Lexer(std::string_view raw) {
    // jinja2: newline_re.split + "\n".join, minus one trailing newline.
    src_.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      } else {
        src_.push_back(raw[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> Run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t start = src_.find('{', pos);
      while (start != std::string::npos && start + 1 < src_.size() && src_[start + 1] != '{' &&
             src_[start + 1] != '%' && src_[start + 1] != '#') {
        start = src_.find('{', start + 1);
      }
      if (start == std::string::npos || start + 1 >= src_.size()) {
        Emit(Token::Type::kText, src_.substr(pos), pos);
        break;
      }
      char kind = src_[start + 1];
      size_t after = start + 2;
      char sign =
          (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) ? src_[after] : 0;
      if (sign) ++after;
      std::string text = src_.substr(pos, start - pos);
      if (sign == '-') {
        text = RStripWs(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: strip spaces before a block/comment tag that starts its line.
        size_t l_pos = text.rfind('\n');
        l_pos = (l_pos == std::string::npos) ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            std::all_of(text.begin() + l_pos, text.end(), IsWs)) {
          text.resize(l_pos);
        }
      }
      Emit(Token::Type::kText, text, pos);
      if (kind == '#') {
        pos = LexComment(start, after, &line_starting);
      } else if (kind == '%' && IsRawBegin(after)) {
        pos = LexRaw(start, after, &line_starting);
      } else {
        pos = LexTag(kind == '{', start, after, &line_starting);
      }
    }
    Token end;
    end.type = Token::Type::kEnd;
    SetPos(&end, src_.size());
    tokens_.push_back(end);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void Error(const std::string& msg, size_t offset) {
    Token t;
    SetPos(&t, offset);
    throw JinjaError(JinjaError::Kind::kSyntax, msg, t.line, t.column);
  }

  void SetPos(Token* t, size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_idx = static_cast<size_t>(it - line_starts_.begin()) - 1;
    t->line = static_cast<int>(line_idx) + 1;
    t->column = static_cast<int>(offset - line_starts_[line_idx]) + 1;
  }

  void Emit(Token::Type type, std::string value, size_t offset) {
    if (type == Token::Type::kText && value.empty()) return;
    Token t;
    t.type = type;
    t.value = std::move(value);
    SetPos(&t, offset);
    tokens_.push_back(std::move(t));
  }

  // Consumes the whitespace control of a tag end at `p` (just past the '}' of the end
  // marker). `sign` is the character before the marker ('-', '+' or 0). Returns the new pos.
  size_t AfterEnd(size_t p, char sign, bool trim_newline, bool* line_starting) {
    if (sign == '-') {
      while (p < src_.size() && IsWs(src_[p])) ++p;
    } else if (sign == 0 && trim_newline && p < src_.size() && src_[p] == '\n') {
      ++p;  // trim_blocks
    }
    *line_starting = src_[p - 1] == '\n';
    return p;
  }

  size_t LexComment(size_t start, size_t body, bool* line_starting) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) Error("Missing end of comment tag", start);
    char sign = 0;
    if (end > body && (src_[end - 1] == '-' || src_[end - 1] == '+')) sign = src_[end - 1];
    return AfterEnd(end + 2, sign, /*trim_newline=*/true, line_starting);
  }

  bool IsRawBegin(size_t p) const {
    while (p < src_.size() && IsWs(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    size_t q = p;
    while (q < src_.size() && IsWs(src_[q])) ++q;
    return src_.compare(q, 2, "%}") == 0 || src_.compare(q, 3, "-%}") == 0;
  }

  size_t LexRaw(size_t start, size_t after, bool* line_starting) {
    size_t p = src_.find("%}", after);
    bool minus = src_[p - 1] == '-';
    p += 2;
    if (minus) {
      while (p < src_.size() && IsWs(src_[p])) ++p;
    }
    // Find {%(-|+|)\s*endraw\s*(+%}|-%}|%})
    size_t search = p;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) Error("Missing end of raw directive", start);
      size_t q = tag + 2;
      char sign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q] : 0;
      if (sign) ++q;
      while (q < src_.size() && IsWs(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && IsWs(src_[q])) ++q;
      char end_sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) {
        search = tag + 2;
        continue;
      }
      std::string body = src_.substr(p, tag - p);
      if (sign == '-') {
        body = RStripWs(body);
      } else if (sign != '+') {
        size_t l_pos = body.rfind('\n');
        l_pos = (l_pos == std::string::npos) ? 0 : l_pos + 1;
        if (l_pos > 0 && l_pos < body.size() &&
            std::all_of(body.begin() + l_pos, body.end(), IsWs)) {
          body.resize(l_pos);
        }
      }
      Emit(Token::Type::kText, body, p);
      return AfterEnd(q + 2, end_sign, /*trim_newline=*/true, line_starting);
    }
  }

  size_t LexTag(bool is_var, size_t start, size_t p, bool* line_starting) {
    Emit(is_var ? Token::Type::kVarBegin : Token::Type::kBlockBegin, "", start);
    std::vector<char> balance;
    while (true) {
      if (p >= src_.size()) {
        Error(is_var ? "unexpected end of template, expected end of print statement ('}}')"
                     : "unexpected end of template, expected end of statement ('%}')",
              start);
      }
      if (balance.empty()) {
        char sign = 0;
        size_t q = p;
        if (src_[q] == '-' || (!is_var && src_[q] == '+')) sign = src_[q++];
        if (src_.compare(q, 2, is_var ? "}}" : "%}") == 0) {
          Emit(is_var ? Token::Type::kVarEnd : Token::Type::kBlockEnd, "", p);
          return AfterEnd(q + 2, sign, /*trim_newline=*/!is_var, line_starting);
        }
      }
      char c = src_[p];
      if (IsWs(c)) {
        ++p;
        continue;
      }
      if (IsDigit(c)) {
        p = LexNumber(p);
      } else if (IsNameStart(c)) {
        size_t q = p;
        while (q < src_.size() && IsNameChar(src_[q])) ++q;
        Emit(Token::Type::kName, src_.substr(p, q - p), p);
        p = q;
      } else if (c == '\'' || c == '"') {
        p = LexString(p);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                     "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                     "<",  ">",  "=",  ".",  ":",  "|",  ",", ";"};
        std::string op;
        for (const char* candidate : kOps) {
          if (src_.compare(p, std::char_traits<char>::length(candidate), candidate) == 0) {
            op = candidate;
            break;
          }
        }
        if (op.empty()) Error(Cat("unexpected char '", std::string(1, c), "'"), p);
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) Error(Cat("unexpected '", op, "'"), p);
          if (balance.back() != op[0]) {
            Error(Cat("unexpected '", op, "', expected '", std::string(1, balance.back()), "'"), p);
          }
          balance.pop_back();
        }
        Emit(Token::Type::kOperator, op, p);
        p += op.size();
      }
    }
  }

  // Digits with optional '_' separators starting at p; returns end.
  size_t Digits(size_t p, int (*digit)(char)) const {
    size_t q = p;
    while (q < src_.size() && (digit(src_[q]) >= 0 || (src_[q] == '_' && q > p))) ++q;
    while (q > p && src_[q - 1] == '_') --q;
    return q;
  }

  size_t LexNumber(size_t p) {
    auto dec = [](char c) { return IsDigit(c) ? c - '0' : -1; };
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("xXoObB", src_[p + 1]) &&
        src_[p + 1] != 0) {
      char k = static_cast<char>(std::tolower(src_[p + 1]));
      int base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      size_t q = p + 2;
      int64_t v = 0;
      while (q < src_.size() &&
             (src_[q] == '_' || (HexValue(src_[q]) >= 0 && HexValue(src_[q]) < base))) {
        if (src_[q] != '_') v = v * base + HexValue(src_[q]);
        ++q;
      }
      Token t;
      t.type = Token::Type::kInt;
      t.int_value = v;
      t.value = src_.substr(p, q - p);
      SetPos(&t, p);
      tokens_.push_back(t);
      return q;
    }
    size_t q = Digits(p, +dec);
    bool is_float = false;
    bool after_dot = p > 0 && src_[p - 1] == '.';
    if (!after_dot && q + 1 < src_.size() && src_[q] == '.' && IsDigit(src_[q + 1])) {
      q = Digits(q + 1, +dec);
      is_float = true;
    }
    if (!after_dot && q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && IsDigit(src_[r])) {
        q = Digits(r, +dec);
        is_float = true;
      }
    }
    std::string literal;
    for (size_t i = p; i < q; ++i) {
      if (src_[i] != '_') literal.push_back(src_[i]);
    }
    Token t;
    t.value = src_.substr(p, q - p);
    SetPos(&t, p);
    if (is_float) {
      t.type = Token::Type::kFloat;
      t.float_value = std::strtod(literal.c_str(), nullptr);
    } else {
      t.type = Token::Type::kInt;
      errno = 0;
      t.int_value = std::strtoll(literal.c_str(), nullptr, 10);
      if (errno == ERANGE) Error("integer literal too large", p);
    }
    tokens_.push_back(t);
    return q;
  }

  size_t LexString(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) Error("unexpected end of string", p);
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) Error("unexpected end of string", p);
      char e = src_[q + 1];
      q += 2;
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t v = 0;
          for (int i = 0; i < n; ++i) {
            int h = q < src_.size() ? HexValue(src_[q]) : -1;
            if (h < 0) Error(Cat("truncated \\", std::string(1, e), " escape"), q);
            v = v * 16 + h;
            ++q;
          }
          if (v > 0x10FFFF) Error("illegal Unicode character in escape", q);
          text::AppendUtf8(v, &out);
          break;
        }
        case 'N':
          Error("\\N{...} escapes are not supported", q);
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = e - '0';
            for (int i = 0; i < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++i) {
              v = v * 8 + (src_[q++] - '0');
            }
            text::AppendUtf8(v, &out);
          } else {
            out.push_back('\\');  // unknown escape: kept as written
            out.push_back(e);
          }
      }
    }
    Token t;
    t.type = Token::Type::kString;
    t.value = std::move(out);
    SetPos(&t, p);
    tokens_.push_back(std::move(t));
    return q + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> Tokenize(std::string_view source) { return Lexer(source).Run(); }

}  // namespace tandem::jinja
