#pragma once
// Stage 1 of the chain: DC removal and a subsonic Butterworth high-pass.
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"

namespace lathe {

struct highpass_params {
  double cutoff_hz = 20.0;    ///< subsonic corner; 0 turns the high-pass off (DC is still removed)
  int order = 4;              ///< Butterworth order, 1..8
  double dc_cutoff_hz = 2.0;  ///< first-order DC blocker used when the high-pass is off
};

/// Minimum-phase IIR; latency 0. Coefficients designed in float64 at prepare() for the actual
/// rate; state in float64.
class highpass_stage {
 public:
  explicit highpass_stage(highpass_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return 0; }
  /// Designed magnitude response at f_hz (linear), for tests and the report.
  double magnitude(double f_hz) const;
  /// The designed cascade (after prepare()), in processing order; the GPU path runs these.
  const std::vector<biquad_coeffs>& sections() const noexcept { return sections_; }

 private:
  // Transposed direct form II memory of one section, float64.
  struct section_state {
    double s1 = 0.0, s2 = 0.0;
  };
  static constexpr std::size_t max_sections = 4;  // order 8 = 4 biquads; order 7 = 3 + 1 first-order
  // Denormal flushing happens at fixed stream positions (multiples of this), not at block ends,
  // so the output does not depend on how the stream was cut into blocks.
  static constexpr std::size_t flush_interval_frames = 4096;

  highpass_params params_;
  double fs_hz_ = 0.0;
  std::vector<biquad_coeffs> sections_;
  std::vector<section_state> state_;  // [channel * sections_.size() + section]
  std::size_t frames_to_flush_ = flush_interval_frames;
};

}  // namespace lathe
