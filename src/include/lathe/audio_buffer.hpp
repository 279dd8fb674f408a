#pragma once
// Planar float audio and the views that stages process.
#include <array>
#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "lathe/error.hpp"

namespace lathe {

/// Most channels any meter handles (5.1 for the EBU 3341 multichannel case); the mastering
/// chain itself takes at most two.
inline constexpr int max_channels = 8;

/// What a stage is prepared for.
struct stream_spec {
  double sample_rate_hz = 48'000.0;
  int channels = 2;
  std::size_t max_block_frames = 4096;  ///< process() is never called with more frames than this
};

/// Non-owning view of `channels` planar channels of `frames` samples each.
template <class T>
struct basic_block_view {
  std::array<T*, max_channels> ch{};
  int channels = 0;
  std::size_t frames = 0;

  /// One channel of `frames` samples at `x`.
  static basic_block_view mono(T* x, std::size_t frames) noexcept {
    basic_block_view v;
    v.ch[0] = x;
    v.channels = 1;
    v.frames = frames;
    return v;
  }
  T* operator[](int c) const noexcept { return ch[static_cast<std::size_t>(c)]; }
  /// Frames [offset, offset + count) of every channel.
  basic_block_view sub(std::size_t offset, std::size_t count) const noexcept {
    basic_block_view v = *this;
    for (int c = 0; c < channels; ++c) v.ch[static_cast<std::size_t>(c)] += offset;
    v.frames = count;
    return v;
  }
  operator basic_block_view<const T>() const noexcept requires(!std::is_const_v<T>) {
    basic_block_view<const T> v;
    for (int c = 0; c < channels; ++c) v.ch[static_cast<std::size_t>(c)] = ch[static_cast<std::size_t>(c)];
    v.channels = channels;
    v.frames = frames;
    return v;
  }
};
using block_view = basic_block_view<float>;
using const_block_view = basic_block_view<const float>;

class frame_sink;

/// What a frame_sink can refer to: a callable taking `const_block_view` (a sink itself copies).
template <class F>
concept frame_callable = std::invocable<F&, const_block_view> && !std::same_as<std::remove_cvref_t<F>, frame_sink>;

/// Non-owning reference to a callable `void(const_block_view)` that takes output frames. It
/// refers to the callable, so the callable must outlive it (a temporary lambda passed straight
/// to push() or finish() does). Calling it adds no allocation of its own.
class frame_sink {
 public:
  // Implicit, so that a lambda is passed where a sink is asked for.
  template <frame_callable F>
  frame_sink(F&& f) noexcept
      : callable_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* c, const_block_view v) { (*static_cast<std::remove_reference_t<F>*>(c))(v); }) {}

  void operator()(const_block_view v) const { call_(callable_, v); }

 private:
  void* callable_;
  void (*call_)(void*, const_block_view);
};

/// Owning planar float buffer: channel c occupies one contiguous run of frames().
class audio_buffer {
 public:
  audio_buffer() = default;
  audio_buffer(int channels, std::size_t frames) { resize(channels, frames); }

  /// Zero-filled resize.
  void resize(int channels, std::size_t frames) {
    LATHE_EXPECTS(channels >= 0 && channels <= max_channels, "channel count out of range");
    channels_ = channels;
    frames_ = frames;
    data_.assign(static_cast<std::size_t>(channels) * frames, 0.0f);
  }

  int channels() const noexcept { return channels_; }
  std::size_t frames() const noexcept { return frames_; }
  bool empty() const noexcept { return frames_ == 0 || channels_ == 0; }

  float* channel(int c) noexcept { return data_.data() + static_cast<std::size_t>(c) * frames_; }
  const float* channel(int c) const noexcept { return data_.data() + static_cast<std::size_t>(c) * frames_; }
  std::span<float> span(int c) noexcept { return {channel(c), frames_}; }
  std::span<const float> span(int c) const noexcept { return {channel(c), frames_}; }

  block_view view() noexcept { return view(0, frames_); }
  const_block_view view() const noexcept { return view(0, frames_); }
  block_view view(std::size_t offset, std::size_t count) noexcept {
    block_view v;
    v.channels = channels_;
    v.frames = count;
    for (int c = 0; c < channels_; ++c) v.ch[static_cast<std::size_t>(c)] = channel(c) + offset;
    return v;
  }
  const_block_view view(std::size_t offset, std::size_t count) const noexcept {
    const_block_view v;
    v.channels = channels_;
    v.frames = count;
    for (int c = 0; c < channels_; ++c) v.ch[static_cast<std::size_t>(c)] = channel(c) + offset;
    return v;
  }

  std::size_t bytes() const noexcept { return data_.size() * sizeof(float); }

 private:
  int channels_ = 0;
  std::size_t frames_ = 0;
  std::vector<float> data_;
};

/// A CPU DSP stage: prepare() allocates and designs, reset() clears state, process() runs
/// without allocating or throwing. process() may run in place (in and out the same memory).
template <class S>
concept dsp_stage = requires(S s, const stream_spec& spec, const_block_view in, block_view out) {
  s.prepare(spec);
  s.reset();
  { s.process(in, out) }
  noexcept;
  { s.latency_frames() } -> std::convertible_to<std::size_t>;
};

/// Runs `stage` over the whole buffer in blocks of at most spec.max_block_frames, in place,
/// and removes the stage's latency so the output is sample-aligned with the input (the tail
/// the latency would push past the end is flushed with zeros and kept). Allocates.
template <dsp_stage S>
void run_aligned(S& stage, audio_buffer& buf, std::size_t max_block_frames) {
  const std::size_t latency = stage.latency_frames();
  const std::size_t n = buf.frames();
  audio_buffer out(buf.channels(), n);
  audio_buffer zeros(buf.channels(), max_block_frames);
  audio_buffer scratch(buf.channels(), max_block_frames);
  std::size_t written = 0;  // output frames kept (after discarding `latency`)
  std::size_t produced = 0;
  auto push = [&](const_block_view in) {
    block_view s = scratch.view(0, in.frames);
    stage.process(in, s);
    for (std::size_t i = 0; i < in.frames; ++i, ++produced) {
      if (produced < latency || written >= n) continue;
      for (int c = 0; c < buf.channels(); ++c) out.channel(c)[written] = s[c][i];
      ++written;
    }
  };
  for (std::size_t pos = 0; pos < n; pos += max_block_frames) {
    push(buf.view(pos, std::min(max_block_frames, n - pos)));
  }
  while (written < n) push(zeros.view(0, std::min(max_block_frames, n - written + latency)));
  buf = std::move(out);
}

/// A frame_callable that copies the frames it is given into `out`, in order from frame 0 (out
/// must be long enough and have the channels; not checked).
struct buffer_filler {
  audio_buffer& out;
  std::size_t written = 0;
  void operator()(const_block_view v) noexcept {
    for (int c = 0; c < v.channels; ++c) {
      const float* x = v[c];
      float* y = out.channel(c) + written;
      for (std::size_t i = 0; i < v.frames; ++i) y[i] = x[i];
    }
    written += v.frames;
  }
};

}  // namespace lathe
