#pragma once
// Index math of the batched GPU convolution (kernels/dsp/convolution.cu), on the host: which 2B-frame
// input windows each lane needs, which output blocks they produce, which partitions each output
// block sums, and how the work is cut into slices that fit a memory budget. Host-compilable and
// CUDA-free; the per-element helpers are also compiled into the kernels (LATHE_GPU_HOST_DEVICE),
// so tests/dsp/gpu_conv_layout_test.cpp checks the exact index math the device runs, on the CPU.
//
// Algorithm (uniformly partitioned overlap-save, offline): the IR h of T taps is cut into P
// partitions h_p[j] = h[pB + j] (j < B), each zero-padded to 2B and transformed: H_p. Input
// window k of a lane of N frames is x[(k-1)B, (k+1)B) (zeros outside [0, N)), transformed: X_k.
// The second half of IDFT(sum_p X_{q-p} H_p) is z[qB, qB + B) with z = h * x (full linear
// convolution), because every term's circular wrap lands in the discarded first half. The
// output is y[i] = z[i + D] for i in [0, N), D the delay to remove ((T-1)/2 for a linear-phase
// FIR: the CPU chain's run_aligned(linear_phase_eq_stage) semantics, tail kept, zeros beyond).
//
// Included with a relative path so the CPU test also builds where the CUDA engine is off.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lanes.hpp"

#if defined(__CUDACC__)
#define LATHE_GPU_HOST_DEVICE __host__ __device__
#else
#define LATHE_GPU_HOST_DEVICE
#endif

