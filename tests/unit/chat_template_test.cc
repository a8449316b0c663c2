// Tests of the chat-template interpreter (common/chat_template.h, common/jinja/).
//
// * Golden tests: tests/fixtures/chat_templates/goldens.json, produced by
//   tools/render_chat_goldens.py with jinja2 configured exactly like transformers, covers the
//   real templates in tools/chat_templates/ and a set of language-feature snippets; output must
//   match byte for byte (errors must be errors).
// * Hand-written tests of the API, error reporting and resource limits.
// * Fixture tests: every tests/fixtures/*/reference.json "chat" entry rendered through
//   RenderChatFromDirectory must match transformers' text (skipped while none exist).
#include "common/chat_template.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tandem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const fs::path kRoot = TANDEM_SOURCE_DIR;

std::string ReadFileOrDie(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const json& Goldens() {
  static const json* goldens =
      new json(json::parse(ReadFileOrDie(kRoot / "tests/fixtures/chat_templates/goldens.json")));
  return *goldens;
}

absl::StatusOr<std::string> RenderSource(std::string_view source, const json& context) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(source);
  if (!t.ok()) return t.status();
  return t->Render(context);
}

// --- goldens ------------------------------------------------------------------------------

struct GoldenCase {
  std::string name;
  std::string source;
  json context;
  json expected;  // {"text": ...} or {"error": ...}
};

std::vector<GoldenCase> TemplateCases() {
  std::vector<GoldenCase> out;
  std::map<std::string, std::string> sources;
  for (const auto& c : Goldens()["templates"]) {
    std::string tpl = c["template"];
    if (!sources.contains(tpl)) {
      sources[tpl] = ReadFileOrDie(kRoot / "tools/chat_templates" / (tpl + ".jinja"));
    }
    json expected = c.contains("text") ? json{{"text", c["text"]}} : json{{"error", c["error"]}};
    out.push_back({tpl + "_" + c["name"].get<std::string>(), sources[tpl], c["context"], expected});
  }
  return out;
}

std::vector<GoldenCase> FeatureCases() {
  std::vector<GoldenCase> out;
  for (const auto& c : Goldens()["features"]) {
    json expected = c.contains("text") ? json{{"text", c["text"]}} : json{{"error", c["error"]}};
    out.push_back({c["name"], c["source"], c["context"], expected});
  }
  return out;
}

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

class GoldenTest : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesJinja2) {
  const GoldenCase& c = GetParam();
  absl::StatusOr<std::string> got = RenderSource(c.source, c.context);
  if (c.expected.contains("text")) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.expected["text"].get<std::string>());
  } else {
    ASSERT_FALSE(got.ok()) << "expected error '" << c.expected["error"].get<std::string>()
                           << "', got text: " << *got;
    EXPECT_NE(got.status().message().find(c.expected["error"].get<std::string>()),
              std::string::npos)
        << got.status();
  }
}

