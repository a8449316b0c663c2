#include "coordinator/cuda/paged_kv_cache.h"

#include <numeric>

namespace tandem::cuda {

absl::StatusOr<std::shared_ptr<PagedKvPool>> PagedKvPool::Create(int64_t num_layers,
                                                                 int64_t width_a, int64_t width_b,
                                                                 int64_t page_size,
                                                                 int64_t num_pages) {
  if (page_size <= 0 || num_pages <= 0)
    return absl::InvalidArgumentError("the KV cache needs at least one page of at least one token");
  auto pool = std::shared_ptr<PagedKvPool>(new PagedKvPool());
  pool->width_a_ = width_a;
  pool->width_b_ = width_b;
  pool->page_size_ = page_size;
  pool->num_pages_ = num_pages;
  pool->layers_a_.resize(num_layers);
  pool->layers_b_.resize(num_layers);
  for (int64_t l = 0; l < num_layers; ++l) {
    TANDEM_RETURN_IF_ERROR(pool->layers_a_[l].Reserve(num_pages * page_size * width_a));
    TANDEM_RETURN_IF_ERROR(pool->layers_b_[l].Reserve(num_pages * page_size * width_b));
  }
  // Lowest pages first: a lone sequence's cache stays in one contiguous run.
  pool->free_.resize(num_pages);
  std::iota(pool->free_.rbegin(), pool->free_.rend(), 0);
  return pool;
}

size_t PagedKvPool::bytes() const {
  return layers_a_.size() * num_pages_ * page_size_ * (width_a_ + width_b_) * sizeof(float);
}

absl::StatusOr<int32_t> PagedKvPool::Take() {
  if (free_.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the GPU KV cache is full (", num_pages_, " pages of ", page_size_,
                     " tokens); raise --kv-cache-tokens or shorten the sequences"));
  }
  const int32_t page = free_.back();
  free_.pop_back();
  return page;
}

CudaKvCache::CudaKvCache(std::shared_ptr<PagedKvPool> pool, int64_t capacity)
    : SequenceCache(capacity), pool_(std::move(pool)) {}

CudaKvCache::~CudaKvCache() {
  for (int32_t page : pages_) pool_->Give(page);
}

absl::Status CudaKvCache::Reserve(int64_t new_length) {
  const int64_t page_size = pool_->page_size();
  const int64_t needed = (new_length + page_size - 1) / page_size;
  const size_t old_pages = pages_.size();
  while (static_cast<int64_t>(pages_.size()) < needed) {
    absl::StatusOr<int32_t> page = pool_->Take();
    if (!page.ok()) {
      for (size_t i = old_pages; i < pages_.size(); ++i) pool_->Give(pages_[i]);
      pages_.resize(old_pages);
      return page.status();
    }
    pages_.push_back(*page);
  }
  return absl::OkStatus();
}

}  // namespace tandem::cuda
