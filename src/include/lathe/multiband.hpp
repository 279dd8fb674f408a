#pragma once
// Multiband dynamics: linear-phase crossover, a compressor / expander per band, band sum, an
// optional parallel (dry/wet) mix with the delayed input, output gain. On the CPU the bands run
// one after another; running them in parallel is the GPU kernel's business.
#include <cstddef>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/crossover.hpp"
#include "lathe/dynamics.hpp"

namespace lathe {

struct multiband_params {
  crossover_params crossover;
  std::vector<compressor_params> bands;  ///< one per band: crossover.crossover_hz.size() + 1
  double dry_wet = 1.0;                  ///< 0: delayed input only; 1: processed bands only
  double output_gain_db = 0.0;
};

/// Latency: the crossover's plus the largest band lookahead (bands with less lookahead are
/// delayed to match, the dry path by the whole latency). Output is bit-identical for any block
/// split.
class multiband_stage {
 public:
  explicit multiband_stage(multiband_params p = {}) : params_(std::move(p)) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;  ///< clears state and stats
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept;
  int band_count() const noexcept { return crossover_.band_count(); }
  dynamics_stats band_stats(int band) const noexcept;

 private:
  multiband_params params_;
  linear_phase_crossover crossover_;
  std::vector<compressor_stage> comp_;      // per band
  std::vector<detail::frame_delay> align_;  // per band: max lookahead - own lookahead
  detail::frame_delay dry_delay_;
  std::vector<audio_buffer> band_buf_;  // per band, max_block_frames
  audio_buffer dry_buf_;
  std::size_t max_lookahead_ = 0;
  float wet_gain_ = 1.0f, dry_gain_ = 0.0f;  // output gain folded in
};

}  // namespace lathe