std::string CaseName(const testing::TestParamInfo<GoldenCase>& info) {
  std::string n = info.param.name;
  for (char& ch : n) {
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, GoldenTest, testing::ValuesIn(TemplateCases()), CaseName);
INSTANTIATE_TEST_SUITE_P(Features, GoldenTest, testing::ValuesIn(FeatureCases()), CaseName);

TEST(ChatTemplateGoldens, CoverEveryTemplate) {
  std::map<std::string, int> per_template;
  for (const auto& c : Goldens()["templates"]) ++per_template[c["template"].get<std::string>()];
  for (const char* t : {"qwen2", "qwen3", "deepseek_v3", "deepseek_v2_5", "mixtral"}) {
    EXPECT_GE(per_template[t], 8) << t;
  }
}

// --- language features and errors -----------------------------------------------------------

std::string MustRender(std::string_view source, const json& context = json::object()) {
  absl::StatusOr<std::string> r = RenderSource(source, context);
  EXPECT_TRUE(r.ok()) << r.status() << "\nsource: " << source;
  return r.ok() ? *r : "";
}

TEST(ChatTemplate, BasicExpressions) {
  EXPECT_EQ(MustRender("Hello {{ name }}!", {{"name", "World"}}), "Hello World!");
  EXPECT_EQ(MustRender("{{ messages[0].content }}|{{ messages[0]['role'] }}",
                       {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}),
            "hi|user");
  EXPECT_EQ(MustRender("{{ x.y.z }}", {{"x", {{"y", {{"z", 3.5}}}}}}), "3.5");
  EXPECT_EQ(MustRender("{{ big }} {{ neg }}", {{"big", 18446744073709551615ull}, {"neg", -5}}),
            "1.8446744073709552e+19 -5");
}

TEST(ChatTemplate, ObjectKeyOrderIsKeptByToJson) {
  json tool = json::parse(R"({"name": "f", "parameters": {"z": 1, "a": {"y": [], "b": {}}}})");
  EXPECT_EQ(MustRender("{{ t|tojson }}", {{"t", tool}}),
            R"({"name": "f", "parameters": {"z": 1, "a": {"y": [], "b": {}}}})");
}

TEST(ChatTemplate, RaiseExceptionIsInvalidArgumentWithExactMessage) {
  absl::StatusOr<std::string> r =
      RenderSource("a{{ raise_exception('bad roles') }}b", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "bad roles");
}

TEST(ChatTemplate, SyntaxErrorsCarryLineAndColumn) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse("line one\n{{ 1 + }}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("line 2:8"), std::string::npos) << t.status();

  t = ChatTemplate::Parse("\n\n  {{ x | nosuchfilter }}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("No filter named 'nosuchfilter'"), std::string::npos);
  EXPECT_NE(t.status().message().find("line 3:"), std::string::npos) << t.status();

  for (const char* bad :
       {"{% for x in y %}", "{% if %}", "{{ 'unterminated }}", "{% endif %}", "{% foo %}",
        "{{ (1 }}", "{{ [1, 2 }}", "{# open comment", "{% set %}", "{% macro m( %}{% endmacro %}",
        "{{ a.b. }}", "{% break %}", "{{ 1 is is }}", "{% raw %}never closed"}) {
    EXPECT_FALSE(ChatTemplate::Parse(bad).ok()) << bad;
  }
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  absl::StatusOr<std::string> r =
      RenderSource("ok\n{% if true %}\n{{ x.y.z }}{% endif %}", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 3"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("'x' is undefined"), std::string::npos) << r.status();
}

TEST(ChatTemplate, ContextMustBeAnObject) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse("x");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->Render(json::array()).ok());
}

TEST(ChatTemplate, StrftimeNow) {
  std::string year = MustRender("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
  EXPECT_EQ(MustRender("{{ strftime_now('%%') }}"), "%");
}

TEST(ChatTemplate, RecursionIsBounded) {
  absl::StatusOr<std::string> r =
      RenderSource("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
}

TEST(ChatTemplate, LoopsAreBounded) {
  absl::StatusOr<std::string> r = RenderSource(
      "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
      json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_FALSE(RenderSource("{{ range(1000000)|length }}", {}).ok());
}

TEST(ChatTemplate, OutputIsBounded) {
  absl::StatusOr<std::string> r = RenderSource(
      "{% set s = 'x' * 10000000 %}{% for a in range(100) %}{{ s }}{% endfor %}", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_FALSE(RenderSource("{{ 'x' * 100000000000 }}", {}).ok());
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  std::string deep(100000, '(');
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + deep + " }}").ok());
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::Parse(ifs).ok());
  std::string lists(50000, '[');
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + lists + " }}").ok());
  std::string nots;
  for (int i = 0; i < 50000; ++i) nots += "not ";
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + nots + "x }}").ok());
}

