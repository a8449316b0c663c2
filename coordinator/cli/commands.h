// Subcommands of the `tandem` binary. Each registers its flags on the CLI11 app and returns a
// callable that runs it; a command's failure is an absl::Status that main prints on stderr.
#pragma once

#include <functional>

#include "CLI/CLI.hpp"
#include "common/status.h"

namespace tandem::cli {

using Command = std::function<absl::Status()>;

Command AddGenerateCommand(CLI::App& app);
Command AddLogitsCommand(CLI::App& app);
Command AddTokenizeCommand(CLI::App& app);
Command AddDemoCommand(CLI::App& app);
Command AddProbeCommand(CLI::App& app);
Command AddTopologyCommand(CLI::App& app);
Command AddBenchCommand(CLI::App& app);
Command AddServeCommand(CLI::App& app);
Command AddClientCommand(CLI::App& app);
Command AddBenchServeCommand(CLI::App& app);

}  // namespace tandem::cli
