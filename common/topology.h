// The machine's NUMA layout and the calls that bind a process to part of it.
//
// Discovery: hwloc first; if hwloc fails, /sys/devices/system/node; if that is missing too (some
// containers, non-NUMA kernels), one node 0 with every CPU. In every case CPUs outside this
// process's affinity mask (cgroup cpusets, taskset) are dropped, and nodes left without CPUs
// (memory-only nodes such as CXL expanders) are not reported: a worker needs cores.
//
// Binding: BindMemoryToNode sets the calling thread's memory policy to MPOL_BIND (threads created
// afterwards inherit it); PinThread* set the calling thread's CPU affinity (likewise inherited).
// Call them on the main thread before any other thread exists to bind a whole process. Both are
// best effort at the caller's choice: they return an error naming the system call and errno
// (containers often refuse set_mempolicy with EPERM) and change nothing on failure.
//
// Thread safety: every function may be called from any thread; none keeps state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

struct NumaNode {
  int id = 0;                 // OS node number (as in numactl / /sys/devices/system/node/nodeN)
  std::vector<int> cpus;      // OS CPU numbers usable by this process, ascending, non-empty
  uint64_t memory_bytes = 0;  // the node's memory (0 if unknown)
};

// Parses a Linux CPU list ("0-3,8,10-11"; also "0-7:2" strides, spaces around items ignored)
// into ascending unique CPU numbers. InvalidArgument naming the bad item; an empty list is an
// error too.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

// The shortest CPU list for `cpus` (any order, duplicates allowed): {0,1,2,3,8} -> "0-3,8".
std::string FormatCpuList(std::vector<int> cpus);

// Splits `cpus` (kept in the given order) into `n` >= 1 contiguous groups whose sizes differ by at
// most one, the larger groups first: {0..7}, 3 -> {0,1,2} {3,4,5} {6,7}. This is how a one-node
// machine is carved into n "sockets". With fewer CPUs than groups, group i gets the single CPU
// cpus[i % size] (groups share cores rather than being empty). Empty `cpus` or n < 1: n empty
// groups (or none).
std::vector<std::vector<int>> SplitCpus(const std::vector<int>& cpus, int n);

// The NUMA nodes with CPUs this process may use, ascending by id; at least one node.
// Internal only if not even one CPU can be found.
absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodes();

// The individual sources, for tests and diagnostics. The sysfs reader takes the directory that
// holds node0, node1, ... (normally /sys/devices/system/node) and reads nodeN/cpulist and
// nodeN/meminfo; NotFound if it holds no node.
absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodesWithHwloc();
absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodesFromSysfs(const std::string& node_dir);

// The CPUs in the calling thread's affinity mask (sched_getaffinity), ascending: the process's
// mask unless the thread was pinned.
absl::StatusOr<std::vector<int>> AllowedCpus();
// Total memory of the machine (sysconf), 0 if unknown.
uint64_t MachineMemoryBytes();

// MPOL_BIND to `node` for the calling thread and the threads it creates afterwards.
// Errors: InvalidArgument for a negative node; the kernel's refusal (EPERM in a container,
// EINVAL for a node without memory) as FailedPrecondition / PermissionDenied naming errno.
absl::Status BindMemoryToNode(int node);

// Restricts the calling thread (and threads it creates afterwards) to `cpus` / to one CPU.
// InvalidArgument for an empty set or a CPU number out of range; the kernel's refusal otherwise.
absl::Status PinThreadToCpus(const std::vector<int>& cpus);
absl::Status PinThreadToCpu(int cpu);

}  // namespace tandem
