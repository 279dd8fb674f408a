#pragma once
// Biquad cascades over every lane of a batch on the GPU, with exact state propagation across
// time chunks. Host-compilable.
//
// Algorithm (per plan run; all lanes and chunks in parallel except the carry):
//   1. every chunk runs the cascade from zero state and records its final state z[c];
//   2. carry, one warp per lane over its chunks in time order: init[c+1] = T init[c] + z[c],
//      where T = M^chunk_frames is the cascade's zero-input state transition over a whole chunk,
//      computed once on the host in float64 (every chunk but a lane's last has chunk_frames);
//   3. every chunk re-runs the cascade from init[c] and writes its output (or its sum of squares).
// The recurrence is the CPU's (transposed direct form II, float64 state, float64 between
// sections: lathe::highpass_stage and the loudness meter's K-weighting); the only difference is
// the float64 rounding of init[c] (and FMA contraction on the device), far below float output.
//
// Determinism: no atomics on values, fixed order everywhere: bitwise identical run to run on one
// GPU. The CPU highpass_stage flushes states below 1e-30 every 4096 frames; the GPU does not
// (a difference below 1e-30 absolute).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/biquad.hpp"
#include "lathe/error.hpp"
#include "lathe/highpass.hpp"
#include "lathe/loudness.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

inline constexpr int max_cascade_sections = 4;  // highpass_stage's order 8; K-weighting uses 2
inline constexpr int max_cascade_states = 2 * max_cascade_sections;

/// Up to max_cascade_sections biquads, flat, so kernels take them by value.
struct cascade_coeffs {
  int sections = 0;
  double b0[max_cascade_sections]{}, b1[max_cascade_sections]{}, b2[max_cascade_sections]{};
  double a1[max_cascade_sections]{}, a2[max_cascade_sections]{};
};

inline cascade_coeffs pack_cascade(std::span<const biquad_coeffs> sections) {
  LATHE_EXPECTS(!sections.empty() && sections.size() <= static_cast<std::size_t>(max_cascade_sections),
                "a GPU biquad cascade takes 1 to 4 sections");
  cascade_coeffs c;
  c.sections = static_cast<int>(sections.size());
  for (std::size_t k = 0; k < sections.size(); ++k) {
    c.b0[k] = sections[k].b0;
    c.b1[k] = sections[k].b1;
    c.b2[k] = sections[k].b2;
    c.a1[k] = sections[k].a1;
    c.a2[k] = sections[k].a2;
  }
  return c;
}

/// One sample through the first `Sections` sections; state = [s1_0, s2_0, s1_1, s2_1, ...].
/// The same expressions as highpass_stage's run_cascade and biquad::tick. constexpr so that
/// device code calls this very function (nvcc --expt-relaxed-constexpr).
template <int Sections>
constexpr double cascade_tick(const cascade_coeffs& c, double* state, double x) noexcept {
  for (int k = 0; k < Sections; ++k) {
    const double y = c.b0[k] * x + state[2 * k];
    state[2 * k] = c.b1[k] * x - c.a1[k] * y + state[2 * k + 1];
    state[2 * k + 1] = c.b2[k] * x - c.a2[k] * y;
    x = y;
  }
  return x;
}

/// Host form with the section count taken from `c`.
inline double cascade_tick(const cascade_coeffs& c, double* state, double x) noexcept {
  switch (c.sections) {
    case 1:
      return cascade_tick<1>(c, state, x);
    case 2:
      return cascade_tick<2>(c, state, x);
    case 3:
      return cascade_tick<3>(c, state, x);
    default:
      return cascade_tick<4>(c, state, x);
  }
}

/// s = T s + z for an N x N row-major T (the carry step; shared by host tests and the device).
template <int N>
constexpr void affine_step(const double* t, double* s, const double* z) noexcept {
  double next[N]{};
  for (int i = 0; i < N; ++i) {
    double acc = 0.0;
    for (int j = 0; j < N; ++j) acc += t[i * N + j] * s[j];
    next[i] = acc + z[i];
  }
  for (int i = 0; i < N; ++i) s[i] = next[i];
}

