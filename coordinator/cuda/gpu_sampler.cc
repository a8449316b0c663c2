#include "coordinator/cuda/gpu_sampler.h"

#include <algorithm>

#include "kernels/cuda/sampling_kernels.h"

namespace tandem::cuda {

absl::StatusOr<std::unique_ptr<GpuSampler>> GpuSampler::Create(int64_t vocab) {
  std::unique_ptr<GpuSampler> s(new GpuSampler(vocab));
  TANDEM_RETURN_IF_ERROR(s->keys_.Reserve(vocab));
  TANDEM_RETURN_IF_ERROR(s->sorted_keys_.Reserve(vocab));
  TANDEM_RETURN_IF_ERROR(s->ids_.Reserve(vocab));
  TANDEM_RETURN_IF_ERROR(s->sorted_ids_.Reserve(vocab));
  TANDEM_RETURN_IF_ERROR(s->mass_.Reserve(vocab));
  TANDEM_RETURN_IF_ERROR(s->sort_temp_.Reserve(std::max<size_t>(1, SampleSortTempBytes(vocab))));
  TANDEM_RETURN_IF_ERROR(s->token_.Reserve(1));
  TANDEM_RETURN_IF_ERROR(s->host_token_.Reserve(1));
  return s;
}

absl::Status GpuSampler::Enqueue(float* logits, const SamplingParams& params, double u,
                                 std::span<const int32_t> history, cudaStream_t stream) {
  SampleKernelArgs args;
  args.vocab = vocab_;
  args.temperature = params.temperature;
  args.top_p = params.top_p;
  args.top_k = params.top_k;
  args.min_p = params.min_p;
  args.u = u;
  args.repetition_penalty = params.repetition_penalty;
  if (params.repetition_penalty != 1.0 && !history.empty()) {
    TANDEM_RETURN_IF_ERROR(host_history_.Reserve(history.size()));
    TANDEM_RETURN_IF_ERROR(history_.Reserve(history.size()));
    TANDEM_RETURN_IF_ERROR(penalized_.Reserve(history.size()));
    std::copy(history.begin(), history.end(), host_history_.data());
    TANDEM_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(history_.data(), host_history_.data(), history.size() * sizeof(int32_t),
                        cudaMemcpyHostToDevice, stream),
        "sampling history upload");
    args.history = history_.data();
    args.history_len = static_cast<int64_t>(history.size());
  }
  SampleWorkspace w;
  w.logits = logits;
  w.penalized = penalized_.data();
  w.keys = keys_.data();
  w.sorted_keys = sorted_keys_.data();
  w.ids = ids_.data();
  w.sorted_ids = sorted_ids_.data();
  w.mass = mass_.data();
  w.sort_temp = sort_temp_.data();
  w.sort_temp_bytes = sort_temp_.size();
  w.token = token_.data();
  TANDEM_CUDA_RETURN_IF_ERROR(LaunchSampleToken(args, w, stream), "GPU sampling");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_token_.data(), token_.data(), sizeof(int32_t),
                                              cudaMemcpyDeviceToHost, stream),
                              "sampled token to host");
  return absl::OkStatus();
}

}  // namespace tandem::cuda
