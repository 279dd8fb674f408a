#pragma once
// Stage 1 of the chain: DC removal and a subsonic Butterworth high-pass.
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"

namespace lathe {

struct highpass_params {
  double cutoff_hz = 20.0;  ///< subsonic corner; 0 turns the high-pass off (DC is still removed)
  int order = 4;            ///< Butterworth order, 1..8
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

 private:
  highpass_params params_;
  double fs_hz_ = 0.0;
  std::vector<biquad_coeffs> sections_;
  std::vector<std::vector<biquad>> state_;  // [channel][section]
};

}  // namespace lathe
