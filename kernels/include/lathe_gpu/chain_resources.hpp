#pragma once
// What the pre-chain stages of issue 4 share inside one GPU engine (one stream, one host
// thread): the cuFFT plan cache and the batched FIR convolver with its work buffers.
// Host-compilable.
#include "lathe_gpu/convolution.hpp"

namespace lathe::gpu {

struct stage_resources {
  cufft_plan_cache& plans;
  gpu_convolver& convolver;
};

}  // namespace lathe::gpu
