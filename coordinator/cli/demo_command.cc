// `tandem demo`: writes the built-in demo checkpoint and generates from it, end to end.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "coordinator/cli/commands.h"
#include "coordinator/cli/prompt.h"
#include "coordinator/demo_model.h"
#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"

namespace tandem::cli {

Command AddDemoCommand(CLI::App& app) {
  struct Flags {
    std::string dir;
    std::string prompt = "Tandem runs the experts on the CPU and the rest on the GPU.";
    int64_t max_tokens = 32;
    bool json = false;
    WorkerFlags workers;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--dir", f->dir, "where to write the demo model (default: a new temporary directory)");
  app.add_option("--prompt", f->prompt)->capture_default_str();
  app.add_option("--max-tokens", f->max_tokens)->capture_default_str();
  app.add_flag("--json", f->json, "print one JSON object on stdout");
  AddWorkerFlags(app, f->workers);
  return [f]() -> absl::Status {
    std::string dir = f->dir;
    if (dir.empty()) {
      std::string pattern = (std::filesystem::temp_directory_path() / "tandem-demo-XXXXXX").string();
      if (!mkdtemp(pattern.data())) return absl::InternalError("cannot create a temporary directory");
      dir = pattern;
    }
    TANDEM_RETURN_IF_ERROR(WriteDemoModel(dir));
    LoadOptions options;
    TANDEM_RETURN_IF_ERROR(ApplyWorkerFlags(f->workers, options));
    TANDEM_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(dir, options));
    GenerateRequest request;
    request.prompt_ids = m.tokenizer->Encode(f->prompt, /*add_special_tokens=*/true);
    request.max_tokens = f->max_tokens;
    request.ignore_eos = true;
    if (!f->json) {
      std::printf("demo model (random weights, %s layout) written to %s\n", m.config.model_type.c_str(),
                  dir.c_str());
      std::printf("prompt: %s\noutput: ", f->prompt.c_str());
      std::fflush(stdout);
    }
    TextCallback stream;
    if (!f->json) stream = [](std::string_view d) { std::fwrite(d.data(), 1, d.size(), stdout); };
    TANDEM_ASSIGN_OR_RETURN(GenerateResult r,
                            Generate(*m.engine, m.tokenizer.get(), m.max_model_len, request, stream));
    if (f->json) {
      PrintJson({{"model_dir", dir}, {"prompt_ids", request.prompt_ids}, {"ids", r.ids},
                 {"text", r.text}, {"finish_reason", r.finish_reason}});
    } else {
      std::printf("\n(%zu tokens; the weights are random, so the text is too)\n", r.ids.size());
    }
    return absl::OkStatus();
  };
}

}  // namespace tandem::cli
