#pragma once
// Index math and per-sample bodies of the GPU tone stages (kernels/dsp/stereo.cu,
// kernels/dsp/saturation.cu), written once for the device (nvcc) and the host (g++), so the CPU test
// tests/qc/gpu_tone_layout_test.cpp runs exactly this code over the kernels' chunk decomposition
// and compares it with saturation_stage / stereo_stage through run_aligned. Host-compilable: no
// CUDA headers; LATHE_GPU_HD expands to nothing outside nvcc.
//
// Saturation (lathe/saturation.hpp, design_saturation): the causal cascade
//   x_{s+1}[2j + r] = sum_t up[s][r].coeff[t] * x_s[j + up[s][r].pos[t]]     (x_0 = the lane, 0 outside)
//   u_S = saturation_shape(x_S);   u_s[i] = sum_t down[s].coeff[t] * u_{s+1}[2i + down[s].pos[t]]
//   y[i] = wet * u_0[i + D] + dry * x_0[i]                                     (D = latency_frames)
// is offline and position-independent, so any output chunk [a, b) can be computed on its own
// from x_0 by computing each level over the range that chunk's outputs reach (sat_chunk_ranges):
// every level of the CPU stage at a negative index is 0 (it starts at rest), and so is the same
// sum over zeros here; past the lane's end x_0 is 0, as the zeros run_aligned pushes. Every
// sample is the same float sum in the same order as the CPU's (saturation_detail::mul/add: no
// contraction), so chunked results equal the CPU stage bit for bit.
//
// Stereo (lathe/stereo.hpp): see stereo_meter_frames for which frames the meters see.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "host_device.hpp"  // relative: CPU tests include this header by path
#include "lathe/error.hpp"
#include "lathe/saturation.hpp"

