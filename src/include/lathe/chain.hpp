#pragma once
// The pre-chain (high-pass, EQ, de-esser, multiband, stereo, saturation, reverb in the
// profile's chain order) as a stream: source frames go in, in any block sizes, and
// sample-aligned output comes out block by block, with memory independent of the track length.
#include <concepts>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/audio_buffer.hpp"
#include "lathe/profile.hpp"
#include "lathe/stage_module.hpp"

namespace lathe {

/// The pre-chain of one track as a stream. Each stage sees exactly the process() calls that
/// running it over the whole buffer with run_aligned(stage, buffer, block_frames) gives it:
/// consecutive block_frames blocks of the previous stage's aligned output from frame 0, a
/// shorter last block, then zero blocks of min(block_frames, n - written + latency) frames until
/// its n aligned frames are out. So the output and the report are bit-identical to that
/// whole-buffer chain for any push sizes (apply_prechain is this stream over one push).
///
/// Memory: per stage, an input queue and an output block of block_frames frames each, plus the
/// stage's own state (FIR, IR and delay lines sized at prepare()); none of it grows with the
/// track. Output lags input by at most the sum over stages of (latency + block_frames - 1)
/// frames until finish() flushes the rest. push() and finish() do not allocate (the stages'
/// process() does not); the constructor allocates, reads the reverb's IR file and designs
/// every stage. Not thread-safe; one stream per track.
class prechain_stream {
 public:
  /// Frames per process() call of every stage (spec.max_block_frames).
  static constexpr std::size_t block_frames = 8'192;

  /// Builds and prepares the stages of `p.chain_order` for `channels` channels at
  /// `sample_rate_hz` (the EQ through eq_at_rate; an EQ with no bands and no curve is a bypass
  /// and builds nothing) for a track of `total_frames` frames. Throws what the stages' prepare()
  /// throws (logic_error for bad settings, input_error for a bad IR file).
  prechain_stream(const delivery_profile& p, double sample_rate_hz, int channels, std::size_t total_frames);

  /// Feeds the next in.frames source frames (any count, 0 included; in.channels must be the
  /// stream's). Every output frame that becomes available is passed to `out` in order, in views
  /// of at most block_frames frames (of any size when the chain has no stage) that stay valid
  /// only during the call. Throws logic_error, before processing anything, when the channel
  /// count differs, after finish(), or when more than total_frames() would have been pushed.
  /// If `out` throws, the stream is left unusable.
  void push(const_block_view in, frame_sink out);

  /// After all total_frames() were pushed: flushes each stage's latency with zeros, passing the
  /// remaining output to `out`, so that exactly total_frames() frames came out in all. Throws
  /// logic_error when frames are missing or when called twice.
  void finish(frame_sink out);

  /// One JSON object per chain_order entry, as apply_prechain's report: statistics over every
  /// frame each stage processed so far (after finish(), the flush included).
  nlohmann::json report() const;

  int channels() const noexcept { return channels_; }
  std::size_t total_frames() const noexcept { return total_frames_; }
  std::size_t pushed_frames() const noexcept { return pushed_frames_; }
  /// Output frames passed to the sinks so far.
  std::size_t emitted_frames() const noexcept { return emitted_frames_; }
  bool finished() const noexcept { return finished_; }
  /// Sum of the stages' latencies (frames): the delay each stage compensates.
  std::size_t latency_frames() const noexcept;
  /// Bytes of the stream's queues and blocks (not the stages' own state): fixed at
  /// construction, whatever total_frames.
  std::size_t buffer_bytes() const noexcept;

 private:
  using stage = any_stage;
  struct node {
    explicit node(stage s) : dsp(std::move(s)) {}
    stage dsp;
    std::size_t latency = 0;
    std::size_t produced = 0;  // frames process() has output
    std::size_t written = 0;   // aligned frames passed downstream (latency discarded)
    std::size_t queued = 0;    // frames waiting in `queue` for a full block
    audio_buffer queue;        // channels x block_frames: input gathered into one block
    audio_buffer block;        // channels x block_frames: process() output
  };
  // What report() writes for one chain_order entry: `node_index` is npos for a stage that
  // does nothing at this rate (an EQ without bands), which reports its empty statistics.
  struct entry {
    chain_stage kind;
    std::size_t node_index;
  };
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  void add(stage s, const stream_spec& spec);
  void feed(std::size_t k, const_block_view in, const frame_sink& out);
  void run_block(std::size_t k, const_block_view in, const frame_sink& out);

  delivery_profile profile_;  // the settings report() names
  int channels_ = 0;
  std::size_t total_frames_ = 0;
  std::size_t pushed_frames_ = 0;
  std::size_t emitted_frames_ = 0;
  bool finished_ = false;
  std::vector<node> nodes_;  // in chain order; never resized after construction
  std::vector<entry> entries_;
  audio_buffer zeros_;  // channels x block_frames: the flush blocks' input
};

}  // namespace lathe
