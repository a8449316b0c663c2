#include "common/topology.h"

#include <hwloc.h>
#include <numaif.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace tandem {
namespace {

// Beyond any real machine; keeps a hostile CPU list from allocating gigabytes.
constexpr int kMaxCpu = 1 << 16;

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(message);
    case ENOSYS:
      return absl::UnimplementedError(message);
    case EINVAL:
    case EFAULT:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

bool ParseInt(std::string_view s, int* out) {
  const absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size()));
  s = std::string_view(t.data(), t.size());
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<int> Intersect(const std::vector<int>& a, const std::vector<int>& sorted_b) {
  std::vector<int> out;
  for (int c : a)
    if (std::binary_search(sorted_b.begin(), sorted_b.end(), c)) out.push_back(c);
  return out;
}

// Drops CPUs outside the affinity mask and then nodes without CPUs.
std::vector<NumaNode> RestrictToAllowed(std::vector<NumaNode> nodes) {
  absl::StatusOr<std::vector<int>> allowed = AllowedCpus();
  std::vector<NumaNode> out;
  for (NumaNode& n : nodes) {
    if (allowed.ok()) n.cpus = Intersect(n.cpus, *allowed);
    if (n.cpus.empty()) {
      spdlog::debug("NUMA node {} has no usable CPU; not offered to workers", n.id);
      continue;
    }
    out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return out;
}

std::string ReadSmallFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CpuSetDeleter {
  void operator()(cpu_set_t* set) const { CPU_FREE(set); }
};

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text) {
  std::vector<int> cpus;
  const std::string copy(text);
  for (absl::string_view item : absl::StrSplit(copy, ',')) {
    const std::string_view raw(item.data(), item.size());
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad CPU list \"", copy, "\": item \"", item, "\" ", why));
    };
    std::string_view range = raw;
    int stride = 1;
    if (const size_t colon = raw.find(':'); colon != std::string_view::npos) {
      if (!ParseInt(raw.substr(colon + 1), &stride) || stride < 1) return bad("has a bad stride");
      range = raw.substr(0, colon);
    }
    int first = 0, last = 0;
    if (const size_t dash = range.find('-'); dash != std::string_view::npos) {
      if (!ParseInt(range.substr(0, dash), &first) || !ParseInt(range.substr(dash + 1), &last))
        return bad("is not a number or a range a-b");
    } else {
      if (!ParseInt(range, &first)) return bad("is not a number or a range a-b");
      last = first;
    }
    if (first < 0 || last >= kMaxCpu) return bad(absl::StrCat("is outside [0, ", kMaxCpu, ")"));
    if (last < first) return bad("has its end before its start");
    for (int c = first; c <= last; c += stride) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  if (cpus.empty()) return absl::InvalidArgumentError("empty CPU list");
  return cpus;
}

std::string FormatCpuList(std::vector<int> cpus) {
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::vector<std::string> items;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    items.push_back(j == i ? absl::StrCat(cpus[i]) : absl::StrCat(cpus[i], "-", cpus[j]));
    i = j + 1;
  }
  return absl::StrJoin(items, ",");
}

std::vector<std::vector<int>> SplitCpus(const std::vector<int>& cpus, int n) {
  if (n < 1) return {};
  std::vector<std::vector<int>> groups(n);
  const int size = static_cast<int>(cpus.size());
  if (size == 0) return groups;
  if (size < n) {
    for (int i = 0; i < n; ++i) groups[i] = {cpus[i % size]};
    return groups;
  }
  const int base = size / n, extra = size % n;
  int next = 0;
  for (int i = 0; i < n; ++i) {
    const int take = base + (i < extra ? 1 : 0);
    groups[i].assign(cpus.begin() + next, cpus.begin() + next + take);
    next += take;
  }
  return groups;
}

absl::StatusOr<std::vector<int>> AllowedCpus() {
  for (int ncpus = 1024; ncpus <= kMaxCpu; ncpus *= 4) {
    std::unique_ptr<cpu_set_t, CpuSetDeleter> set(CPU_ALLOC(ncpus));
    const size_t bytes = CPU_ALLOC_SIZE(ncpus);
    CPU_ZERO_S(bytes, set.get());
    if (sched_getaffinity(0, bytes, set.get()) != 0) {
      if (errno == EINVAL) continue;  // the kernel's mask is larger: retry bigger
      return ErrnoStatus(errno, "sched_getaffinity");
    }
    std::vector<int> cpus;
    for (int c = 0; c < ncpus; ++c)
      if (CPU_ISSET_S(c, bytes, set.get())) cpus.push_back(c);
    return cpus;
  }
  return absl::InternalError("sched_getaffinity: CPU mask too large");
}

