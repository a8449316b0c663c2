// The GPU's token draw for one engine: SampleToken (coordinator/sampler.h) over logits that stay
// on the device, through kernels/cuda/sampling_kernels.h. Owns the workspace, sized for the
// model's vocabulary at creation and for the longest history seen. Engine thread only.
#pragma once

#include <memory>
#include <span>

#include "coordinator/sampler.h"
#include "kernels/cuda/device_buffer.h"

namespace tandem::cuda {

class GpuSampler {
 public:
  static absl::StatusOr<std::unique_ptr<GpuSampler>> Create(int64_t vocab);

  // Enqueues on `stream` the draw from `logits` [vocab] (modified in place by the repetition
  // penalty) at uniform number `u`, and the copy of the chosen id to the host. The caller
  // synchronises the stream before reading token() and before the next Enqueue (the history's
  // page-locked staging buffer is reused).
  absl::Status Enqueue(float* logits, const SamplingParams& params, double u,
                       std::span<const int32_t> history, cudaStream_t stream);
  int32_t token() const { return *host_token_.data(); }

 private:
  explicit GpuSampler(int64_t vocab) : vocab_(vocab) {}

  int64_t vocab_;
  DeviceBuffer<float> keys_, sorted_keys_, penalized_;
  DeviceBuffer<int32_t> ids_, sorted_ids_, token_, history_;
  DeviceBuffer<double> mass_;
  DeviceBuffer<unsigned char> sort_temp_;
  PinnedBuffer<int32_t> host_history_, host_token_;
};

}  // namespace tandem::cuda
