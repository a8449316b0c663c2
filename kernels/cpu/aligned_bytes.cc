#include "kernels/cpu/aligned_bytes.h"

#include <sys/mman.h>

#include <new>

namespace tandem {

AlignedBytes AllocateAlignedBytes(size_t n) {
  if (n == 0) return nullptr;
  constexpr size_t kHugePage = size_t{2} << 20;
  const bool huge = n >= 2 * kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePage : 64, n) != 0) throw std::bad_alloc();
  if (huge) madvise(p, n / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice: failure is harmless
  return AlignedBytes(static_cast<uint8_t*>(p));
}

}  // namespace tandem
