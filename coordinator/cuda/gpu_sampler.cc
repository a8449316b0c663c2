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
  return s;
}

absl::Status GpuSampler::Enqueue(float* logits, std::span<const Draw> draws,
                                 cudaStream_t stream) {
  const size_t n = draws.size();
  TANDEM_RETURN_IF_ERROR(tokens_.Reserve(std::max<size_t>(n, 1)));
  TANDEM_RETURN_IF_ERROR(host_tokens_.Reserve(std::max<size_t>(n, 1)));
  // Every draw's penalised history, staged in one page-locked buffer and uploaded at once.
  size_t staged = 0, longest = 0;
  for (const Draw& d : draws) {
    if (d.params && d.params->repetition_penalty != 1.0) {
      staged += d.history.size();
      longest = std::max(longest, d.history.size());
    }
  }
  if (staged > 0) {
    TANDEM_RETURN_IF_ERROR(host_history_.Reserve(staged));
    TANDEM_RETURN_IF_ERROR(history_.Reserve(staged));
    TANDEM_RETURN_IF_ERROR(penalized_.Reserve(longest));
    size_t at = 0;
    for (const Draw& d : draws) {
      if (!d.params || d.params->repetition_penalty == 1.0) continue;
      std::copy(d.history.begin(), d.history.end(), host_history_.data() + at);
      at += d.history.size();
    }
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(history_.data(), host_history_.data(),
                                                staged * sizeof(int32_t), cudaMemcpyHostToDevice,
                                                stream),
                                "sampling history upload");
  }
  size_t history_at = 0;
  for (size_t i = 0; i < n; ++i) {
    const Draw& d = draws[i];
    if (d.params == nullptr) continue;
    const SamplingParams& params = *d.params;
    SampleKernelArgs args;
    args.vocab = vocab_;
    args.temperature = params.temperature;
    args.top_p = params.top_p;
    args.top_k = params.top_k;
    args.min_p = params.min_p;
    args.u = d.u;
    args.repetition_penalty = params.repetition_penalty;
    if (params.repetition_penalty != 1.0) {
      args.history = history_.data() + history_at;
      args.history_len = static_cast<int64_t>(d.history.size());
      history_at += d.history.size();
    }
    // The draws run one after another on the stream, so they share the workspace.
    SampleWorkspace w;
    w.logits = logits + i * vocab_;
    w.penalized = penalized_.data();
    w.keys = keys_.data();
    w.sorted_keys = sorted_keys_.data();
    w.ids = ids_.data();
    w.sorted_ids = sorted_ids_.data();
    w.mass = mass_.data();
    w.sort_temp = sort_temp_.data();
    w.sort_temp_bytes = sort_temp_.size();
    w.token = tokens_.data() + i;
    TANDEM_CUDA_RETURN_IF_ERROR(LaunchSampleToken(args, w, stream), "GPU sampling");
  }
  if (n > 0) {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_tokens_.data(), tokens_.data(),
                                                n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                                stream),
                                "sampled tokens to host");
  }
  drawn_.assign(n, false);
  for (size_t i = 0; i < n; ++i) drawn_[i] = draws[i].params != nullptr;
  return absl::OkStatus();
}

}  // namespace tandem::cuda