namespace lathe::gpu {

inline constexpr std::size_t conv_min_auto_block_frames = 1024;
inline constexpr std::size_t conv_max_auto_block_frames = 16384;

/// Default partition size B for an IR of `taps` frames: the smallest power of two >= (taps - 1) / 4,
/// clamped to [1024, 16384]. Four to five partitions keep the per-bin sum short while a 2B FFT
/// stays within cuFFT's fast single-pass sizes; below 1024 the per-block overhead (launches,
/// short FFTs) dominates. A starting rule, not a measured optimum: see the TODO in
/// lathe_gpu/convolution.hpp.
inline std::size_t conv_auto_block_frames(std::size_t taps) {
  const std::size_t quarter = taps > 1 ? (taps - 1 + 3) / 4 : 1;  // ceil((taps - 1) / 4)
  const std::size_t want = std::bit_ceil(quarter);
  return std::clamp(want, conv_min_auto_block_frames, conv_max_auto_block_frames);
}

/// Shape of one convolution: partition size, partition count and the delay removed.
struct conv_geometry {
  std::size_t block_frames = 0;  ///< B, a power of two
  std::size_t partitions = 0;    ///< P = ceil(taps / B)
  std::size_t delay_frames = 0;  ///< D: output frame i is z[i + D]
  std::size_t bins() const noexcept { return block_frames + 1; }
  std::size_t fft_frames() const noexcept { return 2 * block_frames; }
};

inline conv_geometry make_conv_geometry(std::size_t taps, std::size_t block_frames, std::size_t delay_frames) {
  LATHE_EXPECTS(taps > 0, "the impulse response must not be empty");
  LATHE_EXPECTS(block_frames > 0 && std::has_single_bit(block_frames), "block_frames must be a power of two");
  return {block_frames, (taps + block_frames - 1) / block_frames, delay_frames};
}

/// Blocks of one lane of `frames` frames (frames > 0): output blocks q in [first_out, last_out]
/// cover output frames [0, frames); input windows k in [first_in, last_in] are the ones that
/// can be non-zero and that some output block uses (X_k = 0 outside, so it is never formed).
struct conv_lane_blocks {
  std::int64_t first_out = 0, last_out = -1;
  std::int64_t first_in = 0, last_in = -1;
};

inline conv_lane_blocks conv_blocks_of_lane(std::size_t frames, const conv_geometry& g) {
  conv_lane_blocks b;
  if (frames == 0) return b;
  const auto B = static_cast<std::int64_t>(g.block_frames);
  const auto N = static_cast<std::int64_t>(frames);
  const auto D = static_cast<std::int64_t>(g.delay_frames);
  const auto P = static_cast<std::int64_t>(g.partitions);
  // Output frame i needs z[i + D]; z[n] is in output block floor(n / B).
  b.first_out = D / B;
  b.last_out = (N - 1 + D) / B;
  // Window k reads x[(k-1)B, (k+1)B): non-zero only for 0 <= k <= floor((N-1)/B) + 1.
  b.first_in = std::max<std::int64_t>(0, b.first_out - (P - 1));
  b.last_in = std::min<std::int64_t>(b.last_out, (N - 1) / B + 1);
  return b;
}

/// One R2C input: the 2B frames [start_frame, start_frame + 2B) of a lane, zero outside it.
struct conv_in_block {
  std::uint64_t lane_offset = 0;  ///< first sample of the lane in the batch array
  std::uint64_t lane_frames = 0;
  std::int64_t start_frame = 0;  ///< (k - 1) B
  std::uint32_t lane = 0;
  std::uint32_t pad = 0;
};

/// One output block q of a lane: Y = sum_{p = p_begin}^{p_end - 1} X[x_of_q - p] * H[p] (in
/// that order), then element t of the second half of IDFT(Y) is output frame out_start + t.
struct conv_out_block {
  std::uint64_t lane_offset = 0;
  std::uint64_t lane_frames = 0;
  std::int64_t out_start = 0;  ///< q B - D (may be negative: those frames are not written)
  std::uint64_t x_of_q = 0;    ///< slice-local index input window q would have; X_{q-p} is at x_of_q - p
  std::uint32_t p_begin = 0, p_end = 0;
  std::uint32_t lane = 0;
  std::uint32_t pad = 0;
};

/// Input sample t (0 <= t < 2B) of an input window.
LATHE_GPU_HOST_DEVICE inline float conv_gather(const conv_in_block& b, const float* batch, std::size_t t) {
  const std::int64_t f = b.start_frame + static_cast<std::int64_t>(t);
  return (f >= 0 && f < static_cast<std::int64_t>(b.lane_frames)) ? batch[b.lane_offset + static_cast<std::uint64_t>(f)]
                                                                  : 0.0f;
}

/// Where element t (0 <= t < B) of an output block's valid half goes in the batch array;
/// false when it falls outside the lane (before frame 0 or at/after its end).
LATHE_GPU_HOST_DEVICE inline bool conv_scatter_index(const conv_out_block& b, std::size_t t, std::uint64_t& dst) {
  const std::int64_t i = b.out_start + static_cast<std::int64_t>(t);
  if (i < 0 || i >= static_cast<std::int64_t>(b.lane_frames)) return false;
  dst = b.lane_offset + static_cast<std::uint64_t>(i);
  return true;
}

/// A run of consecutive entries of conv_plan::in_blocks and out_blocks processed together:
/// one batched R2C of in_batch windows, one accumulate, one batched C2R of out_batch blocks.
/// The batches are the counts rounded up by conv_batch_bucket (padding windows are zeros), so
/// the cuFFT plan cache sees few shapes.
struct conv_slice {
  std::size_t in_begin = 0, in_count = 0, in_batch = 0;
  std::size_t out_begin = 0, out_count = 0, out_batch = 0;
};

struct conv_plan {
  conv_geometry geometry;
  std::vector<conv_in_block> in_blocks;    ///< all slices, in slice order
  std::vector<conv_out_block> out_blocks;  ///< all slices, in slice order
  std::vector<conv_slice> slices;
  std::size_t in_capacity = 0;   ///< windows the spectrum buffer X holds (max in_batch)
  std::size_t out_capacity = 0;  ///< blocks the spectrum buffer Y holds (max out_batch)
  /// Time-domain buffer (R2C input, then C2R output), in blocks of 2B floats.
  std::size_t time_capacity() const noexcept { return std::max(in_capacity, out_capacity); }
};

/// Device bytes of the work buffers for `in` windows and `out` blocks: spectra X and Y
/// (complex float, B + 1 bins each) and the shared time buffer (2B floats per block).
inline std::size_t conv_work_bytes(const conv_geometry& g, std::size_t in, std::size_t out) {
  return (in + out) * g.bins() * 2 * sizeof(float) + std::max(in, out) * g.fft_frames() * sizeof(float);
}

/// Blocks per slice allowed by a byte budget (same limit for windows and output blocks), also
/// kept below 2^31 / 2B so cuFFT's 32-bit batched plans can describe it.
inline std::size_t conv_slice_capacity(const conv_geometry& g, std::size_t budget_bytes) {
  const std::size_t by_budget = budget_bytes / conv_work_bytes(g, 1, 1);
  const std::size_t by_cufft = static_cast<std::size_t>(INT_MAX) / g.fft_frames();
  return std::min(by_budget, by_cufft);
}

/// cuFFT batch size for `count` transforms: count rounded up to a multiple of bit_floor(count) / 8,
/// never above capacity. So there are at most 8 shapes per octave of counts (the plan cache
/// stays small however batch sizes vary from call to call) and padding wastes < 1/8 of the
/// transforms. 0 for 0.
inline std::size_t conv_batch_bucket(std::size_t count, std::size_t capacity) {
  if (count == 0) return 0;
  const std::size_t step = std::max<std::size_t>(1, std::bit_floor(count) / 8);
  return std::min(capacity, (count + step - 1) / step * step);
}

/// Plans the whole batch: output blocks in lane order, cut greedily into slices of at most
/// `capacity` windows and `capacity` output blocks (capacity from conv_slice_capacity). Each
/// slice carries the windows its output blocks need, including up to P - 1 windows of history
/// at the start of every lane segment, so slices are independent and any lane may span
/// several. Throws lathe::logic_error when one output block does not fit (budget too small).
inline conv_plan make_conv_plan(const lane_layout& layout, const conv_geometry& g, std::size_t capacity) {
  LATHE_EXPECTS(g.partitions > 0 && g.block_frames > 0, "bad convolution geometry");
  LATHE_EXPECTS(capacity >= g.partitions, "the GPU convolution work budget holds " + std::to_string(capacity) +
                                              " blocks but one output block of " + std::to_string(g.block_frames) +
                                              " frames needs " + std::to_string(g.partitions) +
                                              " input windows: raise the budget or use a larger block size");
  LATHE_EXPECTS(layout.offset.size() == layout.frames.size(), "lane_layout offset/frames size mismatch");
  const auto P = static_cast<std::int64_t>(g.partitions);
  const auto B = static_cast<std::int64_t>(g.block_frames);
  const auto D = static_cast<std::int64_t>(g.delay_frames);

  conv_plan plan;
  plan.geometry = g;
  conv_slice cur;
  auto close_slice = [&] {
    if (cur.out_count == 0) return;
    cur.in_batch = conv_batch_bucket(cur.in_count, capacity);
    cur.out_batch = conv_batch_bucket(cur.out_count, capacity);
    plan.in_capacity = std::max(plan.in_capacity, cur.in_batch);
    plan.out_capacity = std::max(plan.out_capacity, cur.out_batch);
    plan.slices.push_back(cur);
    cur = conv_slice{};
    cur.in_begin = plan.in_blocks.size();
    cur.out_begin = plan.out_blocks.size();
  };

  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    const std::size_t n = layout.frames[l];
    if (n == 0) continue;
    LATHE_EXPECTS(layout.offset[l] + n <= layout.total_frames, "lane " + std::to_string(l) + " ends past the batch");
    const conv_lane_blocks lb = conv_blocks_of_lane(n, g);
    std::int64_t q = lb.first_out;
    while (q <= lb.last_out) {
      // A lane segment [qa, qb] in this slice needs windows [max(first_in, qa-P+1), min(last_in, qb)].
      const std::int64_t qa = q;
      const std::int64_t k_first = std::max(lb.first_in, qa - (P - 1));
      std::int64_t qb = qa;
      auto windows_for = [&](std::int64_t last_q) {
        return static_cast<std::size_t>(std::max<std::int64_t>(0, std::min(lb.last_in, last_q) - k_first + 1));
      };
      if (cur.in_count + windows_for(qa) > capacity || cur.out_count + 1 > capacity) close_slice();
      while (qb + 1 <= lb.last_out && cur.in_count + windows_for(qb + 1) <= capacity &&
             cur.out_count + static_cast<std::size_t>(qb + 1 - qa + 1) <= capacity) {
        ++qb;
      }
      const std::int64_t k_last = std::min(lb.last_in, qb);
      const std::size_t x_base = cur.in_count;
      for (std::int64_t k = k_first; k <= k_last; ++k) {
        conv_in_block e;
        e.lane_offset = layout.offset[l];
        e.lane_frames = n;
        e.start_frame = (k - 1) * B;
        e.lane = static_cast<std::uint32_t>(l);
        plan.in_blocks.push_back(e);
      }
      cur.in_count += windows_for(qb);
      for (std::int64_t qq = qa; qq <= qb; ++qq) {
        conv_out_block e;
        e.lane_offset = layout.offset[l];
        e.lane_frames = n;
        e.out_start = qq * B - D;
        e.x_of_q = x_base + static_cast<std::uint64_t>(qq - k_first);
        // Terms X_{qq-p} H_p with window qq-p in [k_first, k_last] and 0 <= p < P.
        e.p_begin = static_cast<std::uint32_t>(std::max<std::int64_t>(0, qq - k_last));
        e.p_end = static_cast<std::uint32_t>(std::min<std::int64_t>(P, qq - k_first + 1));
        e.lane = static_cast<std::uint32_t>(l);
        plan.out_blocks.push_back(e);
      }
      cur.out_count += static_cast<std::size_t>(qb - qa + 1);
      q = qb + 1;
    }
  }
  close_slice();
  return plan;
}

}  // namespace lathe::gpu
