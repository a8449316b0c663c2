// The GPU's token draw for one engine: SampleToken (coordinator/sampler.h) over logits that stay
// on the device, through kernels/cuda/sampling_kernels.h. Owns the workspace, sized for the
// model's vocabulary at creation and for the longest history seen. Engine thread only.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "coordinator/sampler.h"
#include "kernels/cuda/device_buffer.h"

namespace tandem::cuda {

class GpuSampler {
 public:
  static absl::StatusOr<std::unique_ptr<GpuSampler>> Create(int64_t vocab);

  // One draw: from `params` at uniform number `u` over `history`; null params: no draw.
  struct Draw {
    const SamplingParams* params = nullptr;
    double u = 0;
    std::span<const int32_t> history;
  };
  // Enqueues on `stream` draw i from logits + i * vocab (modified in place by the repetition
  // penalty), for every i, and the copy of the chosen ids to the host. The caller synchronises
  // the stream before reading token(i) and before the next Enqueue (the histories' page-locked
  // staging buffer is reused).
  absl::Status Enqueue(float* logits, std::span<const Draw> draws, cudaStream_t stream);
  // Draw i's token; -1 where it had no params.
  int32_t token(size_t i) const { return drawn_[i] ? host_tokens_.data()[i] : -1; }

 private:
  explicit GpuSampler(int64_t vocab) : vocab_(vocab) {}

  int64_t vocab_;
  DeviceBuffer<float> keys_, sorted_keys_, penalized_;
  DeviceBuffer<int32_t> ids_, sorted_ids_, tokens_, history_;
  DeviceBuffer<double> mass_;
  DeviceBuffer<unsigned char> sort_temp_;
  PinnedBuffer<int32_t> host_history_, host_tokens_;
  std::vector<bool> drawn_;
};

}  // namespace tandem::cuda
