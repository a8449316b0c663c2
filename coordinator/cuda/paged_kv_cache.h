// The GPU backend's attention cache: one pool of fixed-size pages per layer (for GQA the keys in
// pool a and the values in pool b; for MLA the normalised latent in a and the rotated rope key in
// b), shared by every sequence of the engine, and per sequence a block table mapping its logical
// pages to pool pages. Pages are taken as a sequence grows and given back when its cache is
// destroyed, so memory follows the tokens actually cached, not each sequence's capacity.
// Engine thread only.
#pragma once

#include <memory>
#include <vector>

#include "coordinator/engine.h"
#include "kernels/cuda/coordinator_kernels.h"
#include "kernels/cuda/device_buffer.h"

namespace tandem::cuda {

class PagedKvPool {
 public:
  static absl::StatusOr<std::shared_ptr<PagedKvPool>> Create(int64_t num_layers, int64_t width_a,
                                                             int64_t width_b, int64_t page_size,
                                                             int64_t num_pages);

  CachePool a(int64_t layer) { return {layers_a_[layer].data(), width_a_}; }
  CachePool b(int64_t layer) { return {layers_b_[layer].data(), width_b_}; }
  int64_t page_size() const { return page_size_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_pages() const { return num_pages_; }
  size_t bytes() const;

  // A free page, or ResourceExhausted when the pool is full.
  absl::StatusOr<int32_t> Take();
  void Give(int32_t page) { free_.push_back(page); }

 private:
  PagedKvPool() = default;
  int64_t width_a_ = 0, width_b_ = 0, page_size_ = 0, num_pages_ = 0;
  std::vector<DeviceBuffer<float>> layers_a_, layers_b_;
  std::vector<int32_t> free_;
};

class CudaKvCache : public SequenceCache {
 public:
  CudaKvCache(std::shared_ptr<PagedKvPool> pool, int64_t capacity);
  ~CudaKvCache() override;

  // Makes positions [0, new_length) addressable, taking pages as needed; new_length <= capacity.
  absl::Status Reserve(int64_t new_length);
  // The block table: pool page of each logical page (the engine uploads it with each step).
  const std::vector<int32_t>& pages() const { return pages_; }
  PagedKvPool& pool() { return *pool_; }

 private:
  std::shared_ptr<PagedKvPool> pool_;
  std::vector<int32_t> pages_;
};

}  // namespace tandem::cuda
