#include "lathe/reverb.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <system_error>

#include "lathe/error.hpp"
#include "lathe/resampler.hpp"

namespace lathe {
namespace fs = std::filesystem;

namespace {

constexpr double min_ir_rate_hz = 8'000.0;
constexpr double max_ir_rate_hz = 384'000.0;
// Longest pre-delay accepted: rooms' initial gaps are tens of ms; seconds are a typo.
constexpr double max_pre_delay_ms = 1'000.0;

[[noreturn]] void fail(const fs::path& p, const std::string& reason) {
  throw input_error(p.string(), "impulse response " + reason);
}

struct sndfile_closer {
  void operator()(SNDFILE* f) const noexcept { sf_close(f); }
};

// Second-order Butterworth low-pass (bilinear, prewarped); the high-pass twin is in biquad.cpp.
biquad_coeffs design_lowpass(double cutoff_hz, double q, double fs_hz) {
  const double k = std::tan(M_PI * cutoff_hz / fs_hz);
  const double norm = 1.0 / (1.0 + k / q + k * k);
  biquad_coeffs c;
  c.b0 = k * k * norm;
  c.b1 = 2.0 * c.b0;
  c.b2 = c.b0;
  c.a1 = 2.0 * (k * k - 1.0) * norm;
  c.a2 = (1.0 - k / q + k * k) * norm;
  return c;
}

float db_to_gain(double db) {
  return static_cast<float>(std::pow(10.0, db / 20.0));  // -inf dB -> 0
}

double energy_db(double energy, std::uint64_t samples) {
  if (samples == 0 || energy <= 0.0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(energy / static_cast<double>(samples));
}

}  // namespace

impulse_response load_impulse_response(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "file not found (check ir_path in the profile)");
  if (fs::is_directory(st)) fail(path, "is a folder, not an audio file");
  if (fs::file_size(path, ec) == 0 && !ec) fail(path, "is an empty file (0 bytes)");

  SF_INFO info{};
  std::unique_ptr<SNDFILE, sndfile_closer> file(sf_open(path.c_str(), SFM_READ, &info));
  if (!file) fail(path, std::string("is not a readable audio file (libsndfile: ") + sf_strerror(nullptr) + ")");
  if (info.channels != 1 && info.channels != 2 && info.channels != 4) {
    fail(path, "has " + std::to_string(info.channels) +
                   " channels; it needs 1 (mono), 2 (stereo) or 4 (true stereo: LL, LR, RL, RR)");
  }
  if (info.samplerate < min_ir_rate_hz || info.samplerate > max_ir_rate_hz) {
    fail(path, "has a sample rate of " + std::to_string(info.samplerate) + " Hz; 8000 to 384000 Hz are accepted");
  }
  if (info.frames <= 0) fail(path, "is empty (0 sample frames)");
  if (static_cast<double>(info.frames) > max_ir_seconds * info.samplerate) {
    fail(path, "is " + std::to_string(static_cast<double>(info.frames) / info.samplerate) + " s long; at most " +
                   std::to_string(static_cast<int>(max_ir_seconds)) + " s are accepted (trim its silent tail)");
  }

