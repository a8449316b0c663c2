// Conversions between the coordinator's types and what crosses to a worker: MoE calls to and
// from ring requests, shard and ring announcements to WorkerControl messages. Header-only so the
// worker, the coordinator and tests share one definition. Pure functions.
#pragma once

#include "common/shm_ring.h"
#include "coordinator/expert_executor.h"
#include "numa_worker/expert_shard.h"
#include "tandem/v1/worker.pb.h"

namespace tandem {

inline RingRequest ToRingRequest(const MoeBatch& b, uint32_t flags = 0) {
  RingRequest r;
  r.layer = b.layer;
  r.num_tokens = b.num_tokens;
  r.top_k = b.top_k;
  r.hidden = b.hidden;
  r.expert_ids = b.expert_ids;
  r.weights = b.weights;
  r.flags = flags;
  return r;
}

inline MoeBatch ToMoeBatch(const RingRequestView& v) {
  return MoeBatch{v.layer, v.num_tokens, v.top_k, v.hidden, v.expert_ids, v.weights};
}

// Every field of RingRegion::spec(), which the worker checks against the region it opens.
inline v1::AttachRingRequest AttachRingRequestFor(const RingSpec& spec,
                                                  const RingPolling& polling = {}) {
  v1::AttachRingRequest r;
  r.set_spin_us(polling.spin_us);
  r.set_max_sleep_us(polling.max_sleep_us);
  r.set_name(spec.name);
  r.set_size_bytes(spec.size);
  r.set_layout_version(spec.layout_version);
  r.set_magic(spec.magic);
  v1::RingCapacity* c = r.mutable_capacity();
  c->set_depth(spec.capacity.depth);
  c->set_max_tokens(spec.capacity.max_tokens);
  c->set_hidden_size(spec.capacity.hidden_size);
  c->set_max_top_k(spec.capacity.max_top_k);
  c->set_dtype(static_cast<uint32_t>(spec.capacity.dtype));
  return r;
}

inline v1::LoadShardRequest LoadShardRequestFor(const std::string& model_dir,
                                                const std::string& config_path,
                                                const ShardPlan& plan,
                                                const std::string& fingerprint,
                                                const ExpertFormat& format = ExpertFormat{}) {
  v1::LoadShardRequest r;
  r.set_checkpoint_path(model_dir);
  r.set_config_path(config_path);
  r.mutable_shard()->set_mode(plan.mode == ShardPlan::Mode::kTensorParallel
                                  ? v1::ShardSpec::TENSOR_PARALLEL
                                  : v1::ShardSpec::EXPERT_PARALLEL);
  r.mutable_shard()->set_index(plan.index);
  r.mutable_shard()->set_count(plan.count);
  r.set_expert_dtype(format.dtype == ExpertDtype::kInt8   ? "int8"
                     : format.dtype == ExpertDtype::kInt4 ? "int4"
                                                          : "bf16");
  r.set_int4_group_size(static_cast<uint32_t>(format.group_size));
  r.set_checkpoint_fingerprint(fingerprint);
  return r;
}

}  // namespace tandem
