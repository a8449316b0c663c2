// Spawns and supervises `tandem-worker` child processes on this machine, one per NUMA node, or
// N workers over groups of this node's cores (how a one-socket machine exercises the
// multi-socket path). Children get PR_SET_PDEATHSIG, so they never outlive the coordinator, and
// are stopped (SIGTERM, then SIGKILL) when this object goes away. Start-up thread only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"
#include "coordinator/worker_client.h"

namespace tandem {

class LocalWorkers {
 public:
  // `count` workers; 0 means one per NUMA node. `worker_binary` empty: tandem-worker next to
  // this executable (or $TANDEM_WORKER_BIN). `extra_args` go to every worker's command line.
  static absl::StatusOr<std::unique_ptr<LocalWorkers>> Spawn(
      int count, const std::string& worker_binary = "",
      const std::vector<std::string>& extra_args = {});
  ~LocalWorkers();

  const std::vector<WorkerEndpoint>& endpoints() const { return endpoints_; }
  // Starts worker `index` again (after it died); its endpoint gets the new pid.
  absl::Status Restart(int index);

 private:
  struct Slot {
    std::string socket_path;
    std::vector<std::string> args;  // everything after the binary
  };
  absl::StatusOr<pid_t> Launch(const Slot& slot);

  std::string binary_;
  std::vector<Slot> slots_;
  std::vector<WorkerEndpoint> endpoints_;
};

// Where one worker runs: a whole NUMA node, or a CPU list (node = -1).
struct WorkerPlacement {
  int node = -1;
  std::vector<int> cpus;
  // The tandem-worker binding flags: {"--numa-node", "N"} or {"--cpus", "LIST"}.
  std::vector<std::string> BindFlags() const;
};

// `count` workers over this machine: 0 = one per NUMA node; a count equal to the number of nodes
// also maps one worker per node; any other count splits all CPUs into `count` groups.
absl::StatusOr<std::vector<WorkerPlacement>> PlanWorkers(int count);

// Path of tandem-worker: $TANDEM_WORKER_BIN, else beside /proc/self/exe.
std::string DefaultWorkerBinary();

}  // namespace tandem