  const auto frames = static_cast<std::size_t>(info.frames);
  const auto channels = static_cast<std::size_t>(info.channels);
  std::vector<float> interleaved(frames * channels);
  const sf_count_t got = sf_readf_float(file.get(), interleaved.data(), info.frames);
  if (got != info.frames) {
    fail(path, "is truncated or corrupt: " + std::to_string(got) + " of " + std::to_string(info.frames) +
                   " frames could be read");
  }
  impulse_response ir;
  ir.path = path;
  ir.sample_rate_hz = info.samplerate;
  ir.audio.resize(info.channels, frames);
  for (std::size_t c = 0; c < channels; ++c) {
    float* dst = ir.audio.channel(static_cast<int>(c));
    for (std::size_t i = 0; i < frames; ++i) {
      const float v = interleaved[i * channels + c];
      if (!std::isfinite(v)) {
        fail(path,
             "holds a NaN or infinite sample at frame " + std::to_string(i) + " of channel " + std::to_string(c + 1));
      }
      dst[i] = v;
    }
  }
  return ir;
}

void reverb_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.sample_rate_hz > 0.0, "sample rate must be positive");
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames >= 1, "max block must hold at least one frame");
  const double fs = spec.sample_rate_hz;
  LATHE_EXPECTS(
      std::isfinite(params_.pre_delay_ms) && params_.pre_delay_ms >= 0.0 && params_.pre_delay_ms <= max_pre_delay_ms,
      "reverb pre_delay_ms must lie in 0..1000");
  LATHE_EXPECTS(!std::isnan(params_.wet_db) && params_.wet_db < 60.0, "reverb wet_db must be a number below 60");
  LATHE_EXPECTS(!std::isnan(params_.dry_db) && params_.dry_db < 60.0, "reverb dry_db must be a number below 60");
  LATHE_EXPECTS(params_.low_cut_hz == 0.0 || (params_.low_cut_hz > 0.0 && params_.low_cut_hz < 0.5 * fs),
                "reverb low_cut_hz must be 0 (off) or lie in (0, fs/2)");
  LATHE_EXPECTS(params_.high_cut_hz == 0.0 || (params_.high_cut_hz > 0.0 && params_.high_cut_hz < 0.5 * fs),
                "reverb high_cut_hz must be 0 (off) or lie in (0, fs/2)");

  if (ir_ == nullptr) ir_ = std::make_shared<const impulse_response>(load_impulse_response(params_.ir_path));
  const int ir_channels = ir_->audio.channels();
  LATHE_EXPECTS(ir_channels == 1 || ir_channels == 2 || ir_channels == 4, "IR must have 1, 2 or 4 channels");
  LATHE_EXPECTS(!ir_->audio.empty(), "IR must not be empty");
  routing_ = ir_channels == 1   ? reverb_routing::mono
             : ir_channels == 2 ? reverb_routing::stereo
                                : reverb_routing::true_stereo;
  if (routing_ != reverb_routing::mono && spec.channels != 2) {
    throw input_error(ir_->path.string(), "impulse response has " + std::to_string(ir_channels) +
                                              " channels and needs a stereo track (use a mono IR)");
  }

  resampled_ir_ = ir_->sample_rate_hz == fs ? ir_->audio : resample(ir_->audio, ir_->sample_rate_hz, fs);
  pre_delay_frames_ = static_cast<std::size_t>(std::llround(params_.pre_delay_ms * fs / 1000.0));

  std::vector<std::shared_ptr<const nonuniform_filter>> filters;
  for (int c = 0; c < ir_channels; ++c) {
    filters.push_back(
        std::make_shared<const nonuniform_filter>(resampled_ir_.span(c), params_.layout, pre_delay_frames_));
  }
  paths_.clear();
  auto add = [&](int in, int first_out, bool accumulate, std::initializer_list<int> ir_channels_used) {
    std::vector<std::shared_ptr<const nonuniform_filter>> fs_used;
    for (int ch : ir_channels_used) fs_used.push_back(filters[static_cast<std::size_t>(ch)]);
    paths_.push_back(path{in, first_out, accumulate, nonuniform_convolver(std::move(fs_used))});
  };
  switch (routing_) {
    case reverb_routing::mono:
      for (int c = 0; c < spec.channels; ++c) add(c, c, false, {0});
      break;
    case reverb_routing::stereo:
      add(0, 0, false, {0});
      add(1, 1, false, {1});
      break;
    case reverb_routing::true_stereo:
      add(0, 0, false, {0, 1});  // L -> (LL to L, LR to R)
      add(1, 0, true, {2, 3});   // R -> (RL to L, RR to R), added
      break;
  }

  // Butterworth Q of a 2nd-order section; each corner is one section (12 dB/octave).
  const double q = M_SQRT1_2;
  wet_filters_.clear();
  if (params_.low_cut_hz > 0.0) wet_filters_.push_back(design_highpass(params_.low_cut_hz, q, fs));
  if (params_.high_cut_hz > 0.0) wet_filters_.push_back(design_lowpass(params_.high_cut_hz, q, fs));

  channels_ = spec.channels;
  wet_gain_ = db_to_gain(params_.wet_db);
  dry_gain_ = db_to_gain(params_.dry_db);
  filter_state_.assign(static_cast<std::size_t>(channels_) * wet_filters_.size() * 2, 0.0);
  wet_.resize(channels_, spec.max_block_frames);
  scratch_.resize(channels_, spec.max_block_frames);
  dry_delay_.resize(channels_, latency_frames());
  dry_energy_.assign(static_cast<std::size_t>(channels_), 0.0);
  wet_energy_.assign(static_cast<std::size_t>(channels_), 0.0);
  reset();
}

void reverb_stage::reset() noexcept {
  for (path& p : paths_) p.conv.reset();
  std::fill(filter_state_.begin(), filter_state_.end(), 0.0);
  frames_to_flush_ = flush_interval_frames;
  for (int c = 0; c < dry_delay_.channels(); ++c) std::fill_n(dry_delay_.channel(c), dry_delay_.frames(), 0.0f);
  dry_pos_ = 0;
  std::fill(dry_energy_.begin(), dry_energy_.end(), 0.0);
  std::fill(wet_energy_.begin(), wet_energy_.end(), 0.0);
  frames_ = 0;
}

