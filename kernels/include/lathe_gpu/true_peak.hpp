#pragma once
// Per-frame oversampled peaks of every lane of a batch on the GPU, for the two detectors the CPU
// uses: lathe::true_peak_interpolator (8x/4x Kaiser sinc) and the limiter's libebur128-style
// detail::meter_peak_interpolator (49-tap Hann sinc). Coefficients are taken from the CPU
// classes. Host-compilable.
//
// Semantics (both detectors): output frame i of a lane is max over phases p of
// |sum_k c[p][k] x[i - delay + k]| (k ascending, float products and sums, no FMA), with x = 0
// before frame 0 (a reset() detector) and after the lane's last frame (the flushed tail the
// offline limiter appends). For true_peak_interpolator phase 0 is the delayed sample itself,
// |x[i - latency]|, exactly as its process() reads it. Output lanes have frames + extra_tail.
// The device does the CPU's float operations in the CPU's order, so outputs are expected to be
// bitwise equal to the CPU's (the tests require relative error <= 1e-5).
//
// Determinism: no reductions but max (exact in any order): bitwise identical run to run.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

inline constexpr std::size_t max_peak_taps = 64;
inline constexpr std::size_t max_peak_phases = 8;
inline constexpr std::size_t max_peak_coeffs = 320;  // 8 phases x 33 taps (true_peak_interpolator below 88.2 kHz)

/// A polyphase peak detector as data.
struct peak_filter {
  int factor = 1;                  ///< phases
  std::size_t taps = 1;            ///< per phase
  std::size_t delay_frames = 0;    ///< tap k of output i reads input frame i - delay_frames + k
  std::size_t latency_frames = 0;  ///< output i covers [i - latency, i - latency + 1)
  bool phase0_is_sample = false;   ///< phase 0 = |x[i - latency]| (true_peak_interpolator)
  std::vector<float> coeffs;       ///< [phase][tap]
};

/// The detector of lathe::true_peak_interpolator at `sample_rate_hz` (runs its prepare()).
inline peak_filter true_peak_filter(double sample_rate_hz) {
  true_peak_interpolator tp;
  tp.prepare(sample_rate_hz);
  peak_filter f;
  f.factor = tp.factor();
  f.taps = tp.phase_length();
  f.delay_frames = tp.phase_length() - 1;  // its history: the newest input is the last tap
  f.latency_frames = tp.latency_frames();
  f.phase0_is_sample = true;
  f.coeffs = tp.coefficients();
  return f;
}

/// The limiter's meter-compatible detector at `sample_rate_hz`, aligned for `latency_frames`
/// (the limiter passes true_peak_interpolator's latency). Runs its prepare().
inline peak_filter meter_peak_filter(double sample_rate_hz, std::size_t latency_frames) {
  lathe::detail::meter_peak_interpolator m;
  m.prepare(sample_rate_hz, latency_frames);
  peak_filter f;
  f.factor = m.factor();
  f.taps = m.taps_per_phase();
  f.delay_frames = m.history_frames();
  f.latency_frames = latency_frames;
  f.phase0_is_sample = false;
  f.coeffs = m.coefficients();
  return f;
}

/// Host reference of one output frame with the device's index math and arithmetic order (the
/// CPU-side layout test checks it against the CPU classes).
inline float frame_peak_reference(const peak_filter& f, const float* lane, std::size_t frames, std::size_t i) {
  const auto x = [&](std::size_t k) -> float {
    const auto at =
        static_cast<std::int64_t>(i) - static_cast<std::int64_t>(f.delay_frames) + static_cast<std::int64_t>(k);
    return at >= 0 && at < static_cast<std::int64_t>(frames) ? lane[at] : 0.0f;
  };
  float peak = 0.0f;
  int first_phase = 0;
  if (f.phase0_is_sample) {
    const float v = x(f.delay_frames - f.latency_frames);
    peak = v < 0.0f ? -v : v;
    first_phase = 1;
  }
  for (int p = first_phase; p < f.factor; ++p) {
    float acc = 0.0f;
    for (std::size_t k = 0; k < f.taps; ++k) acc += f.coeffs[static_cast<std::size_t>(p) * f.taps + k] * x(k);
    const float a = acc < 0.0f ? -acc : acc;
    peak = peak < a ? a : peak;  // std::max's choice on NaN
  }
  return peak;
}

/// Output layout: lane l has in.frames[l] + extra_tail_frames, concatenated in lane order.
inline lane_layout peak_output_layout(const lane_layout& in, std::size_t extra_tail_frames) {
  lane_layout out;
  for (std::size_t f : in.frames) out.add(f + extra_tail_frames);
  return out;
}

/// Tiles of output frames: tile j is output frames [frame[j], frame[j] + length[j]) of lane
/// lane[j], written at out_index[j] in the output array; the lane's input starts at
/// in_offset[j] in the input array and has in_frames[j] frames.
struct peak_tiles {
  std::vector<std::uint32_t> lane;
  std::vector<std::uint64_t> in_offset, in_frames, frame, out_index;
  std::vector<std::uint32_t> length;
  std::size_t size() const noexcept { return lane.size(); }
};

inline peak_tiles make_peak_tiles(const lane_layout& in, std::size_t extra_tail_frames, std::size_t tile_frames) {
  const lane_layout out = peak_output_layout(in, extra_tail_frames);
  const chunk_table ct = make_chunks(out, tile_frames);
  peak_tiles t;
  for (std::size_t j = 0; j < ct.size(); ++j) {
    const std::uint32_t l = ct.lane[j];
    t.lane.push_back(l);
    t.in_offset.push_back(in.offset[l]);
    t.in_frames.push_back(in.frames[l]);
    t.frame.push_back(ct.start[j]);
    t.out_index.push_back(out.offset[l] + ct.start[j]);
    t.length.push_back(ct.length[j]);
  }
  return t;
}

/// Per-frame peaks of every lane of batches with one fixed layout. Construction uploads the
/// filter and tile tables on `s` (asynchronously; the plan keeps its host copies alive). Not
/// thread-safe; one plan per stream at a time.
class peak_plan {
 public:
  static constexpr std::size_t tile_frames = 1024;  // outputs per thread block

  peak_plan(const peak_filter& filter, const lane_layout& in, std::size_t extra_tail_frames, const stream& s);

  const lane_layout& output_layout() const noexcept { return out_layout_; }

  /// Writes output_layout().total_frames peaks to `d_peaks` (device) and each tile's maximum to
  /// the plan's workspace. Enqueues on `s`; does not synchronize.
  void run_async(const float* d_in, float* d_peaks, const stream& s);
  /// The maximum peak of every lane (0 for an empty lane) from the last run_async() on `s`:
  /// downloads the per-tile maxima and synchronizes `s`.
  std::vector<float> lane_max(const stream& s);

 private:
  peak_filter filter_;
  lane_layout out_layout_;
  peak_tiles tiles_;
  std::size_t lanes_ = 0;
  device_vector<std::uint64_t> d_in_offset_, d_in_frames_, d_frame_, d_out_index_;
  device_vector<std::uint32_t> d_length_;
  device_vector<float> d_tile_max_;
  std::vector<float> h_tile_max_;  // pageable: one float per tile (cudaFreeHost would synchronize the device)
};

}  // namespace lathe::gpu