TEST(ChatTemplate, DeepValuesAreRefusedNotCrashing) {
  // Nesting a list into itself 100k times, a namespace holding itself, deep JSON input.
  EXPECT_FALSE(RenderSource("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}"
                            "{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v|length }}",
                            json::object())
                   .ok());
  EXPECT_FALSE(
      RenderSource("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", json::object()).ok());
  EXPECT_FALSE(
      RenderSource("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", json::object())
          .ok());
  json context = json::object();
  context["x"] = json::parse(std::string(1200, '[') + std::string(1200, ']'));
  EXPECT_FALSE(RenderSource("{{ x|length }}", context).ok());
  EXPECT_EQ(MustRender("{{ 'a'[1:].split() }} {{ 1.5|int }}", json::object()), "[] 1");
  EXPECT_FALSE(RenderSource("{{ 'abc'.find('b', 'x') }}", json::object()).ok());
  EXPECT_FALSE(RenderSource("{{ range('a') }}", json::object()).ok());
}

TEST(ChatTemplate, RandomInputNeverCrashes) {
  const std::string alphabet = "{}%#-+ab()[].,:|'\"\\=<>!~*/0123456789 \n\tifornotsetendmacro";
  const std::vector<std::string> pieces = {"{{",         "}}",      "{%",
                                           "%}",         "{#",      "#}",
                                           "{%-",        "-%}",     " for x in y ",
                                           " if ",       " endif ", " endfor ",
                                           " set ",      " x ",     "|",
                                           "(",          ")",       "[",
                                           "]",          "'s'",     " is ",
                                           " defined ",  " not ",   "loop.index",
                                           " else ",     "1",       ".",
                                           ",",          "=",       " macro m() ",
                                           " endmacro ", "ns.a",    "\n"};
  std::mt19937 rng(1234);
  json context = {{"y", json::array({1, "two", json::object({{"k", nullptr}})})},
                  {"x", {{"a", 1}}}};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string src;
    int len = rng() % 40;
    for (int i = 0; i < len; ++i) {
      if (rng() % 3 == 0) {
        src += alphabet[rng() % alphabet.size()];
      } else {
        src += pieces[rng() % pieces.size()];
      }
    }
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(src);
    if (t.ok()) (void)t->Render(context);
  }
}

TEST(ChatTemplate, SharedTemplateRendersConcurrentlyAndRepeatedly) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{% endfor %}{{ ns.n }}");
  ASSERT_TRUE(t.ok());
  json ctx = {{"messages", json::array({1, 2, 3})}};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*t->Render(ctx), "3");
  ChatTemplate copy = *t;
  EXPECT_EQ(*copy.Render(ctx), "3");

  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k) good += (t->Render(ctx).value_or("") == "3") ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 800);
}

// --- model directories ----------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("chat_template_test_" + std::to_string(std::random_device()()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
  }

 private:
  fs::path path_;
};

const json kMessages = json::array({{{"role", "user"}, {"content", "Hi"}}});