void reverb_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  // Wet: every routing path, summed per output channel in a fixed order. Reads `in` only, so
  // in-place use is safe until the mix below.
  for (path& p : paths_) {
    const auto outputs = static_cast<int>(p.conv.filters());
    float* dst[nonuniform_convolver::max_filters] = {};
    audio_buffer& target = p.accumulate ? scratch_ : wet_;
    for (int k = 0; k < outputs; ++k) dst[k] = target.channel(p.first_out_channel + k);
    p.conv.process(in[p.in_channel], dst, n);
    if (p.accumulate) {
      for (int k = 0; k < outputs; ++k) {
        float* w = wet_.channel(p.first_out_channel + k);
        const float* s = dst[k];
        for (std::size_t i = 0; i < n; ++i) w[i] += s[i];
      }
    }
  }

  // Wet filters in float64 (transposed direct form II), denormals flushed at fixed stream
  // positions so the output does not depend on the block sizes.
  const std::size_t sections = wet_filters_.size();
  if (sections > 0) {
    std::size_t pos = 0;
    while (pos < n) {
      const std::size_t len = std::min(n - pos, frames_to_flush_);
      for (int c = 0; c < channels_; ++c) {
        double* st = filter_state_.data() + static_cast<std::size_t>(c) * sections * 2;
        float* w = wet_.channel(c) + pos;
        for (std::size_t s = 0; s < sections; ++s) {
          const biquad_coeffs k = wet_filters_[s];
          double s1 = st[2 * s], s2 = st[2 * s + 1];
          for (std::size_t i = 0; i < len; ++i) {
            const double x = w[i];
            const double y = k.b0 * x + s1;
            s1 = k.b1 * x - k.a1 * y + s2;
            s2 = k.b2 * x - k.a2 * y;
            w[i] = static_cast<float>(y);
          }
          st[2 * s] = s1;
          st[2 * s + 1] = s2;
        }
      }
      pos += len;
      frames_to_flush_ -= len;
      if (frames_to_flush_ == 0) {
        for (double& s : filter_state_)
          if (std::abs(s) < 1e-30) s = 0.0;
        frames_to_flush_ = flush_interval_frames;
      }
    }
  }

  // Mix with the dry signal delayed by the convolution latency.
  const std::size_t delay = dry_delay_.frames();
  std::size_t dry_pos = dry_pos_;
  for (int c = 0; c < channels_; ++c) {
    const float* x = in[c];
    float* y = out[c];
    const float* w = wet_.channel(c);
    float* ring = dry_delay_.channel(c);
    double dry_e = dry_energy_[static_cast<std::size_t>(c)], wet_e = wet_energy_[static_cast<std::size_t>(c)];
    std::size_t rp = dry_pos_;
    for (std::size_t i = 0; i < n; ++i) {
      const float xi = x[i];
      const float d = ring[rp];
      ring[rp] = xi;
      rp = rp + 1 == delay ? 0 : rp + 1;
      const float wet = w[i] * wet_gain_;
      dry_e += static_cast<double>(xi) * xi;
      wet_e += static_cast<double>(wet) * wet;
      y[i] = d * dry_gain_ + wet;
    }
    dry_energy_[static_cast<std::size_t>(c)] = dry_e;
    wet_energy_[static_cast<std::size_t>(c)] = wet_e;
    dry_pos = rp;
  }
  dry_pos_ = dry_pos;
  frames_ += n;
}

reverb_stats make_reverb_stats(double dry_energy, double wet_energy, std::uint64_t frames, int channels) noexcept {
  reverb_stats s;
  s.frames = frames;
  const std::uint64_t samples = frames * static_cast<std::uint64_t>(std::max(channels, 0));
  s.dry_rms_dbfs = energy_db(dry_energy, samples);
  s.wet_rms_dbfs = energy_db(wet_energy, samples);
  if (dry_energy > 0.0 && wet_energy > 0.0) s.wet_relative_db = 10.0 * std::log10(wet_energy / dry_energy);
  return s;
}

reverb_stats reverb_stage::stats() const noexcept {
  double dry = 0.0, wet = 0.0;
  for (double e : dry_energy_) dry += e;
  for (double e : wet_energy_) wet += e;
  return make_reverb_stats(dry, wet, frames_, channels_);
}

}  // namespace lathe
