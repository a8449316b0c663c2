#include "kernels/cpu/moe_kernel.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/bf16.h"
#include "kernels/cpu/convert_avx512.h"
#include "kernels/cpu/moe_kernel_impl.h"

namespace tandem {
namespace {

bool UsesAvx512(const ExpertKernel& k) {
  return k.isa == CpuKernel::kAvx512 || k.isa == CpuKernel::kAmx;
}

// kAmx with >= kAmxMinTokens tokens and weights AMX multiplies: bf16 (with bf16
// activations) or int8.
bool UsesAmx(const ExpertKernel& k, ExpertDtype dtype, int64_t n) {
  if (k.isa != CpuKernel::kAmx || n < AmxMinTokens()) return false;
  if (dtype == ExpertDtype::kBf16) return k.activations == ActivationPrecision::kBf16;
  return dtype == ExpertDtype::kInt8;
}

}  // namespace

int64_t AmxMinTokens() {
  static const int64_t min_tokens = moe_internal::EnvInt(
      "TANDEM_AMX_MIN_TOKENS", 1, std::numeric_limits<int64_t>::max(), kAmxMinTokens);
  return min_tokens;
}

bool ExpertKernel::uses_bf16_activations() const {
  return UsesAvx512(*this) && activations == ActivationPrecision::kBf16;
}

void ConvertToBf16Pairs(const float* x, int64_t n, int64_t k, uint32_t* out) {
  const int64_t pairs = Bf16PairCount(k);
#if defined(__x86_64__)
  if (HasAvx512FBw()) {  // the same bits, 32 values at a time
    for (int64_t t = 0; t < n; ++t)
      convert_internal::Bf16PairsRow(x + t * k, k, reinterpret_cast<uint8_t*>(out + t * pairs), 64,
                                     pairs * 4);
    return;
  }
#endif
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * k;
    uint32_t* o = out + t * pairs;
    for (int64_t p = 0; p < pairs; ++p) {
      const uint32_t lo = FloatToBf16(xt[2 * p]);
      const uint32_t hi = 2 * p + 1 < k ? FloatToBf16(xt[2 * p + 1]) : 0u;
      o[p] = lo | (hi << 16);
    }
  }
}

int64_t AmxTileSteps(int64_t k, bool int8) { return int8 ? (k + 63) / 64 : (k + 31) / 32; }

void ActivationBuffer::Reset(int64_t n, int64_t k, ActivationForms forms, int64_t reserve_rows) {
  k_ = k;
  forms_ = forms;
  const int64_t rows = std::max(n, reserve_rows), stride = Int8ActivationStride(k);
  if (forms.bf16_pairs) pairs_.Reserve(rows * Bf16PairCount(k));
  if (forms.int8) {
    q8_.Reserve(rows * stride);
    q8_scale_.Reserve(rows);
    q8_sums32_.Reserve(rows * (stride / 32));
  }
  tile_steps_ = forms.amx_tiles ? AmxTileSteps(k, forms.int8) : 0;
  tiles_.Reserve((rows + kTileTokens - 1) / kTileTokens * tile_steps_ * kTileBytes);
}

uint8_t* ActivationBuffer::TileRow(int64_t r) {
  return tiles_.data() + (r / kTileTokens) * tile_steps_ * kTileBytes +
         (r % kTileTokens) * kTileRowBytes;
}

// Row r of the tile form: 64-byte pieces [s * 64, s * 64 + 64) of the row's bytes `src` (`bytes`
// of data, zero beyond) go to row r % 16 of step s of tile r / 16.
void ActivationBuffer::ScatterToTiles(const uint8_t* src, int64_t bytes, int64_t r) {
  uint8_t* dst = TileRow(r);
  for (int64_t s = 0; s < tile_steps_; ++s, dst += kTileBytes) {
    const int64_t off = s * kTileRowBytes,
                  have = std::clamp<int64_t>(bytes - off, 0, kTileRowBytes);
    std::memcpy(dst, src + off, static_cast<size_t>(have));
    std::memset(dst + have, 0, static_cast<size_t>(kTileRowBytes - have));
  }
}

