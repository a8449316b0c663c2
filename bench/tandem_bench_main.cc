// tandem-bench: the kernel benchmarks, one subcommand each.
//
//   tandem-bench moe --shape qwen2-57b-a14b --tokens 1,16,256 [--expert-dtype bf16|int8|int4]
//                    [--int4-group-size 32|128] [--schedule dynamic|static] [--onednn on|off]
//                    [--cpu-kernel auto|reference|avx512|amx] [--threads T] [--experts E] [--json]
//   tandem-bench amx-loads [--threads T] [--steps N] [--json]
#include "CLI/CLI.hpp"
#include "bench/amx_tile_loads.h"
#include "bench/moe_bench.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem-bench: Tandem's kernel benchmarks"};
  app.require_subcommand(1);
  int exit_code = 0;
  tandem::bench::AddMoeCommand(app, &exit_code);
  tandem::bench::AddAmxLoadsCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
