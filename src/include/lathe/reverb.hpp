#pragma once
// Convolution reverb: a sampled room (impulse response file) applied with non-uniformly
// partitioned FFT convolution, mixed with the (latency-matched) dry signal.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"
#include "lathe/nonuniform_convolver.hpp"

namespace lathe {

/// How the IR's channels are routed, decided by the IR file's channel count.
enum class reverb_routing {
  mono,         ///< 1-channel IR: every track channel is convolved with it
  stereo,       ///< 2-channel IR: L -> L with IR channel 0, R -> R with IR channel 1
  true_stereo,  ///< 4-channel IR, channels in the order LL, LR, RL, RR (input -> output):
                ///< out_L = in_L * h_LL + in_R * h_RL, out_R = in_L * h_LR + in_R * h_RR
};

/// An impulse response as read from its file: planar, 1, 2 or 4 channels.
struct impulse_response {
  std::filesystem::path path;
  double sample_rate_hz = 0.0;
  audio_buffer audio;
};

/// Reads an IR file with libsndfile. Throws input_error naming the file and the reason when it
/// is missing or unreadable, not audio, empty, has a channel count other than 1, 2 or 4, a
/// sample rate outside 8..384 kHz, is longer than max_ir_seconds, or holds NaN/Inf samples.
impulse_response load_impulse_response(const std::filesystem::path& path);

/// Longest IR accepted (at its own rate); bounds memory (a 60 s 4-channel IR at 96 kHz is
/// ~90 MB of spectra).
inline constexpr double max_ir_seconds = 60.0;

struct reverb_params {
  std::filesystem::path ir_path;  ///< IR file (WAV/AIFF/FLAC...), 1, 2 or 4 channels
  double pre_delay_ms = 0.0;      ///< extra delay of the wet path, >= 0; rounded to whole frames
  /// Mix as two independent gains (not a 0..1 crossfade, so the IR's own level is kept and the
  /// dry signal can stay at unity): output = dry * 10^(dry_db/20) + wet * 10^(wet_db/20).
  /// -infinity mutes a path.
  double wet_db = -12.0;
  double dry_db = 0.0;
  double low_cut_hz = 0.0;   ///< wet-path Butterworth high-pass corner (2nd order), 0 = off
  double high_cut_hz = 0.0;  ///< wet-path Butterworth low-pass corner (2nd order), 0 = off
  /// Partitioning; first_block_frames is the stage's latency (compensated). Offline, a long first
  /// block is cheapest: 4096 / 16384 ran a 10 s stereo IR at 44.1 kHz ~1.3x faster than
  /// 1024 / 16384 (measured; smaller first blocks add small-FFT segments).
  nonuniform_layout layout{4'096, 16'384, 2};
};

struct reverb_stats {
  std::uint64_t frames = 0;                                        ///< input frames processed (all calls since reset())
  double dry_rms_dbfs = -std::numeric_limits<double>::infinity();  ///< input (before dry_db)
  double wet_rms_dbfs = -std::numeric_limits<double>::infinity();  ///< wet path after gain, filters
  /// Wet level relative to dry: 10 log10(sum wet^2 / sum input^2) over all channels and all
  /// frames processed (the tail flushed after the input counts as wet).
  double wet_relative_db = -std::numeric_limits<double>::infinity();
};

/// The statistics of `frames` frames of `channels` channels whose dry input and (gained,
/// filtered) wet signal have the given float64 energies (sums of squares); what
/// reverb_stage::stats() reports, shared with the GPU stage (kernels/dsp/reverb.cu).
reverb_stats make_reverb_stats(double dry_energy, double wet_energy, std::uint64_t frames, int channels) noexcept;

/// Convolution reverb stage (dsp_stage). prepare() loads the IR, resamples it to the track's
/// rate (lathe::resample) and transforms it; throws input_error for a bad IR file and
/// logic_error for invalid parameters or a multi-channel IR on a mono track. Latency:
/// layout.first_block_frames (the dry path is delayed to match). process() never allocates
/// and may run in place.
class reverb_stage {
 public:
  explicit reverb_stage(reverb_params p = {}) : params_(std::move(p)) {}
  /// Like the other constructor, with an IR already in memory (no file read); for tests and for
  /// sharing one decoded IR among tracks.
  reverb_stage(reverb_params p, std::shared_ptr<const impulse_response> ir)
      : params_(std::move(p)), ir_(std::move(ir)) {}

  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return params_.layout.first_block_frames; }

  reverb_routing routing() const noexcept { return routing_; }
  /// round(pre_delay_ms * fs / 1000), after prepare().
  std::size_t pre_delay_frames() const noexcept { return pre_delay_frames_; }
  /// The IR at the track's rate (after prepare()), as convolved.
  const audio_buffer& resampled_ir() const noexcept { return resampled_ir_; }
  reverb_stats stats() const noexcept;
  /// The wet-path Butterworth sections (low cut, then high cut; after prepare()), each run
  /// with float output before the next. For the GPU path.
  const std::vector<biquad_coeffs>& wet_filter_sections() const noexcept { return wet_filters_; }
  /// Linear path gains as applied (float), after prepare().
  float wet_gain() const noexcept { return wet_gain_; }
  float dry_gain() const noexcept { return dry_gain_; }

 private:
  // One input channel convolved with the IR channels of every output it feeds (two for true
  // stereo), sharing that input's transforms. The first input of each output writes the wet
  // buffer; a later one (true stereo's right input) writes scratch_, which is added.
  struct path {
    int in_channel = 0;
    int first_out_channel = 0;  // outputs first_out_channel .. + conv.filters() - 1
    bool accumulate = false;
    nonuniform_convolver conv;
  };
  static constexpr std::size_t flush_interval_frames = 4'096;

  reverb_params params_;
  std::shared_ptr<const impulse_response> ir_;
  reverb_routing routing_ = reverb_routing::mono;
  audio_buffer resampled_ir_;
  std::size_t pre_delay_frames_ = 0;
  int channels_ = 0;
  float wet_gain_ = 0.0f, dry_gain_ = 1.0f;
  std::vector<path> paths_;                 // in a fixed order: the sums are the same every run
  std::vector<biquad_coeffs> wet_filters_;  // low cut, then high cut
  std::vector<double> filter_state_;        // [channel][section][s1, s2]
  std::size_t frames_to_flush_ = flush_interval_frames;
  audio_buffer wet_;        // channels x max_block_frames
  audio_buffer scratch_;    // channels x max_block_frames: an accumulating path's outputs
  audio_buffer dry_delay_;  // channels x latency ring
  std::size_t dry_pos_ = 0;
  std::vector<double> dry_energy_, wet_energy_;  // per channel, summed in stream order
  std::uint64_t frames_ = 0;
};

}  // namespace lathe
