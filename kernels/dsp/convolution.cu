// Batched uniformly partitioned overlap-save convolution on cuFFT. Layers: element helpers
// (convolution_layout.hpp, shared with the CPU test) -> kernels with a constexpr tile policy ->
// per-slice dispatch (gather, R2C, accumulate, C2R, scatter) -> facade (gpu_convolver) that
// checks arguments and turns CUDA/cuFFT statuses into exceptions.
#include <cuda_runtime_api.h>
#include <cufft.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <tuple>
#include <type_traits>
#include <vector>

#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/cufft_error.hpp"
#include "lathe_gpu/error.cuh"

namespace lathe::gpu {
namespace {

// Tile policy: one CUDA block per (block entry, tile of threads_per_tile consecutive samples or
// bins); consecutive threads touch consecutive floats, so every global access is coalesced.
struct conv_policy {
  static constexpr unsigned threads_per_tile = 256;
  static constexpr unsigned max_grid_y = 65'535;
};

cudaStream_t raw(const stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

unsigned tiles_for(std::size_t n) {
  const std::size_t t = (n + conv_policy::threads_per_tile - 1) / conv_policy::threads_per_tile;
  return static_cast<unsigned>(std::min<std::size_t>(t, conv_policy::max_grid_y));
}

// time[e][t] = window e's sample t (zeros for padding entries e >= count, so the padded
// transforms read defined memory).
__global__ void gather_windows(const conv_in_block* __restrict__ table, std::size_t count, const float* __restrict__ in,
                               float* __restrict__ time, std::size_t fft_frames) {
  const std::size_t e = blockIdx.x;
  float* dst = time + e * fft_frames;
  const bool real = e < count;
  for (std::size_t t = std::size_t{blockIdx.y} * blockDim.x + threadIdx.x; t < fft_frames;
       t += std::size_t{gridDim.y} * blockDim.x) {
    dst[t] = real ? conv_gather(table[e], in, t) : 0.0f;
  }
}

// Y[e][j] = sum_{p = p_begin}^{p_end - 1} X[x_of_q - p][j] * H[p][j], p ascending in one thread:
// a fixed summation order, so the result is the same on every run. Padding entries get zeros.
__global__ void accumulate_partitions(const conv_out_block* __restrict__ table, std::size_t count,
                                      const float2* __restrict__ x, const float2* __restrict__ h,
                                      float2* __restrict__ y, std::size_t bins) {
  const std::size_t e = blockIdx.x;
  for (std::size_t j = std::size_t{blockIdx.y} * blockDim.x + threadIdx.x; j < bins;
       j += std::size_t{gridDim.y} * blockDim.x) {
    float re = 0.0f, im = 0.0f;
    if (e < count) {
      const conv_out_block b = table[e];
      for (std::uint32_t p = b.p_begin; p < b.p_end; ++p) {
        const float2 xv = x[(b.x_of_q - p) * bins + j];
        const float2 hv = h[std::size_t{p} * bins + j];
        re += xv.x * hv.x - xv.y * hv.y;
        im += xv.x * hv.y + xv.y * hv.x;
      }
    }
    y[e * bins + j] = make_float2(re, im);
  }
}

// out[lane frame out_start + t] = second half of block e's inverse transform, where inside the lane.
__global__ void scatter_valid_half(const conv_out_block* __restrict__ table, const float* __restrict__ time,
                                   float* __restrict__ out, std::size_t block_frames) {
  const std::size_t e = blockIdx.x;
  const conv_out_block b = table[e];
  const float* src = time + e * 2 * block_frames + block_frames;
  for (std::size_t t = std::size_t{blockIdx.y} * blockDim.x + threadIdx.x; t < block_frames;
       t += std::size_t{gridDim.y} * blockDim.x) {
    std::uint64_t dst = 0;
    if (conv_scatter_index(b, t, dst)) out[dst] = src[t];
  }
}

// Grows `v` to at least n elements; synchronizes `s` first so no queued work still uses the old
// allocation when it is freed (growth happens on the first calls only).
template <class T>
void ensure_size(device_vector<T>& v, std::size_t n, const stream& s) {
  if (v.size() >= n) return;
  s.synchronize();
  v = device_vector<T>();
  v = device_vector<T>(n);
}

}  // namespace

// ---- cuFFT plan cache ------------------------------------------------------------------------

struct cufft_plan_cache::impl {
  using key = std::tuple<std::size_t, std::size_t, int>;  // fft frames, batch, cufftType
  struct entry {
    cufftHandle handle;
    std::size_t work_bytes;  // 0: the plan needs no work area
  };
  std::map<key, entry> plans;
  device_vector<std::byte> work;

