#include "kernels/cuda/linear.h"

#include "kernels/cuda/linear_kernels.h"

namespace tandem::cuda {

absl::StatusOr<std::unique_ptr<CudaLinear>> CudaLinear::Create(cudaStream_t stream) {
  cublasHandle_t handle;
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasCreate(&handle), "cublasCreate");
  auto linear = std::unique_ptr<CudaLinear>(new CudaLinear(handle, stream));
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle, stream), "cublasSetStream");
  // The default math mode: f32 products stay full f32 (TF32 only when asked for), and the bf16
  // GEMM keeps its tensor cores.
  TANDEM_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH),
                                "cublasSetMathMode");
  // A workspace of our own, so cuBLAS never allocates inside a CUDA graph capture.
  constexpr size_t kWorkspaceBytes = 32u << 20;
  TANDEM_RETURN_IF_ERROR(linear->workspace_.Reserve(kWorkspaceBytes));
  TANDEM_CUBLAS_RETURN_IF_ERROR(
      cublasSetWorkspace(handle, linear->workspace_.data(), kWorkspaceBytes), "cublasSetWorkspace");
  return linear;
}

CudaLinear::~CudaLinear() { cublasDestroy(handle_); }

absl::Status CudaLinear::Reserve(int64_t num_tokens, int64_t k, int64_t n) {
  TANDEM_RETURN_IF_ERROR(split_.Reserve(2 * num_tokens * k));
  return split_out_.Reserve(2 * num_tokens * n);
}

absl::Status CudaLinear::Run(const float* x, int64_t num_tokens, const DeviceMatrix& w, float* y) {
  const int64_t n = w.rows, k = w.cols;
  if (num_tokens <= kGemvMaxTokens) {
    LaunchGemv(x, num_tokens, w, y, stream_);
    return LaunchStatus("GEMV");
  }
  const float one = 1.0f, zero = 0.0f;
  // Row-major y[T x N] = x[T x K] W^T is column-major y^T[N x T] = W^T[N x K] x^T[K x T], with W
  // row-major [N x K] read as column-major [K x N] (transposed) and x as column-major [K x T].
  if (w.f32) {
    TANDEM_CUBLAS_RETURN_IF_ERROR(cublasSgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, num_tokens, k,
                                              &one, w.f32, k, x, k, &zero, y, n),
                                  "cublasSgemm");
    if (w.bias) LaunchAddBias(y, num_tokens, n, w.bias, stream_);
    return LaunchStatus("bias");
  }
  TANDEM_RETURN_IF_ERROR(Reserve(num_tokens, k, n));
  LaunchSplitToBf16(x, num_tokens * k, split_.data(), stream_);
  TANDEM_CUBLAS_RETURN_IF_ERROR(
      cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, 2 * num_tokens, k, &one, w.bf16,
                   CUDA_R_16BF, k, split_.data(), CUDA_R_16BF, k, &zero, split_out_.data(),
                   CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx (bf16)");
  LaunchCombineSplit(split_out_.data(), num_tokens, n, w.bias, y, stream_);
  return LaunchStatus("split GEMM");
}

absl::Status CudaLinear::BatchedF32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                                    int64_t stride_a, const float* b, int64_t ldb,
                                    int64_t stride_b, bool transpose_b, float* c, int64_t ldc,
                                    int64_t stride_c, int64_t batch) {
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T[N x M] = B^T[N x K] A^T[K x M]: B (row-major [K x N])
  // is column-major [N x K] as is; stored as [N x K] row-major it is column-major [K x N], so
  // transposed.
  TANDEM_CUBLAS_RETURN_IF_ERROR(
      cublasSgemmStridedBatched(handle_, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, n,
                                m, k, &one, b, ldb, stride_b, a, lda, stride_a, &zero, c, ldc,
                                stride_c, batch),
      "cublasSgemmStridedBatched");
  return absl::OkStatus();
}

}  // namespace tandem::cuda