namespace lathe::gpu::detail {

/// Most stages the kernels handle (oversampling 16).
inline constexpr int sat_max_stages = 4;

/// floor(v / 2) for any sign.
LATHE_GPU_HD inline std::int64_t floor_half(std::int64_t v) {
  return v >= 0 ? v / 2 : -((1 - v) / 2);
}

/// The reach of each stage's taps (from saturation_design; see sat_geometry_of in the .cu).
struct sat_geometry {
  int stages = 0;
  std::int64_t latency = 0;
  std::int32_t up_min[sat_max_stages] = {}, up_max[sat_max_stages] = {};      // over both phases
  std::int32_t down_min[sat_max_stages] = {}, down_max[sat_max_stages] = {};  // down pos range
};

/// Index ranges [lo, hi) each level needs for output chunk [a, b) of a lane: u[s] for levels
/// 1..S-1 (decimation outputs), x[s] for levels 1..S (x[S] holds the shaped top level u_S),
/// x[0] the lane range read (may extend outside the lane: zeros there). Ranges of x are
/// even-aligned at levels >= 1, because each interpolation thread writes both phases of one j.
struct sat_ranges {
  std::int64_t x_lo[sat_max_stages + 1] = {}, x_hi[sat_max_stages + 1] = {};
  std::int64_t u_lo[sat_max_stages + 1] = {}, u_hi[sat_max_stages + 1] = {};
};

LATHE_GPU_HD inline sat_ranges sat_chunk_ranges(const sat_geometry& g, std::int64_t a, std::int64_t b) {
  sat_ranges r;
  const int S = g.stages;
  // Down chain: u_0 over [a + D, b + D) (causal indices), u_{s+1} from u_s.
  std::int64_t lo = a + g.latency, hi = b + g.latency;
  r.u_lo[0] = lo, r.u_hi[0] = hi;
  for (int s = 0; s < S; ++s) {
    const std::int64_t nlo = 2 * lo + g.down_min[s], nhi = 2 * (hi - 1) + g.down_max[s] + 1;
    lo = nlo, hi = nhi;
    r.u_lo[s + 1] = lo, r.u_hi[s + 1] = hi;
  }
  // Up chain: x_S covers u_S, even-aligned; x_s covers what interpolation s reads for x_{s+1}.
  for (int s = S; s >= 0; --s) {
    if (s >= 1) {
      lo = 2 * floor_half(lo);
      hi = 2 * (floor_half(hi - 1) + 1);
    }
    r.x_lo[s] = lo, r.x_hi[s] = hi;
    if (s == 0) break;
    const std::int64_t jlo = lo / 2, jhi = hi / 2;  // exact: even-aligned
    lo = jlo + g.up_min[s - 1];
    hi = jhi - 1 + g.up_max[s - 1] + 1;
  }
  return r;
}

/// Tap reach of a design (host).
inline sat_geometry sat_geometry_of(const saturation_design& d) {
  LATHE_EXPECTS(d.stages.size() <= static_cast<std::size_t>(sat_max_stages), "saturation: at most 16x oversampling");
  sat_geometry g;
  g.stages = static_cast<int>(d.stages.size());
  g.latency = static_cast<std::int64_t>(d.latency_frames);
  for (int s = 0; s < g.stages; ++s) {
    const saturation_oversampling_stage& st = d.stages[static_cast<std::size_t>(s)];
    g.up_min[s] = st.up[0].min_pos() < st.up[1].min_pos() ? st.up[0].min_pos() : st.up[1].min_pos();
    g.up_max[s] = st.up[0].max_pos() > st.up[1].max_pos() ? st.up[0].max_pos() : st.up[1].max_pos();
    g.down_min[s] = st.down.min_pos();
    g.down_max[s] = st.down.max_pos();
  }
  return g;
}

/// Per-chunk scratch of the saturation kernels: levels x_1..x_S then u_1..u_{S-1}, each with
/// room for the longest range any chunk of chunk_frames outputs needs.
struct sat_plan {
  sat_geometry geometry;
  std::size_t chunk_frames = 0;
  std::size_t x_cap[sat_max_stages + 1] = {}, u_cap[sat_max_stages + 1] = {};
  std::size_t x_off[sat_max_stages + 1] = {}, u_off[sat_max_stages + 1] = {};
  std::size_t floats_per_chunk = 0;
};

inline sat_plan make_sat_plan(const saturation_design& d, std::size_t chunk_frames) {
  LATHE_EXPECTS(chunk_frames > 0, "saturation chunk_frames must be positive");
  sat_plan p;
  p.geometry = sat_geometry_of(d);
  p.chunk_frames = chunk_frames;
  const int S = p.geometry.stages;
  // Range lengths depend on the chunk start only through floor(./2) at each level: every
  // residue mod 2^(S+1) covers them; shorter chunks need nested (smaller) ranges.
  for (std::int64_t a = 0; a < (std::int64_t{2} << S); ++a) {
    const sat_ranges r = sat_chunk_ranges(p.geometry, a, a + static_cast<std::int64_t>(chunk_frames));
    for (int s = 1; s <= S; ++s) {
      p.x_cap[s] = std::max(p.x_cap[s], static_cast<std::size_t>(r.x_hi[s] - r.x_lo[s]));
      if (s < S) p.u_cap[s] = std::max(p.u_cap[s], static_cast<std::size_t>(r.u_hi[s] - r.u_lo[s]));
    }
  }
  for (int s = 1; s <= S; ++s) p.x_off[s] = p.floats_per_chunk, p.floats_per_chunk += p.x_cap[s];
  for (int s = 1; s < S; ++s) p.u_off[s] = p.floats_per_chunk, p.floats_per_chunk += p.u_cap[s];
  return p;
}

/// One polyphase branch on the device: pointers into a packed tap table.
struct sat_taps_view {
  const std::int32_t* pos = nullptr;
  const float* coeff = nullptr;
  std::uint32_t taps = 0;
};

/// sum_t coeff[t] * src[base + pos[t]], from +0 in ascending t, src[k] valid for k in
/// [0, src_len) (levels >= 1 are computed over ranges that cover every read).
LATHE_GPU_HD inline float sat_tap_sum(const sat_taps_view& t, const float* src, std::int64_t base) {
  float acc = 0.0f;
  for (std::uint32_t k = 0; k < t.taps; ++k)
    acc = saturation_detail::add(acc, saturation_detail::mul(t.coeff[k], src[base + t.pos[k]]));
  return acc;
}

/// The same over a lane of n samples that is 0 outside [0, n) (level 0: zero padding at both
/// ends, as the CPU stage's initial state and run_aligned's flush).
LATHE_GPU_HD inline float sat_tap_sum_padded(const sat_taps_view& t, const float* lane, std::int64_t n,
                                             std::int64_t base) {
  float acc = 0.0f;
  for (std::uint32_t k = 0; k < t.taps; ++k) {
    const std::int64_t i = base + t.pos[k];
    const float v = (i >= 0 && i < n) ? lane[i] : 0.0f;
    acc = saturation_detail::add(acc, saturation_detail::mul(t.coeff[k], v));
  }
  return acc;
}

/// The mix of the last decimation's output with the aligned dry input.
LATHE_GPU_HD inline float sat_mix(float wet_u, float dry_x, float wet, float dry) {
  return saturation_detail::add(saturation_detail::mul(wet, wet_u), saturation_detail::mul(dry, dry_x));
}

// ---- stereo ------------------------------------------------------------------------------

/// Mid and side of one frame, as stereo_stage: 0.5f * (l + r), 0.5f * (l - r).
LATHE_GPU_HD inline float stereo_mid(float l, float r) {
  return saturation_detail::mul(0.5f, saturation_detail::add(l, r));
}
LATHE_GPU_HD inline float stereo_side(float l, float r) {
  return saturation_detail::mul(0.5f, saturation_detail::add(l, -r));
}
/// Output left / right from the (delayed) mid and the (filtered) side: gm m + gs s, gm m - gs s.
LATHE_GPU_HD inline float stereo_left(float mid, float side, float gm, float gs) {
  return saturation_detail::add(saturation_detail::mul(gm, mid), saturation_detail::mul(gs, side));
}
LATHE_GPU_HD inline float stereo_right(float mid, float side, float gm, float gs) {
  return saturation_detail::add(saturation_detail::mul(gm, mid), -saturation_detail::mul(gs, side));
}

/// Frames the CPU chain pushes through a stage of latency `lat` for a track of n frames:
/// lathe::run_aligned's loop (the input in blocks of `block`, then zero blocks of
/// min(block, n - written + lat) until n outputs are kept). Its meters see exactly these.
inline std::size_t run_aligned_pushed_frames(std::size_t n, std::size_t lat, std::size_t block) {
  std::size_t produced = n;
  auto written = [&] { return produced > lat ? (produced - lat < n ? produced - lat : n) : std::size_t{0}; };
  while (written() < n) {
    const std::size_t want = n - written() + lat;
    produced += want < block ? want : block;
  }
  return produced;
}

/// The CPU chain's block size (apply_prechain's stream_spec::max_block_frames).
inline constexpr std::size_t chain_block_frames = 8'192;

/// What stereo_stage's meters see for a track of n frames through run_aligned: the "before"
/// meter gets the input plus the zero flush (pushed frames); the "after" meter skips the first
/// `latency` outputs, so it gets aligned output frames [0, pushed - latency): the kept n frames,
/// then the tail the flush produces (with bass mono: the side FIR's ring-out, mid 0).
struct stereo_meter_frames {
  std::size_t before = 0, after = 0;
};

inline stereo_meter_frames stereo_meter_frames_of(std::size_t n, std::size_t latency) {
  const std::size_t pushed = run_aligned_pushed_frames(n, latency, chain_block_frames);
  return {pushed, pushed - latency};
}

/// One correlation-meter window of one track: frames [start, start + length) of its before or
/// after stream (length <= the meter window; the last one may be partial).
struct stereo_window {
  std::uint64_t start = 0;
  std::uint32_t length = 0;
  std::uint32_t track = 0;
  std::uint32_t after = 0;  // 0: before stream, 1: after stream
  std::uint32_t pad = 0;
};

/// Threads of one window reduction and their fixed tree order.
inline constexpr int stereo_reduce_threads = 256;

/// The five float64 sums of one window of frames (l, r): thread k of stereo_reduce_threads sums
/// frames start + k, start + k + 256, ... in order; the partial sums are then combined pairwise
/// (k with k + h for h = 128, 64, ..., 1). `frame(j, l, r)` yields frame j of the stream.
/// A host reference of the kernel's order (the kernel does the same in shared memory).
struct stereo_sums {
  double l = 0, r = 0, ll = 0, rr = 0, lr = 0;
};

LATHE_GPU_HD inline void stereo_sums_add_frame(stereo_sums& s, float lf, float rf) {
  const double l = lf, r = rf;
  s.l = add_rn(s.l, l);
  s.r = add_rn(s.r, r);
  s.ll = add_rn(s.ll, mul_rn(l, l));
  s.rr = add_rn(s.rr, mul_rn(r, r));
  s.lr = add_rn(s.lr, mul_rn(l, r));
}

LATHE_GPU_HD inline void stereo_sums_merge(stereo_sums& a, const stereo_sums& b) {
  a.l = add_rn(a.l, b.l);
  a.r = add_rn(a.r, b.r);
  a.ll = add_rn(a.ll, b.ll);
  a.rr = add_rn(a.rr, b.rr);
  a.lr = add_rn(a.lr, b.lr);
}

/// Host reference of the window reduction kernel's order: thread k sums frames start + k,
/// start + k + T, ... (T = stereo_reduce_threads) in order; then partials k and k + h merge for
/// h = T/2, ..., 1. frame(j, l, r) returns whether frame j contributes (false: a zero frame).
template <class Frame>
stereo_sums stereo_reduce_window(std::uint64_t start, std::uint32_t length, Frame&& frame) {
  stereo_sums part[stereo_reduce_threads];
  for (int k = 0; k < stereo_reduce_threads; ++k) {
    for (std::uint64_t f = static_cast<std::uint64_t>(k); f < length; f += stereo_reduce_threads) {
      float l = 0.0f, r = 0.0f;
      if (frame(start + f, l, r)) stereo_sums_add_frame(part[k], l, r);
    }
  }
  for (int h = stereo_reduce_threads / 2; h >= 1; h /= 2)
    for (int k = 0; k < h; ++k) stereo_sums_merge(part[k], part[k + h]);
  return part[0];
}

/// The window table of a batch of tracks: per track, its before windows then its after
/// windows, each stream cut into windows of `window` frames from frame 0 (the last partial).
inline std::vector<stereo_window> make_stereo_windows(const std::vector<stereo_meter_frames>& tracks,
                                                      std::size_t window) {
  LATHE_EXPECTS(window > 0 && window < (std::size_t{1} << 31), "stereo meter window out of range");
  std::vector<stereo_window> w;
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    for (std::uint32_t after = 0; after < 2; ++after) {
      const std::size_t frames = after ? tracks[t].after : tracks[t].before;
      for (std::size_t start = 0; start < frames; start += window) {
        stereo_window e;
        e.start = start;
        e.length = static_cast<std::uint32_t>(std::min(window, frames - start));
        e.track = static_cast<std::uint32_t>(t);
        e.after = after;
        w.push_back(e);
      }
    }
  }
  return w;
}

}  // namespace lathe::gpu::detail
