// `tandem-bench moe`: the routed-MoE operator (ExpertShard::Run, numa_worker/expert_shard.h) on
// random weights of real expert shapes, reported against the machine's limits measured in the
// same run (machine_limits.h) and against oneDNN matmuls doing the same work on the same inputs
// (onednn_moe.h). See moe_bench.cc for the method.
#pragma once

#include "CLI/CLI.hpp"

namespace tandem::bench {

// Adds the `moe` subcommand to `app`; it runs when the subcommand is given and sets *exit_code.
void AddMoeCommand(CLI::App& app, int* exit_code);

}  // namespace tandem::bench
