// Executes a parsed Jinja template (ast.h) with jinja2 semantics: jinja2's default Undefined,
// frame scoping (a `for` loop body and macro calls get their own frame; `if` does not),
// ImmutableSandboxedEnvironment attribute rules (dict keys via `.`, mutating list/dict methods
// are unsafe), Python operators and truthiness.
//
// Contract: one Evaluator renders one template once, on one thread. Render() returns the output
// or throws JinjaError (kRuntime / kRaised / kLimit) with the line of the failing node. Limits
// cap output size, total loop iterations and call depth so hostile templates cannot hang or
// exhaust memory. The public services (GetAttr, GetItem, Call, ApplyFilter, ApplyTest, Iterate)
// are for the builtin filters/tests/methods in builtins.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/jinja/ast.h"
#include "common/jinja/value.h"

namespace tandem::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{256} << 20;  // all output, including captured blocks
  int64_t max_loop_iterations = 10'000'000;     // total across all loops of a render
  int max_call_depth = 64;                      // nested macro / filter calls
};

class Evaluator {
 public:
  explicit Evaluator(RenderLimits limits = {});
  ~Evaluator();  // breaks reference cycles through namespaces (`set ns.me = ns`)
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Renders `body` with `vars` (context variables and globals) in the root frame.
  std::string Render(const Body& body, std::vector<std::pair<std::string, Value>> vars);

  // Services for builtins.
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  // obj.a.b / obj.0 as used by map(attribute=...), selectattr, sort(attribute=...).
  Value GetDottedAttr(const Value& obj, const std::string& path);
  Value Call(const Value& callee, const CallArgs& args);
  Value ApplyFilter(const std::string& name, const Value& input, const CallArgs& args);
  bool ApplyTest(const std::string& name, const Value& input, const CallArgs& args);
  // Python iteration: list/tuple items, dict keys, string characters; undefined -> nothing.
  std::vector<Value> Iterate(const Value& v);
  void CountIterations(int64_t n);
  // Namespaces are the only mutable values, hence the only way to build a reference cycle;
  // the evaluator empties them when it is destroyed.
  void TrackNamespace(std::weak_ptr<NamespaceData> ns) { namespaces_.push_back(std::move(ns)); }

 private:
  struct Scope {
    std::shared_ptr<Scope> parent;
    std::unordered_map<std::string, Value> vars;
  };
  using ScopePtr = std::shared_ptr<Scope>;
  enum class Flow { kNormal, kBreak, kContinue };

  Flow ExecBody(const Body& body);
  Flow Exec(const Stmt& s);
  void ExecFor(const Stmt& s);
  void ExecMacroDef(const Stmt& s);
  std::string Capture(const Body& body);
  Value ApplyFilterChain(const Expr* chain, Value input);
  Value Eval(const Expr& e);
  Value EvalInner(const Expr& e);
  Value EvalSlice(const Value& obj, const Expr& slice);
  CallArgs EvalArgs(const Expr& e, size_t first_arg);
  const Value* Lookup(const std::string& name) const;
  void Assign(const Target& t, const Value& v);
  void Append(std::string_view s);

  RenderLimits limits_;
  ScopePtr root_;
  ScopePtr scope_;
  std::string* out_ = nullptr;
  size_t total_output_ = 0;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  std::vector<std::weak_ptr<NamespaceData>> namespaces_;
};

}  // namespace tandem::jinja