void ActivationBuffer::FillAmxTiles(const float* x, const ActivationBuffer* quantized,
                                    const int64_t* src_row, int64_t r0, int64_t r1) {
  if (r0 >= r1) return;
  const int64_t stride = Int8ActivationStride(k_);
  thread_local std::vector<int8_t> q_row;
  thread_local std::vector<int32_t> sums_row;
  thread_local std::vector<uint32_t> pairs;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t s = src_row != nullptr ? src_row[r - r0] : r;
    if (forms_.int8 && quantized != nullptr) {  // the token's int8 row, quantized once
      q8_scale_.data()[r] = quantized->q8_scale_.data()[s];
      ScatterToTiles(reinterpret_cast<const uint8_t*>(quantized->q8_.data() + s * stride), k_, r);
      continue;
    }
#if defined(__x86_64__)
    if (HasAvx512FBw()) {  // converted straight into the row's place in each step's tile
      if (forms_.int8)
        convert_internal::QuantizeRowPieces(x + s * k_, k_, TileRow(r), kTileBytes, tile_steps_,
                                            q8_scale_.data() + r);
      else
        convert_internal::Bf16PairsRow(x + s * k_, k_, TileRow(r), kTileBytes,
                                       tile_steps_ * kTileRowBytes);
      continue;
    }
#endif
    if (forms_.int8) {
      q_row.resize(stride);
      sums_row.resize(stride / 32);
      QuantizeActivations(x + s * k_, 1, k_, q_row.data(), q8_scale_.data() + r, sums_row.data());
      ScatterToTiles(reinterpret_cast<const uint8_t*>(q_row.data()), k_, r);
      continue;
    }
    pairs.resize(Bf16PairCount(k_));
    ConvertToBf16Pairs(x + s * k_, 1, k_, pairs.data());
    ScatterToTiles(reinterpret_cast<const uint8_t*>(pairs.data()), Bf16PairCount(k_) * 4, r);
  }
  ZeroTileRows(r1);
}

void ActivationBuffer::ZeroTileRows(int64_t r1) {
  const int64_t pad_end = (r1 + kTileTokens - 1) / kTileTokens * kTileTokens;
  for (int64_t r = r1; r < pad_end; ++r) ScatterToTiles(nullptr, 0, r);
}

AmxTileRows ActivationBuffer::DirectTiles(int64_t r0, int64_t r1) {
  if (r0 >= r1) return {};
  // The last K step's bytes past k (bf16: 2 per value) of every row.
  const int64_t tail = k_ * 2 - (tile_steps_ - 1) * kTileRowBytes;
  if (tail < kTileRowBytes) {
    for (int64_t r = r0; r < r1; ++r)
      std::memset(TileRow(r) + (tile_steps_ - 1) * kTileBytes + tail, 0,
                  static_cast<size_t>(kTileRowBytes - tail));
  }
  ZeroTileRows(r1);
  return {TileRow(r0), tile_steps_};
}

void ActivationBuffer::Fill(const float* x, int64_t r0, int64_t r1) {
  if (r0 >= r1) return;
  if (forms_.bf16_pairs)
    ConvertToBf16Pairs(x + r0 * k_, r1 - r0, k_, pairs_.data() + r0 * Bf16PairCount(k_));
  if (forms_.int8) {
    const int64_t stride = Int8ActivationStride(k_);
    QuantizeActivations(x + r0 * k_, r1 - r0, k_, q8_.data() + r0 * stride, q8_scale_.data() + r0,
                        q8_sums32_.data() + r0 * (stride / 32));
  }
  // The tiles of int8 rows from their q8 rows, just filled.
  if (forms_.amx_tiles && r0 % kTileTokens == 0)
    FillAmxTiles(x, forms_.int8 ? this : nullptr, nullptr, r0, r1);
}

ExpertActivations ActivationBuffer::View(const float* x, int64_t r0, int64_t n) const {
  ExpertActivations a{x + r0 * k_, nullptr, n, k_};
  if (forms_.bf16_pairs) a.bf16_pairs = pairs_.data() + r0 * Bf16PairCount(k_);
  if (forms_.int8) {
    const int64_t stride = Int8ActivationStride(k_);
    a.q8 = q8_.data() + r0 * stride;
    a.q8_scale = q8_scale_.data() + r0;
    a.q8_sums32 = q8_sums32_.data() + r0 * (stride / 32);
  }
  if (forms_.amx_tiles && r0 % kTileTokens == 0) {
    a.amx_tiles = tiles_.data() + (r0 / kTileTokens) * tile_steps_ * kTileBytes;
    a.amx_tile_steps = tile_steps_;
  }
  return a;
}

