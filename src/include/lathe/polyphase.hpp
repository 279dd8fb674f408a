#pragma once
// Rational polyphase sample-rate conversion with a Kaiser-windowed sinc designed in float64: the
// resampler of both backends. polyphase_resampler::process() is the plain reference of the GPU
// kernel (kernels/dsp/resample.cu) and polyphase_stream is the CPU render's block-streamed form;
// all three compute every output sample as the same fixed-order dot product, so they give the
// same bits. libsoxr (lathe::resample) is their independent oracle in the tests.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

/// Filter specification. Frequencies are fractions of the LOWER of the two Nyquist rates.
/// The defaults give a passband flat to well under 0.001 dB up to 0.91 (the Kaiser ripple is
/// about 1e-8), a stopband from 1.0 (nothing above the output Nyquist survives when
/// downsampling; no image below the input Nyquist's mirror when upsampling) at least 160 dB
/// down in float64 design (the float32 coefficients and data leave a floor near -145 dB), and
/// a transition of 0.09: about 235 * max(L, M) prototype taps, 2K+1 taps per output sample
/// (237 for 44.1 <-> 48 kHz upsampling, 259 downsampling, 1883 for 384 -> 48 kHz).
struct polyphase_params {
  double passband_end = 0.91;
  double stopband_begin = 1.0;
  double stopband_attenuation_db = 160.0;
};

/// Converts between two integer sample rates by L/M = out/in (reduced): conceptually zero-stuff
/// by L, low-pass with a symmetric (linear-phase) FIR centred on zero, keep every M-th sample.
/// Zero-phase alignment: output j is the band-limited input at input time j * M / L (no delay),
/// the input being zero outside [0, frames). Output length round(frames * L / M) (like
/// lathe::resample). Equal rates copy (L = M = 1, one tap of 1.0; bit-exact except -0 -> +0).
///
/// Output j: with j*M = q*L + r (0 <= r < L),
///   y[j] = float( sum_{t=0}^{T-1} double(c[r*T + t]) * double(x[q - K + t]) ),
/// T = 2K+1, x = 0 outside the lane, the sum taken as four float64 partial sums over
/// t mod 4 combined as (s0 + s1) + (s2 + s3). Each float32 x float32 product is exact in float64,
/// so the result does not depend on FMA contraction; the GPU kernel uses the same order and
/// gives the same bits up to the final float rounding.
///
/// prepare() allocates and designs (float64); process() is allocation-free, noexcept, const and
/// thread-safe (no state: every output depends only on the input lane).
class polyphase_resampler {
 public:
  /// Designs the filter for integer rates in_rate_hz -> out_rate_hz (each in [1, 10'000'000]).
  /// Throws lathe::logic_error for non-integer rates or a table over max_coefficients.
  void prepare(double in_rate_hz, double out_rate_hz, const polyphase_params& params = {});

  /// Coefficient tables above this size are refused (16 MiB of float, 32 MiB as the stream's
  /// float64 copy). Every pair of the rates in use (8, 11.025, 16, 22.05, 32, 37.8, 44.1, 48,
  /// 88.2, 96, 176.4, 192, 352.8 and 384 kHz) fits: the largest, 11.025 -> 384 kHz, needs 1.2 M.
  /// Pairs that do not (nearly coprime rates such as 47'999 -> 48'000 Hz) are resampled with
  /// libsoxr instead; fits() says which.
  static constexpr std::size_t max_coefficients = std::size_t{1} << 22;

  /// Whether prepare(in_rate_hz, out_rate_hz, params) designs a table within max_coefficients
  /// (false for non-integer rates). Cheap: no design.
  static bool fits(double in_rate_hz, double out_rate_hz, const polyphase_params& params = {}) noexcept;

  std::uint32_t up() const noexcept { return up_; }                           ///< L
  std::uint32_t down() const noexcept { return down_; }                       ///< M
  std::size_t half_taps() const noexcept { return half_taps_; }               ///< K
  std::size_t taps_per_phase() const noexcept { return 2 * half_taps_ + 1; }  ///< T
  /// Phase-major float32 table: phase r occupies [r*T, (r+1)*T). Shared by all lanes.
  std::span<const float> coefficients() const noexcept { return coeffs_; }
  const polyphase_params& params() const noexcept { return params_; }
  double in_rate_hz() const noexcept { return in_rate_hz_; }
  double out_rate_hz() const noexcept { return out_rate_hz_; }
  /// Kaiser window beta and cutoff (fraction of the lower Nyquist) actually used.
  double kaiser_beta() const noexcept { return beta_; }
  double cutoff() const noexcept { return cutoff_; }

