// Byte buffers for the CPU kernels' operands: 64-byte aligned (a cache line; no AVX-512 or tile
// row straddles two lines), and, from 4 MB up, on a 2 MB boundary with transparent huge pages
// requested -- the kernels stream such buffers, and 4 KB pages would cost a TLB miss per 4 KB.
// (Only virtual space is spent on the alignment; a tail short of 2 MB stays in small pages.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace tandem {

struct FreeBytes {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<uint8_t[], FreeBytes>;

// n bytes (uninitialized); n == 0 gives null. Throws std::bad_alloc when out of memory.
AlignedBytes AllocateAlignedBytes(size_t n);

// A reusable scratch array of T (a trivial type) in AllocateAlignedBytes's memory, never
// initialized: for buffers that every use writes before it reads, so that growing one costs no
// zero-fill (std::vector::resize would value-initialize every new element, on the caller's clock).
template <typename T>
class ScratchArray {
 public:
  // Room for at least n values. Growing reallocates and keeps nothing of the old contents.
  T* Reserve(int64_t n) {
    if (n > capacity_) {
      bytes_ = AllocateAlignedBytes(static_cast<size_t>(n) * sizeof(T));
      capacity_ = n;
    }
    return data();
  }
  T* data() const { return reinterpret_cast<T*>(bytes_.get()); }

 private:
  AlignedBytes bytes_;
  int64_t capacity_ = 0;
};

}  // namespace tandem