ActivationForms ActivationFormsFor(const ExpertKernel& kernel, ExpertDtype dtype, int64_t n) {
  ActivationForms forms;
  forms.int8 = dtype != ExpertDtype::kBf16;
  forms.amx_tiles = UsesAmx(kernel, dtype, n);
  forms.bf16_pairs = !forms.int8 && !forms.amx_tiles && kernel.uses_bf16_activations();
  return forms;
}

ExpertActivations ActivationBuffer::Prepare(const ExpertKernel& kernel, ExpertDtype dtype,
                                            const float* x, int64_t n, int64_t k) {
  Reset(n, k, ActivationFormsFor(kernel, dtype, n));
  Fill(x, 0, n);
  return View(x, 0, n);
}

// Quantized weights read the int8 activations on every ISA (the AVX-512 flag for bf16 pairs does
// not apply to them); int4 has no AMX kernel (UsesAmx is false for it).
void GateUpRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& x,
                int64_t r0, int64_t r1, float* act, const RowsAhead& ahead) {
  const bool quantized = e.dtype() != ExpertDtype::kBf16;
  if (UsesAmx(kernel, e.dtype(), x.n)) {
    quantized ? moe_internal::AmxInt8GateUpRows(e, x, r0, r1, act, ahead)
              : moe_internal::AmxGateUpRows(e, x, r0, r1, act, ahead);
  } else if (UsesAvx512(kernel)) {
    moe_internal::Avx512GateUpRows(e, x, !quantized && kernel.uses_bf16_activations(), r0, r1, act);
  } else {
    quantized ? moe_internal::ReferenceQuantGateUpRows(e, x, r0, r1, act)
              : moe_internal::ReferenceGateUpRows(e, x, r0, r1, act);
  }
}

bool GateUpWritesTiles(const ExpertKernel& kernel, const PackedExpert& e, int64_t n) {
  return e.dtype() == ExpertDtype::kBf16 && UsesAmx(kernel, e.dtype(), n);
}

void GateUpRowsToTiles(const ExpertKernel& kernel, const PackedExpert& e,
                       const ExpertActivations& x, int64_t r0, int64_t r1, const AmxTileRows& out,
                       const RowsAhead& ahead) {
  if (GateUpWritesTiles(kernel, e, x.n)) {
    moe_internal::AmxGateUpRowsToTiles(e, x, r0, r1, out, ahead);
    return;
  }
  // Any other kernel: its f32 act, converted value by value (the same bytes, more slowly).
  const int64_t inter = e.intermediate();
  thread_local std::vector<float> act;
  act.resize(static_cast<size_t>(x.n * inter));
  GateUpRows(kernel, e, x, r0, r1, act.data());
  for (int64_t t = 0; t < x.n; ++t)
    for (int64_t r = r0; r < r1; ++r) {
      const uint16_t v = FloatToBf16(act[t * inter + r]);
      std::memcpy(out.Bf16At(t, r), &v, 2);
    }
}

void DownRows(const ExpertKernel& kernel, const PackedExpert& e, const ExpertActivations& act,
              int64_t d0, int64_t d1, float* y, const RowsAhead& ahead) {
  const bool quantized = e.dtype() != ExpertDtype::kBf16;
  if (UsesAmx(kernel, e.dtype(), act.n)) {
    quantized ? moe_internal::AmxInt8DownRows(e, act, d0, d1, y, ahead)
              : moe_internal::AmxDownRows(e, act, d0, d1, y, ahead);
  } else if (UsesAvx512(kernel)) {
    moe_internal::Avx512DownRows(e, act, !quantized && kernel.uses_bf16_activations(), d0, d1, y);
  } else {
    quantized ? moe_internal::ReferenceQuantDownRows(e, act, d0, d1, y)
              : moe_internal::ReferenceDownRows(e, act, d0, d1, y);
  }
}

void ExpertForward(const ExpertKernel& kernel, const PackedExpert& e, const float* x, int64_t n,
                   float* y, ExpertScratch* scratch) {
  const int64_t hidden = e.hidden(), inter = e.intermediate();
  if (n == 0) return;
  if (inter == 0) {  // a zero-width slice of an expert contributes nothing
    std::fill(y, y + n * hidden, 0.0f);
    return;
  }
  scratch->act.resize(n * inter);
  GateUpRows(kernel, e, scratch->x.Prepare(kernel, e.dtype(), x, n, hidden), 0, inter,
             scratch->act.data());
  DownRows(kernel, e, scratch->act_forms.Prepare(kernel, e.dtype(), scratch->act.data(), n, inter),
           0, hidden, y);
}

}  // namespace tandem
