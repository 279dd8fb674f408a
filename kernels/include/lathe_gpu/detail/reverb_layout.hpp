#pragma once
// Index math of the batched GPU reverb (kernels/dsp/reverb.cu), on the host: which frames the CPU
// chain's run_aligned(reverb_stage) processes (the stats count them), the padded wet lanes the
// convolutions run on, the routing of IR channels to lanes, and the per-element pad, combine
// and mix expressions (LATHE_GPU_HD: the kernels call these very functions, and
// tests/dsp/gpu_reverb_layout_test.cpp runs them on the CPU against reverb_stage).
//
// Scheme, per track of N frames (lanes 2t, 2t+1), CPU latency L, pre-delay d:
//   F = frames run_aligned pushes through the stage (N input + the zero flush), E = F - L:
//   the aligned wet frames the CPU's statistics include (the output keeps only N of them).
//   padded[j] = in[j - d] for d <= j < d + N, else 0, j in [0, E): the input shifted by the
//   pre-delay, so convolving it with the IR (no delay) gives the CPU's aligned wet path.
//   w0 / w1 = the convolutions routed by reverb_conv_passes; true stereo adds w1 of the
//   partner lane (out_L = in_L*h_LL + in_R*h_RL, out_R = in_L*h_LR + in_R*h_RR).
//   wet filters in place on w0; out[j] = in[j] * dry_gain + w0[j] * wet_gain for j < N.
// Host-compilable, no CUDA headers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/reverb.hpp"
// Relative includes, so the CPU layout test builds where the CUDA engine (and its include path) is off.
#include "../lanes.hpp"
#include "host_device.hpp"

namespace lathe::gpu::detail {

/// Float products and sums never contracted into an FMA (the CPU build has none).
LATHE_GPU_HD inline float mul_rn_f(float x, float y) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(x, y);
#else
  return x * y;
#endif
}
LATHE_GPU_HD inline float add_rn_f(float x, float y) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(x, y);
#else
  return x + y;
#endif
}

/// Frames lathe::run_aligned(stage, buffer of `frames`, `max_block_frames`) passes through a
/// stage of `latency_frames`: the input, then zero blocks of min(max_block, frames - written +
/// latency) until `frames` aligned output frames are written (audio_buffer.hpp). The same
/// bookkeeping as its loop, per block rather than per frame.
inline std::uint64_t run_aligned_processed_frames(std::uint64_t frames, std::uint64_t latency_frames,
                                                  std::uint64_t max_block_frames) {
  LATHE_EXPECTS(max_block_frames > 0, "max_block_frames must be positive");
  std::uint64_t produced = 0, written = 0;
  auto push = [&](std::uint64_t len) {
    // Frames of this push at or after the latency are kept, until `frames` are written.
    const std::uint64_t past_latency =
        produced + len > latency_frames ? produced + len - std::max(produced, latency_frames) : 0;
    written += std::min(frames - written, past_latency);
    produced += len;
  };
  if (frames > 0) push(frames);  // the input blocks together: the count only depends on their sum
  while (written < frames) push(std::min(max_block_frames, frames - written + latency_frames));
  return produced;
}

/// One lane's geometry, uploaded for the kernels.
struct reverb_lane {
  std::uint64_t in_offset = 0;           ///< lane start in d_in / d_out
  std::uint64_t frames = 0;              ///< N
  std::uint64_t wet_offset = 0;          ///< lane start in the padded input and wet arrays
  std::uint64_t wet_frames = 0;          ///< E
  std::uint64_t partner_wet_offset = 0;  ///< wet_offset of the track's other lane
};

/// One chunk of a wet lane: frames [start, start + length) of lane `lane`.
struct reverb_chunk {
  std::uint64_t start = 0;
  std::uint32_t lane = 0;
  std::uint32_t length = 0;
};

struct reverb_geometry {
  std::vector<reverb_lane> lanes;
  std::vector<std::uint64_t> processed_frames;  ///< F per track
  lane_layout wet;                              ///< lanes of E frames, compact
  lane_layout wet_left, wet_right;              ///< even / odd lanes of `wet` (same array)
  std::vector<reverb_chunk> chunks;             ///< of `wet`, in lane and time order
};

