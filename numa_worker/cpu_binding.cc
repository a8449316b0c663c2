#include "numa_worker/cpu_binding.h"

#include <omp.h>

#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/topology.h"
#include "spdlog/spdlog.h"

namespace tandem {

absl::StatusOr<CpuBinding> ResolveCpuBinding(int numa_node, const std::string& cpu_list,
                                             int threads) {
  if (numa_node >= 0 && !cpu_list.empty())
    return absl::InvalidArgumentError("give either --numa-node or --cpus, not both");
  TANDEM_ASSIGN_OR_RETURN(std::vector<NumaNode> nodes, DiscoverNumaNodes());
  CpuBinding b;
  if (numa_node >= 0) {
    auto it = std::find_if(nodes.begin(), nodes.end(),
                           [&](const NumaNode& n) { return n.id == numa_node; });
    if (it == nodes.end()) {
      std::vector<int> ids;
      for (const NumaNode& n : nodes) ids.push_back(n.id);
      return absl::NotFoundError(
          absl::StrCat("NUMA node ", numa_node,
                       " has no usable CPU; nodes with CPUs: ", absl::StrJoin(ids, ",")));
    }
    b.numa_node = b.memory_node = numa_node;
    b.cpus = it->cpus;
    b.memory_bytes = it->memory_bytes;
  } else if (!cpu_list.empty()) {
    TANDEM_ASSIGN_OR_RETURN(b.cpus, ParseCpuList(cpu_list));
    TANDEM_ASSIGN_OR_RETURN(std::vector<int> allowed, AllowedCpus());
    for (int c : b.cpus) {
      if (!std::binary_search(allowed.begin(), allowed.end(), c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--cpus ", cpu_list, ": CPU ", c,
                         " is not usable (allowed: ", FormatCpuList(allowed), ")"));
      }
    }
    for (const NumaNode& n : nodes) {
      const bool all_here = std::all_of(b.cpus.begin(), b.cpus.end(), [&](int c) {
        return std::binary_search(n.cpus.begin(), n.cpus.end(), c);
      });
      if (all_here) {
        b.memory_node = n.id;
        b.memory_bytes = n.memory_bytes;
      }
    }
  } else {
    for (const NumaNode& n : nodes) {
      b.cpus.insert(b.cpus.end(), n.cpus.begin(), n.cpus.end());
      b.memory_bytes += n.memory_bytes;
    }
    std::sort(b.cpus.begin(), b.cpus.end());
  }
  if (b.memory_bytes == 0) b.memory_bytes = MachineMemoryBytes();
  b.threads = threads > 0 ? threads : static_cast<int>(b.cpus.size());
  return b;
}

absl::Status ApplyProcessBinding(CpuBinding& binding) {
  if (binding.memory_node >= 0) {
    const absl::Status s = BindMemoryToNode(binding.memory_node);
    binding.memory_bound = s.ok();
    if (!s.ok()) {
      spdlog::warn(
          "memory NOT bound to NUMA node {}: {} (continuing with the default policy; "
          "in a container, CAP_SYS_NICE or a seccomp profile allowing set_mempolicy "
          "is needed)",
          binding.memory_node, s.ToString());
    }
  }
  TANDEM_RETURN_IF_ERROR(PinThreadToCpus(binding.cpus));
  if (binding.threads > static_cast<int>(binding.cpus.size())) {
    spdlog::warn("{} threads on {} cores: threads share cores", binding.threads,
                 binding.cpus.size());
  }
  return absl::OkStatus();
}

absl::Status PinOpenMpTeam(const CpuBinding& binding) {
  if (binding.cpus.empty() || binding.threads < 1)
    return absl::InvalidArgumentError("empty CPU binding");
  omp_set_dynamic(0);
  omp_set_num_threads(binding.threads);
  std::vector<absl::Status> errors(binding.threads);
#pragma omp parallel num_threads(binding.threads)
  {
    const int i = omp_get_thread_num();
    if (i < static_cast<int>(errors.size()))
      errors[i] = PinThreadToCpu(binding.cpus[i % binding.cpus.size()]);
  }
  for (const absl::Status& s : errors) TANDEM_RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

ScopedOpenMpTeam::ScopedOpenMpTeam(const CpuBinding& binding)
    : previous_(AllowedCpus()), status_(PinOpenMpTeam(binding)) {}

ScopedOpenMpTeam::~ScopedOpenMpTeam() {
  if (!previous_.ok()) return;
  if (absl::Status s = PinThreadToCpus(*previous_); !s.ok())
    spdlog::warn("could not restore a thread's CPU mask: {}", s.ToString());
}

std::string DescribeBinding(const CpuBinding& b) {
  const std::string where = b.numa_node >= 0 ? absl::StrCat("node ", b.numa_node, ": ") : "";
  std::string memory = "memory not bound";
  if (b.memory_node >= 0)
    memory = absl::StrCat(b.memory_bound ? "memory bound to node " : "memory NOT bound to node ",
                          b.memory_node);
  return absl::StrCat(where, "cpus ", FormatCpuList(b.cpus), ", ", b.threads, " threads, ", memory);
}

}  // namespace tandem