  ~impl() {
    for (auto& [k, e] : plans) (void)cufftDestroy(e.handle);
  }

  // A batched 1-D real transform of `fft_frames` frames per batch entry, contiguous entries:
  // real side 2B floats apart, complex side B + 1 bins apart. Bound to `s`.
  cufftHandle get(std::size_t fft_frames, std::size_t batch, cufftType type, const stream& s) {
    const key k{fft_frames, batch, static_cast<int>(type)};
    auto it = plans.find(k);
    if (it == plans.end()) {
      LATHE_EXPECTS(fft_frames <= static_cast<std::size_t>(INT_MAX) / std::max<std::size_t>(batch, 1),
                    "cuFFT batch too large for a 32-bit plan");
      int n[1] = {static_cast<int>(fft_frames)};
      int real_embed[1] = {static_cast<int>(fft_frames)};
      int complex_embed[1] = {static_cast<int>(fft_frames / 2 + 1)};
      const bool forward = type == CUFFT_R2C;
      cufftHandle h = 0;
      LATHE_CUFFT_TRY(cufftCreate(&h));
      try {
        // We own the work area (device_vector), so cuFFT allocates nothing behind our back.
        LATHE_CUFFT_TRY(cufftSetAutoAllocation(h, 0));
        std::size_t work_bytes = 0;
        LATHE_CUFFT_TRY(
            cufftMakePlanMany(h, 1, n, forward ? real_embed : complex_embed, 1,
                              forward ? real_embed[0] : complex_embed[0], forward ? complex_embed : real_embed, 1,
                              forward ? complex_embed[0] : real_embed[0], type, static_cast<int>(batch), &work_bytes));
        if (work_bytes > work.size()) {
          ensure_size(work, work_bytes, s);
          for (auto& [kk, other] : plans) {
            if (other.work_bytes > 0) LATHE_CUFFT_TRY(cufftSetWorkArea(other.handle, work.data()));
          }
        }
        if (work_bytes > 0) LATHE_CUFFT_TRY(cufftSetWorkArea(h, work.data()));
        it = plans.emplace(k, entry{h, work_bytes}).first;
      } catch (...) {
        (void)cufftDestroy(h);
        throw;
      }
    }
    LATHE_CUFFT_TRY(cufftSetStream(it->second.handle, raw(s)));
    return it->second.handle;
  }
};

cufft_plan_cache::cufft_plan_cache() : impl_(std::make_unique<impl>()) {}
cufft_plan_cache::~cufft_plan_cache() = default;
cufft_plan_cache::cufft_plan_cache(cufft_plan_cache&&) noexcept = default;
cufft_plan_cache& cufft_plan_cache::operator=(cufft_plan_cache&&) noexcept = default;
std::size_t cufft_plan_cache::size() const noexcept {
  return impl_ ? impl_->plans.size() : 0;
}
std::size_t cufft_plan_cache::work_area_bytes() const noexcept {
  return impl_ ? impl_->work.size() : 0;
}
static_assert(std::is_same_v<cufftHandle, int>, "real_plan_handle returns a cufftHandle as int");
int cufft_plan_cache::real_plan_handle(std::size_t fft_frames, std::size_t batch, real_fft direction, const stream& s) {
  return impl_->get(fft_frames, batch, direction == real_fft::forward_r2c ? CUFFT_R2C : CUFFT_C2R, s);
}

// ---- filter ----------------------------------------------------------------------------------

gpu_fir_filter::gpu_fir_filter(std::span<const float> impulse_response, std::size_t block_frames, const stream& s) {
  LATHE_EXPECTS(!impulse_response.empty(), "the impulse response must not be empty");
  LATHE_EXPECTS(block_frames >= 64 && (block_frames & (block_frames - 1)) == 0,
                "block_frames must be a power of two >= 64");
  const conv_geometry g = make_conv_geometry(impulse_response.size(), block_frames, 0);
  taps_ = impulse_response.size();
  block_frames_ = block_frames;
  partitions_ = g.partitions;

  // Partition p zero-padded to 2B, scaled by 1/(2B) (a power of two, so exact: scaling before
  // or after the transform gives the same floats barring underflow).
  const float scale = 1.0f / static_cast<float>(g.fft_frames());
  std::vector<float> padded(partitions_ * g.fft_frames(), 0.0f);
  for (std::size_t i = 0; i < taps_; ++i) {
    padded[(i / block_frames) * g.fft_frames() + i % block_frames] = impulse_response[i] * scale;
  }
  device_vector<float> time(padded.size());
  time.upload_async(padded, s);
  spectra_ = device_vector<float>(partitions_ * g.bins() * 2);
  cufft_plan_cache plans;  // one-off shape; destroyed after the synchronize below
  const cufftHandle plan = plans.impl_->get(g.fft_frames(), partitions_, CUFFT_R2C, s);
  LATHE_CUFFT_TRY(cufftExecR2C(plan, time.data(), reinterpret_cast<cufftComplex*>(spectra_.data())));
  s.synchronize();  // `padded`, `time` and the plan die here
}

// ---- convolver -------------------------------------------------------------------------------

gpu_convolver::gpu_convolver(std::size_t work_budget_bytes) : budget_bytes_(work_budget_bytes) {}

void gpu_convolver::convolve_async(const gpu_fir_filter& filter, const lane_layout& layout,
                                   const device_vector<float>& in, device_vector<float>& out, std::size_t delay_frames,
                                   cufft_plan_cache& plans, const stream& s) {
  LATHE_EXPECTS(in.size() >= layout.total_frames && out.size() >= layout.total_frames,
                "GPU convolution: input and output must hold layout.total_frames floats");
  LATHE_EXPECTS(layout.total_frames == 0 || in.data() + in.size() <= out.data() || out.data() + out.size() <= in.data(),
                "GPU convolution cannot run in place: later slices re-read input history");
  const conv_geometry g = make_conv_geometry(filter.taps(), filter.block_frames(), delay_frames);
  plan_ = make_conv_plan(layout, g, conv_slice_capacity(g, budget_bytes_));
  if (plan_.slices.empty()) return;

  const std::size_t B = g.block_frames, F = g.fft_frames(), bins = g.bins();
  ensure_size(time_, plan_.time_capacity() * F, s);
  ensure_size(x_spec_, plan_.in_capacity * bins * 2, s);
  ensure_size(y_spec_, plan_.out_capacity * bins * 2, s);
  ensure_size(in_table_, plan_.in_blocks.size(), s);
  ensure_size(out_table_, plan_.out_blocks.size(), s);
  in_table_.upload_async(plan_.in_blocks, s);
  out_table_.upload_async(plan_.out_blocks, s);

  auto* x = reinterpret_cast<cufftComplex*>(x_spec_.data());
  auto* y = reinterpret_cast<cufftComplex*>(y_spec_.data());
  const auto* h = reinterpret_cast<const float2*>(filter.spectra_device());
  const dim3 threads(conv_policy::threads_per_tile);
  for (const conv_slice& sl : plan_.slices) {
    gather_windows<<<dim3(static_cast<unsigned>(sl.in_batch), tiles_for(F)), threads, 0, raw(s)>>>(
        in_table_.data() + sl.in_begin, sl.in_count, in.data(), time_.data(), F);
    LATHE_CUDA_CHECK_LAUNCH();
    LATHE_CUFFT_TRY(cufftExecR2C(plans.impl_->get(F, sl.in_batch, CUFFT_R2C, s), time_.data(), x));
    accumulate_partitions<<<dim3(static_cast<unsigned>(sl.out_batch), tiles_for(bins)), threads, 0, raw(s)>>>(
        out_table_.data() + sl.out_begin, sl.out_count, x, h, y, bins);
    LATHE_CUDA_CHECK_LAUNCH();
    // C2R overwrites its input (Y), which is not needed afterwards.
    LATHE_CUFFT_TRY(cufftExecC2R(plans.impl_->get(F, sl.out_batch, CUFFT_C2R, s), y, time_.data()));
    scatter_valid_half<<<dim3(static_cast<unsigned>(sl.out_count), tiles_for(B)), threads, 0, raw(s)>>>(
        out_table_.data() + sl.out_begin, time_.data(), out.data(), B);
    LATHE_CUDA_CHECK_LAUNCH();
  }
}

void gpu_convolver::convolve(const gpu_fir_filter& filter, const lane_layout& layout, const device_vector<float>& in,
                             device_vector<float>& out, std::size_t delay_frames, cufft_plan_cache& plans,
                             const stream& s) {
  convolve_async(filter, layout, in, out, delay_frames, plans, s);
  s.synchronize();
}

}  // namespace lathe::gpu
