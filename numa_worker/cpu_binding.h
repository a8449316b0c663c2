// Where a worker process runs: the NUMA node / CPU set chosen by --numa-node, --cpus and
// --threads, and the calls that bind the process and its OpenMP team to it.
//
// Threads. ResolveCpuBinding: any thread. ApplyProcessBinding: the main thread, before any other
// thread exists, so that every thread inherits the memory policy and the affinity mask.
// PinOpenMpTeam: every thread that will start OpenMP parallel regions (libgomp keeps one pool of
// team threads per such thread), before its first region; each ring loop thread calls it at its
// start, and LoadShard (on a gRPC thread) through ScopedOpenMpTeam. Not the main thread: it would
// end pinned to one CPU, and the threads it creates afterwards (gRPC's) would inherit that CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct CpuBinding {
  int numa_node = -1;         // --numa-node; -1 when bound to a CPU list (or to nothing)
  int memory_node = -1;       // node the memory policy binds to (-1: none)
  std::vector<int> cpus;      // the cores of the set, ascending, non-empty
  int threads = 0;            // OpenMP team size (default: one per core of the set)
  uint64_t memory_bytes = 0;  // memory of the node, or of the machine
  bool memory_bound = false;  // set by ApplyProcessBinding: the kernel accepted MPOL_BIND
};

// numa_node >= 0: that node's cores and memory (NotFound naming the nodes that exist).
// cpu_list non-empty: those cores (InvalidArgument if the list is malformed or names a core this
// process may not use); memory is bound to the node holding all of them, if there is one.
// Both: InvalidArgument. Neither: every usable core, memory not bound.
// threads <= 0: one per core.
absl::StatusOr<CpuBinding> ResolveCpuBinding(int numa_node, const std::string& cpu_list,
                                             int threads);

// Binds the calling thread's memory (best effort: a refusal is logged as a warning and leaves
// memory_bound false) and CPU affinity (an error is returned).
absl::Status ApplyProcessBinding(CpuBinding& binding);

// omp_set_num_threads(threads) for the calling thread and, inside one parallel region, pins
// team thread i to cpus[i % cpus.size()]. Returns the first pinning error.
absl::Status PinOpenMpTeam(const CpuBinding& binding);

// PinOpenMpTeam for the calling thread for the scope's lifetime, which then gets its previous CPU
// mask back (its team threads stay pinned). For parallel work on a thread the worker did not
// create for it, e.g. building a shard in a gRPC handler. status(): the pinning's result.
class ScopedOpenMpTeam {
 public:
  explicit ScopedOpenMpTeam(const CpuBinding& binding);
  ~ScopedOpenMpTeam();
  ScopedOpenMpTeam(const ScopedOpenMpTeam&) = delete;
  ScopedOpenMpTeam& operator=(const ScopedOpenMpTeam&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  absl::StatusOr<std::vector<int>> previous_;
  absl::Status status_;
};

// "node 0: cpus 0-15, 16 threads, memory bound to node 0", for logs.
std::string DescribeBinding(const CpuBinding& binding);

}  // namespace tandem