/// The cascade's zero-input state transition over `frames` samples: row-major (2S) x (2S) T with
/// state_after = T state_before. Column j is `frames` zero-input ticks from unit state j, in
/// float64. Not by repeated squaring: the TDF-II state matrix of a low, steep high-pass is far from
/// normal (states grow ~300x before decaying at 192 kHz), and squaring it loses ~1e-7 relative
/// where stepping keeps ~1e-11. Cost: 2S x frames ticks on the host, once per plan.
inline std::vector<double> cascade_transition(const cascade_coeffs& c, std::uint64_t frames) {
  LATHE_EXPECTS(frames <= (std::uint64_t{1} << 22), "cascade chunk too long for the host-side transition");
  const auto n = static_cast<std::size_t>(2 * c.sections);
  std::vector<double> t(n * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    double s[max_cascade_states]{};
    s[j] = 1.0;
    for (std::uint64_t i = 0; i < frames; ++i) (void)cascade_tick(c, s, 0.0);
    for (std::size_t i = 0; i < n; ++i) t[i * n + j] = s[i];
  }
  return t;
}

/// Index of each chunk's first sample in the batch array (layout.offset[lane] + start).
inline std::vector<std::uint64_t> chunk_batch_starts(const lane_layout& layout, const chunk_table& chunks) {
  std::vector<std::uint64_t> out(chunks.size());
  for (std::size_t c = 0; c < chunks.size(); ++c) out[c] = layout.offset[chunks.lane[c]] + chunks.start[c];
  return out;
}

/// The sections highpass_stage designs for `params` at `sample_rate_hz` (runs its prepare()).
inline std::vector<biquad_coeffs> highpass_sections(const highpass_params& params, double sample_rate_hz) {
  highpass_stage stage(params);
  stage.prepare(stream_spec{sample_rate_hz, 1, 1});
  return stage.sections();
}

/// BS.1770 K-weighting as the CPU meter runs it: shelf, then RLB high-pass.
inline std::vector<biquad_coeffs> k_weighting_sections(double sample_rate_hz) {
  const k_weighting_coeffs k = design_k_weighting(sample_rate_hz);
  return {k.shelf, k.highpass};
}

namespace detail {

enum class cascade_output {
  samples,         ///< write the filtered float samples
  sum_of_squares,  ///< write each chunk's float64 sum of y^2, summed in time order
};

/// The three-pass chunked cascade over one layout (shared by iir_plan and loudness_plan): chunk
/// tables and transition designed at construction and uploaded on `s` (asynchronously; host
/// copies kept alive), float64 state workspace on the device.
class chunked_cascade {
 public:
  chunked_cascade(std::span<const biquad_coeffs> sections, const lane_layout& layout, std::size_t chunk_frames,
                  const stream& s);
  /// Enqueues the three passes on `s`; no synchronization. samples: `out` (may equal `in`);
  /// sum_of_squares: `sums`, one per chunk.
  void run_async(const float* in, float* out, double* sums, cascade_output output, const stream& s);

  const chunk_table& chunks() const noexcept { return chunks_; }
  const cascade_coeffs& coeffs() const noexcept { return coeffs_; }

 private:
  cascade_coeffs coeffs_;
  chunk_table chunks_;
  std::size_t lanes_ = 0;
  std::vector<double> transition_;
  std::vector<std::uint64_t> start_;
  device_vector<std::uint64_t> d_start_;
  device_vector<std::uint32_t> d_length_, d_first_;
  device_vector<double> d_zero_state_, d_init_state_;
};

}  // namespace detail

/// Runs one biquad cascade over every lane of batches with one fixed layout. Construction
/// designs the chunk transition and uploads the chunk tables on `s` (asynchronously; the plan
/// keeps its host copies alive). Not thread-safe; one plan per stream at a time.
class iir_plan {
 public:
  static constexpr std::size_t default_chunk_frames = 4096;

  iir_plan(std::span<const biquad_coeffs> sections, const lane_layout& layout, const stream& s,
           std::size_t chunk_frames = default_chunk_frames)
      : cascade_(sections, layout, chunk_frames, s) {}

  /// out[lane] = cascade(in[lane]) from zero state, for every lane, as float. `d_in` and `d_out`
  /// are device arrays of layout.total_frames; they may be the same array (in place). Enqueues
  /// the work on `s` and returns without synchronizing.
  void process_async(const float* d_in, float* d_out, const stream& s) {
    cascade_.run_async(d_in, d_out, nullptr, detail::cascade_output::samples, s);
  }

  const chunk_table& chunks() const noexcept { return cascade_.chunks(); }
  const cascade_coeffs& coeffs() const noexcept { return cascade_.coeffs(); }

 private:
  detail::chunked_cascade cascade_;
};

}  // namespace lathe::gpu
