// `tandem-bench amx-loads`: how much of the AMX register-only peak a 2x2 tile step keeps once its
// operands are loaded from memory -- the ceiling of the MoE kernels' loop (kernels/cpu/amx_tiles.h).
#pragma once

#include "CLI/CLI.hpp"

namespace tandem::bench {

// Adds the `amx-loads` subcommand to `app`; it runs when the subcommand is given and sets
// *exit_code.
void AddAmxLoadsCommand(CLI::App& app, int* exit_code);

}  // namespace tandem::bench