/// Geometry of a batch of stereo tracks (lanes 2t, 2t+1 of equal length) for a stage of
/// `latency_frames` run by run_aligned in blocks of `max_block_frames`; chunks of `chunk_frames`.
inline reverb_geometry make_reverb_geometry(const lane_layout& layout, std::size_t latency_frames,
                                            std::size_t max_block_frames, std::size_t chunk_frames) {
  LATHE_EXPECTS(layout.lanes() % 2 == 0, "GPU reverb: lanes must come in pairs (track t = lanes 2t, 2t+1)");
  LATHE_EXPECTS(layout.offset.size() == layout.frames.size(), "lane_layout offset/frames size mismatch");
  LATHE_EXPECTS(chunk_frames > 0 && chunk_frames <= (std::size_t{1} << 31), "bad reverb chunk size");
  reverb_geometry g;
  for (std::size_t t = 0; t < layout.lanes() / 2; ++t) {
    const std::size_t n = layout.frames[2 * t];
    LATHE_EXPECTS(layout.frames[2 * t + 1] == n,
                  "GPU reverb: both lanes of track " + std::to_string(t) + " must have the same length");
    const std::uint64_t f = run_aligned_processed_frames(n, latency_frames, max_block_frames);
    g.processed_frames.push_back(f);
    // F >= N + L whenever N > 0 (N frames are written only once N + L are produced); F = 0 for N = 0.
    const std::uint64_t e = f > latency_frames ? f - latency_frames : 0;
    for (std::size_t c = 0; c < 2; ++c) {
      const std::size_t l = 2 * t + c;
      LATHE_EXPECTS(layout.offset[l] + layout.frames[l] <= layout.total_frames,
                    "lane " + std::to_string(l) + " ends past the batch");
      reverb_lane rl;
      rl.in_offset = layout.offset[l];
      rl.frames = n;
      rl.wet_frames = e;
      rl.wet_offset = g.wet.offset[g.wet.add(static_cast<std::size_t>(e))];
      g.lanes.push_back(rl);
    }
    g.lanes[2 * t].partner_wet_offset = g.lanes[2 * t + 1].wet_offset;
    g.lanes[2 * t + 1].partner_wet_offset = g.lanes[2 * t].wet_offset;
  }
  for (lane_layout* side : {&g.wet_left, &g.wet_right}) side->total_frames = g.wet.total_frames;
  for (std::size_t l = 0; l < g.wet.lanes(); ++l) {
    lane_layout& side = l % 2 == 0 ? g.wet_left : g.wet_right;
    side.offset.push_back(g.wet.offset[l]);
    side.frames.push_back(g.wet.frames[l]);
  }
  const chunk_table ct = make_chunks(g.wet, chunk_frames);
  g.chunks.resize(ct.size());
  for (std::size_t c = 0; c < ct.size(); ++c) g.chunks[c] = {ct.start[c], ct.lane[c], ct.length[c]};
  return g;
}

enum class reverb_lanes { all, left, right };
enum class reverb_target { w0, w1 };

/// One batched convolution: IR channel `ir_channel` over the lanes `lanes` of the padded input,
/// into `target` at the same lanes.
struct reverb_conv_pass {
  int ir_channel = 0;
  reverb_lanes lanes = reverb_lanes::all;
  reverb_target target = reverb_target::w0;
};

/// The convolutions of a routing. True stereo (IR channels LL, LR, RL, RR): w0 holds each
/// lane's own path (LL at left lanes, RR at right lanes), w1 the cross paths at their input's
/// lane (LR at left lanes, RL at right lanes), added to the partner lane by reverb_combined.
inline std::vector<reverb_conv_pass> reverb_conv_passes(reverb_routing routing) {
  switch (routing) {
    case reverb_routing::mono:
      return {{0, reverb_lanes::all, reverb_target::w0}};
    case reverb_routing::stereo:
      return {{0, reverb_lanes::left, reverb_target::w0}, {1, reverb_lanes::right, reverb_target::w0}};
    case reverb_routing::true_stereo:
      return {{0, reverb_lanes::left, reverb_target::w0},
              {3, reverb_lanes::right, reverb_target::w0},
              {1, reverb_lanes::left, reverb_target::w1},
              {2, reverb_lanes::right, reverb_target::w1}};
  }
  return {};
}

/// Padded input frame j (0 <= j < wet_frames) of a lane: the input delayed by the pre-delay.
LATHE_GPU_HD inline float reverb_padded_input(const reverb_lane& l, const float* in, std::uint64_t j,
                                              std::uint64_t pre_delay_frames) {
  return (j >= pre_delay_frames && j - pre_delay_frames < l.frames) ? in[l.in_offset + (j - pre_delay_frames)] : 0.0f;
}

/// True stereo's wet frame j of a lane: its own path (w0) plus the partner lane's cross path
/// (w1): the CPU's two terms (out_L = LL + RL, out_R = LR + RR; one rounded float addition,
/// which is commutative, so the order of the terms does not change the bits).
LATHE_GPU_HD inline float reverb_combined(const reverb_lane& l, const float* w0, const float* w1, std::uint64_t j) {
  return add_rn_f(w0[l.wet_offset + j], w1[l.partner_wet_offset + j]);
}

/// The gained wet sample (what the CPU's wet energy sums) and the output sample.
LATHE_GPU_HD inline float reverb_wet_scaled(float wet, float wet_gain) {
  return mul_rn_f(wet, wet_gain);
}
LATHE_GPU_HD inline float reverb_mix(float dry, float dry_gain, float wet_scaled) {
  return add_rn_f(mul_rn_f(dry, dry_gain), wet_scaled);
}

}  // namespace lathe::gpu::detail
