// Owning handles of device memory and of page-locked host memory (for copies that overlap GPU
// work). Move-only; freed on destruction. Used by the GPU backend's host code on its engine
// thread.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda/cuda_status.h"

namespace tandem::cuda {

// `kPinnedHost` false: device memory (cudaMalloc); true: page-locked host memory (cudaMallocHost).
template <typename T, bool kPinnedHost = false>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~Buffer() { Free(); }

  // Makes room for at least `n` elements; the contents are lost when it reallocates.
  absl::Status Reserve(size_t n) {
    if (n <= size_) return absl::OkStatus();
    Free();
    void* p = nullptr;
    const cudaError_t err = kPinnedHost ? cudaMallocHost(&p, n * sizeof(T))
                                        : cudaMalloc(&p, n * sizeof(T));
    if (err != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(
          absl::StrCat(kPinnedHost ? "pinned host" : "GPU", " allocation of ", n * sizeof(T),
                       " bytes failed: ", cudaGetErrorString(err)));
    }
    data_ = static_cast<T*>(p);
    size_ = n;
    return absl::OkStatus();
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

 private:
  void Free() {
    if (data_) kPinnedHost ? cudaFreeHost(data_) : cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

template <typename T>
using DeviceBuffer = Buffer<T, false>;
template <typename T>
using PinnedBuffer = Buffer<T, true>;

// A device copy of `n` host values (synchronous: used at load time).
template <typename T>
absl::StatusOr<DeviceBuffer<T>> Upload(const T* host, size_t n) {
  DeviceBuffer<T> buffer;
  if (n == 0) return buffer;
  TANDEM_RETURN_IF_ERROR(buffer.Reserve(n));
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpy(buffer.data(), host, n * sizeof(T), cudaMemcpyHostToDevice),
                              "weight upload");
  return buffer;
}

}  // namespace tandem::cuda
