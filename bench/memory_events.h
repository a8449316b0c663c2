// What the kernel did to the process's memory while a benchmark timed it: page faults (a timed
// call that first-touches a buffer pays for zeroing it, on the clock) and the kernel's
// transparent-huge-page events (a huge page denied at fault time leaves 4 KB pages, and
// khugepaged may collapse them later, under a running call). A benchmark reads a snapshot before
// and after the calls it times and prints the difference, so a slow repetition can be told from a
// slow host.
#pragma once

#include <cstdint>

namespace tandem::bench {

struct MemoryEvents {
  int64_t minor_faults = 0;  // this process's (getrusage)
  int64_t major_faults = 0;
  // System-wide counters of /proc/vmstat (0 where the file or the counter is missing).
  int64_t thp_fault_alloc = 0;     // huge page given at a fault
  int64_t thp_fault_fallback = 0;  // huge page wanted at a fault, 4 KB pages given
  int64_t thp_collapse_alloc = 0;  // khugepaged collapsed 4 KB pages into a huge page
};

MemoryEvents ReadMemoryEvents();

// This process's minor page faults so far (getrusage alone: cheap enough to call around every
// timed call, unlike ReadMemoryEvents, which also parses /proc/vmstat).
int64_t MinorPageFaults();

// after - before, field by field.
MemoryEvents operator-(const MemoryEvents& after, const MemoryEvents& before);

// This process's anonymous memory and the part of it in transparent huge pages, in bytes, from
// /proc/self/smaps_rollup (both 0 where it is missing).
struct AnonMemory {
  int64_t anonymous = 0;
  int64_t in_huge_pages = 0;
};
AnonMemory ReadAnonMemory();

}  // namespace tandem::bench