TEST(RenderChatFromDirectory, ReadsTemplateAndAddedTokenObjects) {
  TempDir dir;
  json config = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}, {"lstrip", false}}},
                 {"eos_token", "</s>"},
                 {"chat_template",
                  "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}"
                  "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}{{ tools is none }}"}};
  dir.Write("tokenizer_config.json", config.dump());
  absl::StatusOr<std::string> r = RenderChatFromDirectory(dir.path().string(), kMessages, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "<s>[Hi]></s>True");
  r = RenderChatFromDirectory(dir.path().string(), kMessages, false, {{"tools", json::array({1})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "<s>[Hi]</s>False");
}

TEST(RenderChatFromDirectory, PicksDefaultFromTemplateList) {
  TempDir dir;
  json config = {{"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                                {{"name", "default"}, {"template", "D"}}})}};
  dir.Write("tokenizer_config.json", config.dump());
  EXPECT_EQ(*RenderChatFromDirectory(dir.path().string(), kMessages, true), "D");

  config["chat_template"] = json::array({{{"name", "tool_use"}, {"template", "T"}}});
  dir.Write("tokenizer_config.json", config.dump());
  EXPECT_FALSE(RenderChatFromDirectory(dir.path().string(), kMessages, true).ok());
}

TEST(RenderChatFromDirectory, ChatTemplateJinjaFileTakesPrecedence) {
  TempDir dir;
  dir.Write("tokenizer_config.json", json{{"chat_template", "old"}, {"eos_token", "E"}}.dump());
  dir.Write("chat_template.jinja", "new{{ eos_token }}\n");
  EXPECT_EQ(*RenderChatFromDirectory(dir.path().string(), kMessages, true), "newE");
}

TEST(RenderChatFromDirectory, Errors) {
  TempDir dir;
  EXPECT_EQ(RenderChatFromDirectory(dir.path().string(), kMessages, true).status().code(),
            absl::StatusCode::kNotFound);
  dir.Write("tokenizer_config.json", "{not json");
  EXPECT_FALSE(RenderChatFromDirectory(dir.path().string(), kMessages, true).ok());
  dir.Write("tokenizer_config.json", json{{"eos_token", "x"}}.dump());
  EXPECT_EQ(RenderChatFromDirectory(dir.path().string(), kMessages, true).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RenderChatFromDirectory, RealTemplatesThroughTokenizerConfig) {
  TempDir dir;
  json config = {{"bos_token", "<s>"},
                 {"eos_token", "</s>"},
                 {"chat_template", ReadFileOrDie(kRoot / "tools/chat_templates/mixtral.jinja")}};
  dir.Write("tokenizer_config.json", config.dump());
  json msgs = json::array({{{"role", "system"}, {"content", "S"}},
                           {{"role", "user"}, {"content", "U"}},
                           {{"role", "assistant"}, {"content", "A"}}});
  EXPECT_EQ(*RenderChatFromDirectory(dir.path().string(), msgs, false),
            "<s> [INST] S\n\nU [/INST] A</s>");
  msgs.push_back({{"role", "assistant"}, {"content", "again"}});
  absl::StatusOr<std::string> r = RenderChatFromDirectory(dir.path().string(), msgs, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("conversation roles must alternate"), std::string::npos);
}

// Fixtures generated by tools/make_fixtures.py: tests/fixtures/<arch>/reference.json "chat".
TEST(RenderChatFromDirectory, MatchesTransformersOnFixtures) {
  int checked = 0;
  fs::path fixtures = kRoot / "tests/fixtures";
  std::vector<fs::path> dirs;
  if (fs::exists(fixtures)) {
    for (const auto& entry : fs::directory_iterator(fixtures)) {
      if (fs::exists(entry.path() / "reference.json")) dirs.push_back(entry.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    json ref = json::parse(ReadFileOrDie(dir / "reference.json"));
    if (!ref.contains("chat")) continue;
    int index = 0;
    for (const auto& c : ref["chat"]) {
      SCOPED_TRACE(dir.filename().string() + " chat[" + std::to_string(index++) + "]");
      json extra = json::object();
      // Template kwargs: "tools" and anything under "kwargs" (e.g. enable_thinking).
      if (c.contains("tools")) extra["tools"] = c["tools"];
      if (c.contains("kwargs")) {
        for (auto it = c["kwargs"].begin(); it != c["kwargs"].end(); ++it) {
          extra[it.key()] = it.value();
        }
      }
      absl::StatusOr<std::string> r = RenderChatFromDirectory(
          dir.string(), c["messages"], c.value("add_generation_prompt", false), extra);
      if (c.contains("error")) {
        ASSERT_FALSE(r.ok()) << "expected error containing " << c["error"];
        EXPECT_NE(r.status().message().find(c["error"].get<std::string>()), std::string::npos)
            << r.status();
      } else {
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_EQ(*r, c["text"].get<std::string>());
      }
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no tests/fixtures/*/reference.json with \"chat\" entries yet";
}

}  // namespace
}  // namespace tandem