uint64_t MachineMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodesWithHwloc() {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return ErrnoStatus(errno, "hwloc_topology_init");
  if (hwloc_topology_load(topo) != 0) {
    const int err = errno;
    hwloc_topology_destroy(topo);
    return ErrnoStatus(err, "hwloc_topology_load");
  }
  std::vector<NumaNode> nodes;
  const int count = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < count; ++i) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, i);
    if (obj == nullptr) continue;
    NumaNode node;
    node.id = static_cast<int>(obj->os_index);
    if (obj->attr != nullptr) node.memory_bytes = obj->attr->numanode.local_memory;
    if (obj->cpuset != nullptr) {
      unsigned cpu;
      hwloc_bitmap_foreach_begin(cpu, obj->cpuset) {
        if (cpu < static_cast<unsigned>(kMaxCpu)) node.cpus.push_back(static_cast<int>(cpu));
      }
      hwloc_bitmap_foreach_end();
    }
    nodes.push_back(std::move(node));
  }
  hwloc_topology_destroy(topo);
  if (nodes.empty()) return absl::NotFoundError("hwloc reports no NUMA node");
  return nodes;
}

absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodesFromSysfs(const std::string& node_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<NumaNode> nodes;
  for (const fs::directory_entry& entry : fs::directory_iterator(node_dir, ec)) {
    const std::string name = entry.path().filename().string();
    int id = 0;
    if (name.size() < 5 || name.compare(0, 4, "node") != 0 || !ParseInt(name.substr(4), &id))
      continue;
    NumaNode node;
    node.id = id;
    const std::string cpulist =
        std::string(absl::StripAsciiWhitespace(ReadSmallFile(entry.path() / "cpulist")));
    if (!cpulist.empty()) {
      absl::StatusOr<std::vector<int>> cpus = ParseCpuList(cpulist);
      if (!cpus.ok()) {
        return absl::DataLossError(
            absl::StrCat(entry.path().string(), "/cpulist: ", cpus.status().message()));
      }
      node.cpus = *std::move(cpus);
    }
    // "Node 0 MemTotal:       32791120 kB"
    std::istringstream meminfo(ReadSmallFile(entry.path() / "meminfo"));
    for (std::string line; std::getline(meminfo, line);) {
      std::istringstream words(line);
      std::string node_word, node_id, key;
      uint64_t kb = 0;
      if (words >> node_word >> node_id >> key >> kb && key == "MemTotal:") {
        node.memory_bytes = kb * 1024;
        break;
      }
    }
    nodes.push_back(std::move(node));
  }
  if (nodes.empty()) return absl::NotFoundError(absl::StrCat("no NUMA node in ", node_dir));
  std::sort(nodes.begin(), nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return nodes;
}

absl::StatusOr<std::vector<NumaNode>> DiscoverNumaNodes() {
  absl::StatusOr<std::vector<NumaNode>> found = DiscoverNumaNodesWithHwloc();
  if (found.ok()) {
    std::vector<NumaNode> nodes = RestrictToAllowed(*std::move(found));
    if (!nodes.empty()) return nodes;
    spdlog::warn("hwloc found no NUMA node with a usable CPU; trying sysfs");
  } else {
    spdlog::warn("hwloc topology discovery failed ({}); trying sysfs", found.status().ToString());
  }
  found = DiscoverNumaNodesFromSysfs("/sys/devices/system/node");
  if (found.ok()) {
    std::vector<NumaNode> nodes = RestrictToAllowed(*std::move(found));
    if (!nodes.empty()) return nodes;
  }
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> cpus, AllowedCpus());
  if (cpus.empty()) return absl::InternalError("no usable CPU found");
  spdlog::warn("no NUMA information; treating the machine as one node with CPUs {}",
               FormatCpuList(cpus));
  NumaNode node;
  node.cpus = std::move(cpus);
  node.memory_bytes = MachineMemoryBytes();
  return std::vector<NumaNode>{std::move(node)};
}

absl::Status BindMemoryToNode(int node) {
  if (node < 0 || node >= kMaxCpu)
    return absl::InvalidArgumentError(absl::StrCat("bad NUMA node ", node));
  constexpr int kBits = 8 * sizeof(unsigned long);
  std::vector<unsigned long> mask(node / kBits + 1, 0);
  mask[node / kBits] = 1ul << (node % kBits);
  // maxnode counts bits; the kernel ignores the last one, hence + 1 (as libnuma does).
  if (set_mempolicy(MPOL_BIND, mask.data(), mask.size() * kBits + 1) != 0)
    return ErrnoStatus(errno, absl::StrCat("set_mempolicy(MPOL_BIND, node ", node, ")"));
  return absl::OkStatus();
}

absl::Status PinThreadToCpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return absl::InvalidArgumentError("cannot pin to an empty CPU set");
  const int max_cpu = *std::max_element(cpus.begin(), cpus.end());
  if (*std::min_element(cpus.begin(), cpus.end()) < 0 || max_cpu >= kMaxCpu)
    return absl::InvalidArgumentError(absl::StrCat("bad CPU in ", FormatCpuList(cpus)));
  std::unique_ptr<cpu_set_t, CpuSetDeleter> set(CPU_ALLOC(max_cpu + 1));
  const size_t bytes = CPU_ALLOC_SIZE(max_cpu + 1);
  CPU_ZERO_S(bytes, set.get());
  for (int c : cpus) CPU_SET_S(c, bytes, set.get());
  if (sched_setaffinity(0, bytes, set.get()) != 0)
    return ErrnoStatus(errno, absl::StrCat("sched_setaffinity(", FormatCpuList(cpus), ")"));
  return absl::OkStatus();
}

absl::Status PinThreadToCpu(int cpu) { return PinThreadToCpus({cpu}); }

}  // namespace tandem
