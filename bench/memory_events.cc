#include "bench/memory_events.h"

#include <sys/resource.h>

#include <fstream>
#include <sstream>
#include <string>

namespace tandem::bench {
namespace {

// Values of "name value" lines (vmstat) or "Name:   value kB" lines (smaps_rollup) of a /proc
// file, for the names asked; a name not found keeps its 0.
template <size_t N>
void ReadProcFields(const char* path, const char* const (&names)[N], int64_t* (&values)[N]) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    int64_t value = 0;
    if (!(fields >> name >> value)) continue;
    if (!name.empty() && name.back() == ':') name.pop_back();
    for (size_t i = 0; i < N; ++i)
      if (name == names[i]) *values[i] = value;
  }
}

}  // namespace

int64_t MinorPageFaults() {
  rusage usage{};
  return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_minflt : 0;
}

MemoryEvents ReadMemoryEvents() {
  MemoryEvents e;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    e.minor_faults = usage.ru_minflt;
    e.major_faults = usage.ru_majflt;
  }
  const char* const names[] = {"thp_fault_alloc", "thp_fault_fallback", "thp_collapse_alloc"};
  int64_t* values[] = {&e.thp_fault_alloc, &e.thp_fault_fallback, &e.thp_collapse_alloc};
  ReadProcFields("/proc/vmstat", names, values);
  return e;
}

MemoryEvents operator-(const MemoryEvents& after, const MemoryEvents& before) {
  return {after.minor_faults - before.minor_faults, after.major_faults - before.major_faults,
          after.thp_fault_alloc - before.thp_fault_alloc,
          after.thp_fault_fallback - before.thp_fault_fallback,
          after.thp_collapse_alloc - before.thp_collapse_alloc};
}

AnonMemory ReadAnonMemory() {
  AnonMemory m;
  const char* const names[] = {"Anonymous", "AnonHugePages"};
  int64_t* values[] = {&m.anonymous, &m.in_huge_pages};
  ReadProcFields("/proc/self/smaps_rollup", names, values);
  m.anonymous *= 1024;  // kB
  m.in_huge_pages *= 1024;
  return m;
}

}  // namespace tandem::bench
