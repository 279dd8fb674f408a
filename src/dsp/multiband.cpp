#include "lathe/multiband.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "lathe/error.hpp"

namespace lathe {

void multiband_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(params_.bands.size() == params_.crossover.crossover_hz.size() + 1,
                "multiband needs one compressor per band (crossover frequencies + 1)");
  LATHE_EXPECTS(params_.dry_wet >= 0.0 && params_.dry_wet <= 1.0, "multiband dry_wet must lie in [0, 1]");
  LATHE_EXPECTS(std::abs(params_.output_gain_db) <= 60.0, "multiband output_gain_db must lie within +-60 dB");
  crossover_ = linear_phase_crossover(params_.crossover);
  crossover_.prepare(spec);
  comp_.clear();
  for (const compressor_params& b : params_.bands) {
    comp_.emplace_back(b);
    comp_.back().prepare(spec);
  }
  max_lookahead_ = 0;
  for (const compressor_stage& c : comp_) max_lookahead_ = std::max(max_lookahead_, c.latency_frames());
  align_.assign(comp_.size(), {});
  for (std::size_t k = 0; k < comp_.size(); ++k)
    align_[k].prepare(spec.channels, max_lookahead_ - comp_[k].latency_frames());
  dry_delay_.prepare(spec.channels, latency_frames());
  band_buf_.assign(comp_.size(), audio_buffer(spec.channels, spec.max_block_frames));
  dry_buf_.resize(spec.channels, spec.max_block_frames);
  const double out_gain = std::pow(10.0, params_.output_gain_db / 20.0);
  wet_gain_ = static_cast<float>(params_.dry_wet * out_gain);
  dry_gain_ = static_cast<float>((1.0 - params_.dry_wet) * out_gain);
}

void multiband_stage::reset() noexcept {
  crossover_.reset();
  for (compressor_stage& c : comp_) c.reset();
  for (detail::frame_delay& d : align_) d.reset();
  dry_delay_.reset();
}

void multiband_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  std::array<block_view, max_crossover_bands> views{};
  const std::size_t n_bands = comp_.size();
  for (std::size_t k = 0; k < n_bands; ++k) views[k] = band_buf_[k].view(0, n);
  crossover_.split(in, std::span<const block_view>(views.data(), n_bands));
  block_view dry = dry_buf_.view(0, n);
  dry_delay_.process(in, dry);  // before out is written: in may alias out
  for (std::size_t k = 0; k < n_bands; ++k) {
    comp_[k].process(views[k], views[k]);
    align_[k].process(views[k], views[k]);
  }
  for (int c = 0; c < in.channels; ++c) {
    float* y = out[c];
    const float* d = dry[c];
    const float* b0 = views[0][c];
    for (std::size_t i = 0; i < n; ++i) y[i] = b0[i];
    for (std::size_t k = 1; k < n_bands; ++k) {
      const float* b = views[k][c];
      for (std::size_t i = 0; i < n; ++i) y[i] += b[i];
    }
    for (std::size_t i = 0; i < n; ++i) y[i] = wet_gain_ * y[i] + dry_gain_ * d[i];
  }
}

std::size_t multiband_stage::latency_frames() const noexcept {
  return crossover_.latency_frames() + max_lookahead_;
}

dynamics_stats multiband_stage::band_stats(int band) const noexcept {
  return comp_[static_cast<std::size_t>(band)].stats();
}

}  // namespace lathe
