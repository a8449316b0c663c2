// The built-in demo: a small, deterministic, random-weight checkpoint of a real architecture
// (DeepSeek-V3 layout: MLA, sigmoid noaux_tc routing over 16 experts, a shared expert, a dense
// first layer, YaRN) written as a complete Hugging Face directory (config.json, model.safetensors,
// tokenizer.json with a byte-level BPE, tokenizer_config.json with a chat template,
// generation_config.json). Lets a fresh machine run the whole pipeline with nothing downloaded.
#pragma once

#include <string>

#include "common/status.h"

namespace tandem {

// Writes the demo model into `dir` (created if missing). Same bytes on every run and machine.
absl::Status WriteDemoModel(const std::string& dir);

}  // namespace tandem
