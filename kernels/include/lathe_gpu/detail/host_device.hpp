#pragma once
// Building blocks for functions compiled both for the device (nvcc) and the host (g++), so CPU
// unit tests run the very code the kernels run. Host-compilable: no CUDA headers; LATHE_GPU_HD
// expands to nothing outside nvcc.
//
// Double arithmetic through mul_rn/add_rn/sub_rn is never contracted: nvcc fuses a * b + c into
// an FMA by default, the x86-64 CPU build does not, and the GPU paths promise the CPU's bits.
#include <cstdint>

#ifdef __CUDACC__
#define LATHE_GPU_HD __host__ __device__
#else
#define LATHE_GPU_HD
#endif

namespace lathe::gpu::detail {

LATHE_GPU_HD inline double mul_rn(double x, double y) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(x, y);
#else
  return x * y;
#endif
}
LATHE_GPU_HD inline double add_rn(double x, double y) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(x, y);
#else
  return x + y;
#endif
}
LATHE_GPU_HD inline double sub_rn(double x, double y) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(x, y);
#else
  return x - y;
#endif
}

}  // namespace lathe::gpu::detail
