#pragma once
// Index math of the GPU Welch power spectrum (kernels/qc/tonal.cu), compiled both for the device and
// for the host so the CPU test tests/qc/gpu_tonal_layout_test.cpp runs the very bodies the kernels
// run. Host-compilable.
//
// Decomposition: every analysis frame of every track of a batch is listed once, track-major and
// in time order (welch_frame). The list is cut into slices of at most `slice_capacity` frames
// (the work budget: each frame is two real transforms, mid and side, and their spectra); a slice
// is one gather launch, one batched cuFFT R2C of 2 x slice_capacity entries (entry 2i + p is
// slice-local frame i, part p: 0 mid, 1 side) and one accumulate launch. The frames of one track
// inside one slice form a segment; the accumulate launch gives each (segment, part, bin) one
// thread that adds |X_k|^2 of the segment's frames, in frame order, onto the track's float64 sum.
// Slices run in stream order, so every bin's sum is the CPU's: 0 + frame 0 + frame 1 + ..., in
// that order, whatever the slicing.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../lanes.hpp"
#include "host_device.hpp"
#include "lathe/error.hpp"

namespace lathe::gpu::detail {

/// Welch frames of a track of `samples` frames for an FFT of n: frames start at 0, hop, 2 hop,
/// ... (hop = n / 2) until one reaches the end; only the last may be partial (zero padded). One
/// frame for 1..n samples, none for 0. (src/qc/tonal.cpp measure_welch_power.)
LATHE_GPU_HD inline std::uint64_t welch_frame_count(std::uint64_t samples, std::uint64_t n) {
  const std::uint64_t hop = n / 2;
  if (samples == 0) return 0;
  return samples <= n ? 1 : 1 + (samples - n + hop - 1) / hop;
}
/// First sample of frame f within its track.
LATHE_GPU_HD inline std::uint64_t welch_frame_start(std::uint64_t f, std::uint64_t n) {
  return f * (n / 2);
}
/// Samples of frame f read from the track (1..n); the rest of the frame is zeros.
LATHE_GPU_HD inline std::uint32_t welch_frame_valid(std::uint64_t samples, std::uint64_t f, std::uint64_t n) {
  const std::uint64_t left = samples - welch_frame_start(f, n);
  return static_cast<std::uint32_t>(left < n ? left : n);
}

/// One analysis frame of one track.
struct welch_frame {
  std::uint64_t left = 0;   ///< batch index of the frame's first left-channel sample
  std::uint64_t right = 0;  ///< batch index of the frame's first right-channel sample
  std::uint32_t valid = 0;  ///< samples read, 1..n
  std::uint32_t track = 0;
};

/// The frames of one track inside one slice: slice-local frames [first, first + count).
struct welch_segment {
  std::uint32_t track = 0;
  std::uint32_t first = 0;
  std::uint32_t count = 0;
};

/// Frames [frame_begin, frame_end) of the batch list; segments [segment_begin, segment_end).
struct welch_slice {
  std::size_t frame_begin = 0, frame_end = 0;
  std::size_t segment_begin = 0, segment_end = 0;
};

struct welch_plan {
  std::size_t fft_size = 0, bins = 0, tracks = 0;
  std::vector<welch_frame> frames;          ///< every frame of the batch, track-major, time order
  std::vector<std::uint64_t> track_frames;  ///< frames per track
  std::vector<welch_segment> segments;      ///< slice by slice
  std::vector<welch_slice> slices;
  /// Frames per batched transform (every slice's cuFFT batch is 2 x this; the last slice is padded
  /// with zero entries): a power of two, so a render's batches need few distinct cuFFT plans.
  std::size_t slice_capacity = 0;
};

/// Device bytes one slice frame needs: two real frames of n floats and two spectra of n/2 + 1
/// complex floats.
inline constexpr std::size_t welch_frame_work_bytes(std::size_t n) {
  return 2 * (n + 2 * (n / 2 + 1)) * sizeof(float);
}

/// Plans the batch: lanes 2t, 2t + 1 are track t's left and right (equal lengths).
/// `work_budget_bytes` bounds the slice buffers (at least one frame per slice).
inline welch_plan make_welch_plan(const lane_layout& layout, std::size_t n, std::size_t work_budget_bytes) {
  LATHE_EXPECTS(n >= 2 && std::has_single_bit(n), "the Welch FFT size must be a power of two >= 2");
  LATHE_EXPECTS(layout.lanes() % 2 == 0, "a Welch batch holds stereo tracks: an even number of lanes");
  LATHE_EXPECTS(layout.offset.size() == layout.lanes(), "lane_layout: offset and frames differ in size");
  welch_plan p;
  p.fft_size = n;
  p.bins = n / 2 + 1;
  p.tracks = layout.lanes() / 2;
  for (std::size_t t = 0; t < p.tracks; ++t) {
    const std::size_t samples = layout.frames[2 * t];
    LATHE_EXPECTS(layout.frames[2 * t + 1] == samples, "a track's two lanes must have the same length");
    LATHE_EXPECTS(layout.offset[2 * t] + samples <= layout.total_frames &&
                      layout.offset[2 * t + 1] + samples <= layout.total_frames,
                  "lane_layout: a lane ends past total_frames");
    const std::uint64_t count = welch_frame_count(samples, n);
    p.track_frames.push_back(count);
    for (std::uint64_t f = 0; f < count; ++f) {
      const std::uint64_t start = welch_frame_start(f, n);
      p.frames.push_back(welch_frame{layout.offset[2 * t] + start, layout.offset[2 * t + 1] + start,
                                     welch_frame_valid(samples, f, n), static_cast<std::uint32_t>(t)});
    }
  }
  const std::size_t total = p.frames.size();
  const std::size_t budget_frames = std::max<std::size_t>(1, work_budget_bytes / welch_frame_work_bytes(n));
  // The largest power of two within the budget, and no larger than the batch needs.
  p.slice_capacity = std::min(std::bit_floor(budget_frames), std::bit_ceil(std::max<std::size_t>(total, 1)));
  for (std::size_t begin = 0; begin < total; begin += p.slice_capacity) {
    welch_slice sl;
    sl.frame_begin = begin;
    sl.frame_end = std::min(total, begin + p.slice_capacity);
    sl.segment_begin = p.segments.size();
    for (std::size_t i = sl.frame_begin; i < sl.frame_end; ++i) {
      const std::uint32_t local = static_cast<std::uint32_t>(i - begin);
      if (i == sl.frame_begin || p.frames[i].track != p.frames[i - 1].track)
        p.segments.push_back(welch_segment{p.frames[i].track, local, 0});
      ++p.segments.back().count;
    }
    sl.segment_end = p.segments.size();
    p.slices.push_back(sl);
  }
  return p;
}

/// Periodic Hann window of n points in float64, as the CPU computes it (host only: the device
/// reads this table, so both sides window with the same bits).
inline std::vector<double> welch_window(std::size_t n) {
  std::vector<double> w(n);
  for (std::size_t j = 0; j < n; ++j)
    w[j] = 0.5 - 0.5 * std::cos(2.0 * M_PI * static_cast<double>(j) / static_cast<double>(n));
  return w;
}

/// Sample j (0..n-1) of a frame's windowed mid and side, rounded once to float: the CPU's
/// float(0.5 (a + b) w_j), float(0.5 (a - b) w_j) with a, b the float samples taken exactly
/// into float64; zeros past the frame's valid samples.
LATHE_GPU_HD inline void welch_mid_side(const float* in, const welch_frame& fr, const double* window, std::uint32_t j,
                                        float& mid, float& side) {
  if (j >= fr.valid) {
    mid = 0.0f;
    side = 0.0f;
    return;
  }
  const double a = in[fr.left + j], b = in[fr.right + j];
  mid = static_cast<float>(mul_rn(mul_rn(0.5, add_rn(a, b)), window[j]));
  side = static_cast<float>(mul_rn(mul_rn(0.5, sub_rn(a, b)), window[j]));
}

/// Adds |X_k|^2 of a segment's frames, in frame order, onto `sum` (a track's float64 sum for
/// bin k of part p). `spectra`: the slice's transforms as interleaved (re, im) floats, entry
/// 2i + p of slice-local frame i, `bins` complex values per entry. |X|^2 of float parts is exact
/// in float64 before the one rounding of its sum, as on the CPU.
LATHE_GPU_HD inline double welch_accumulate(double sum, const float* spectra, std::size_t bins, welch_segment seg,
                                            std::uint32_t part, std::size_t k) {
  for (std::uint32_t i = 0; i < seg.count; ++i) {
    const float* x = spectra + ((std::size_t{seg.first + i} * 2 + part) * bins + k) * 2;
    const double re = x[0], im = x[1];
    sum = add_rn(sum, add_rn(mul_rn(re, re), mul_rn(im, im)));
  }
  return sum;
}

}  // namespace lathe::gpu::detail