  /// round(in_frames * L / M), halves up.
  std::size_t output_frames(std::size_t in_frames) const noexcept;

  /// Output frames [first_out, first_out + out.size()) of the lane `in`. Allocation-free.
  void process(std::span<const float> in, std::size_t first_out, std::span<float> out) const noexcept;
  /// Whole lane; out.size() must be output_frames(in.size()).
  void process(std::span<const float> in, std::span<float> out) const noexcept { process(in, 0, out); }
  /// Whole buffer, every channel. Allocates the result.
  audio_buffer process(const audio_buffer& in) const;

  /// Magnitude (linear, 1 = unity) of the float32 table at freq_hz of the input when
  /// upsampling, i.e. the response of the prototype at rate L * in_rate divided by L, evaluated
  /// from the coefficients actually used (float64 sum). For design measurements and tests.
  double magnitude(double freq_hz) const;

 private:
  std::uint32_t up_ = 1, down_ = 1;
  std::size_t half_taps_ = 0;
  double in_rate_hz_ = 0.0, out_rate_hz_ = 0.0, beta_ = 0.0, cutoff_ = 0.0;
  polyphase_params params_;
  std::vector<float> coeffs_{1.0f};
};

/// polyphase_resampler::process() of a whole lane, fed block by block, for every channel: the
/// same bits whatever the push sizes. The input is kept as float64 in a sliding window of
/// about chunk_frames + 2K + 1 frames per channel, with the zeros the reference reads outside
/// the lane, and the coefficients as float64; each output is the reference's dot product in the
/// reference's order (four float64 partial sums over t mod 4, combined as (s0 + s1) + (s2 + s3)).
/// On CPUs with AVX2 and FMA (checked at run time) four dot products run side by side, four
/// taps at a time; a float32 x float32 product is exact in float64, so the fused multiply-add
/// rounds exactly as the reference's multiply then add, and both paths give the reference's bits.
/// Memory: the window, the table and one output chunk, whatever the track length. Not
/// thread-safe; one per stream.
class polyphase_stream {
 public:
  static constexpr std::size_t chunk_frames = 1 << 14;

  /// For `in_frames` frames of `channels` channels (1..max_channels) of a lane resampled by
  /// `design` (copied: the stream owns its table). Allocates.
  polyphase_stream(const polyphase_resampler& design, int channels, std::size_t in_frames);

  /// design.output_frames(in_frames): what push() and finish() pass on in all.
  std::size_t out_frames() const noexcept { return out_frames_; }

  /// Feeds the next source frames; output frames go to `out` in order, at most chunk_frames a
  /// call, as soon as the input they need has arrived. More than in_frames in all is a
  /// logic_error.
  void push(const_block_view in, frame_sink out);
  /// After in_frames were pushed (checked): passes the rest of out_frames().
  void finish(frame_sink out);

  /// Whether this CPU runs the AVX2 path; use_avx2(false) forces the portable one (both give the
  /// same bits; the tests compare them).
  static bool avx2_available() noexcept;
  bool uses_avx2() const noexcept { return avx2_; }
  void use_avx2(bool on);

 private:
  void append(const_block_view in);  // converts to float64 at the window's end
  void append_zeros(std::size_t frames);
  void emit_ready(const frame_sink& out);  // every output whose taps are all in the window
  void compact();                          // drops what no later output reads

  int channels_;
  std::size_t taps_;
  std::uint32_t up_, down_;
  std::int64_t half_taps_;
  std::vector<double> coeffs_;  // phase-major, as the design's float table
  std::vector<double> window_;  // channel c at [c * capacity_, (c + 1) * capacity_)
  std::size_t capacity_;        // frames per channel
  std::int64_t window_begin_;   // lane index of the window's first frame
  std::size_t window_frames_ = 0;
  std::size_t in_frames_, out_frames_, pushed_ = 0, emitted_ = 0;
  std::uint64_t q_ = 0, r_ = 0;  // next output j: j M = q L + r
  audio_buffer out_;
  bool avx2_;
};

}  // namespace lathe
