#pragma once
// Sample-rate conversion with libsoxr at its very-high-quality setting: the independent oracle of
// lathe's polyphase resampler in the tests, and the render's resampler for the rate pairs whose
// polyphase table does not fit (polyphase_resampler::fits).
#include <cstddef>
#include <memory>
#include <vector>

#include "lathe/audio_buffer.hpp"

struct soxr;

namespace lathe {

/// resample() fed block by block: the input goes to libsoxr in the same 65'536-frame chunks
/// whatever the push sizes, so the output equals resample()'s of the whole input bit for bit.
/// Memory: soxr's state and one chunk in and out, whatever the track length. Not thread-safe;
/// one per stream.
class resample_stream {
 public:
  static constexpr std::size_t chunk_frames = 1 << 16;

  /// For `in_frames` frames of `channels` channels (1..max_channels). Precondition (checked):
  /// both rates positive and different. Allocates.
  resample_stream(double in_rate_hz, double out_rate_hz, int channels, std::size_t in_frames);
  resample_stream(resample_stream&&) noexcept;
  resample_stream& operator=(resample_stream&&) noexcept;
  ~resample_stream();

  /// round(in_frames * out / in): what push() and finish() pass on in all.
  std::size_t out_frames() const noexcept { return out_frames_; }

  /// Feeds the next source frames; output frames go to `out` in order as they become available.
  /// More than in_frames in all is a logic_error.
  void push(const_block_view in, frame_sink out);
  /// After in_frames were pushed (checked): flushes soxr and passes the rest of out_frames().
  void finish(frame_sink out);

 private:
  struct soxr_deleter {
    void operator()(soxr* s) const noexcept;
  };
  void run_chunk(const frame_sink& out);
  void emit(std::size_t frames, const frame_sink& out);

  std::unique_ptr<soxr, soxr_deleter> soxr_;
  int channels_;
  std::size_t in_frames_, out_frames_;
  std::size_t pushed_ = 0, emitted_ = 0;
  audio_buffer chunk_;  // staged input
  std::size_t staged_ = 0;
  audio_buffer out_;  // soxr's output for one call
};

/// Converts a whole buffer from in_rate_hz to out_rate_hz with libsoxr (SOXR_VHQ, linear phase,
/// one thread so output is deterministic). The result is sample-aligned with the input (soxr's
/// delay removed) and has round(frames * out/in) frames. Returns a copy when the rates match.
/// A resample_stream fed the whole buffer. Allocates; thread-safe (no shared state).
audio_buffer resample(const audio_buffer& in, double in_rate_hz, double out_rate_hz);

}  // namespace lathe
