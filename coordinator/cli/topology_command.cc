// `tandem topology [--plan auto|N]`: the NUMA nodes hwloc sees, or (with --plan) one line per
// worker the launcher should start: "node N" or "cpus LIST".
#include <cstdio>

#include "absl/strings/numbers.h"
#include "common/topology.h"
#include "coordinator/cli/commands.h"
#include "coordinator/local_workers.h"

namespace tandem::cli {

Command AddTopologyCommand(CLI::App& app) {
  auto plan = std::make_shared<std::string>();
  app.add_option("--plan", *plan, "print worker placements for auto (one per node) or N workers");
  return [=]() -> absl::Status {
    if (plan->empty()) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<NumaNode> nodes, DiscoverNumaNodes());
      for (const NumaNode& n : nodes)
        std::printf("node %d cpus %s memory_bytes %llu\n", n.id, FormatCpuList(n.cpus).c_str(),
                    static_cast<unsigned long long>(n.memory_bytes));
      return absl::OkStatus();
    }
    int count = 0;
    if (*plan != "auto" && (!absl::SimpleAtoi(*plan, &count) || count < 1))
      return absl::InvalidArgumentError(absl::StrCat("--plan must be auto or a number >= 1, got ", *plan));
    TANDEM_ASSIGN_OR_RETURN(std::vector<WorkerPlacement> placements, PlanWorkers(count));
    for (const WorkerPlacement& p : placements) {
      if (p.node >= 0) {
        std::printf("node %d\n", p.node);
      } else {
        std::printf("cpus %s\n", FormatCpuList(p.cpus).c_str());
      }
    }
    return absl::OkStatus();
  };
}

}  // namespace tandem::cli
