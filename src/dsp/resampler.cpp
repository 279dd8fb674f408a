#include "lathe/resampler.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <soxr.h>

#include "lathe/error.hpp"

namespace lathe {
namespace {

[[noreturn]] void fail_soxr(const char* where, soxr_error_t err) {
  LATHE_FAIL(std::string("libsoxr ") + where + " failed: " + soxr_strerror(err));
}

}  // namespace

void resample_stream::soxr_deleter::operator()(soxr* s) const noexcept {
  soxr_delete(s);
}

resample_stream::resample_stream(double in_rate_hz, double out_rate_hz, int channels, std::size_t in_frames)
    : channels_(channels),
      in_frames_(in_frames),
      out_frames_(static_cast<std::size_t>(std::llround(static_cast<double>(in_frames) * out_rate_hz / in_rate_hz))) {
  LATHE_EXPECTS(in_rate_hz > 0.0 && out_rate_hz > 0.0, "sample rates must be positive");
  LATHE_EXPECTS(in_rate_hz != out_rate_hz, "resample_stream needs two different rates");
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "channel count out of range");
  // Planar float in and out (the _S types take one pointer per channel); one thread so the
  // result does not depend on scheduling.
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_S, SOXR_FLOAT32_S);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_VHQ, SOXR_LINEAR_PHASE);
  const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);
  soxr_error_t err = nullptr;
  soxr_.reset(soxr_create(in_rate_hz, out_rate_hz, static_cast<unsigned>(channels), &err, &io, &quality, &runtime));
  if (err != nullptr || !soxr_) fail_soxr("soxr_create", err);
  chunk_.resize(channels, chunk_frames);
  const double ratio = out_rate_hz / in_rate_hz;
  out_.resize(channels, static_cast<std::size_t>(std::ceil(static_cast<double>(chunk_frames) * ratio)) + 4096);
}

resample_stream::resample_stream(resample_stream&&) noexcept = default;
resample_stream& resample_stream::operator=(resample_stream&&) noexcept = default;
resample_stream::~resample_stream() = default;

void resample_stream::emit(std::size_t frames, const frame_sink& out) {
  // soxr's flushed stream may run a little past round(in * ratio); the master is its first
  // out_frames frames.
  const std::size_t n = std::min(frames, out_frames_ - emitted_);
  if (n == 0) return;
  out(out_.view(0, n));
  emitted_ += n;
}

// soxr compensates its own filter delay: the first output sample is aligned with the first
// input sample, and the flushed stream ends at about in_frames * ratio (checked by the tests
// against analytically resampled sines). Input goes in bounded chunks: handed a whole track at
// once, soxr grows its internal FIFO by realloc in small steps, which costs more than the
// resampling (mremap and TLB shootdowns).
void resample_stream::run_chunk(const frame_sink& out) {
  std::vector<const float*> in_ptr(static_cast<std::size_t>(channels_));
  std::vector<float*> out_ptr(static_cast<std::size_t>(channels_));
  std::size_t pos = 0;
  while (pos < staged_ && emitted_ < out_frames_) {
    for (int c = 0; c < channels_; ++c) {
      in_ptr[static_cast<std::size_t>(c)] = chunk_.channel(c) + pos;
      out_ptr[static_cast<std::size_t>(c)] = out_.channel(c);
    }
    std::size_t in_done = 0, out_done = 0;
    const soxr_error_t err =
        soxr_process(soxr_.get(), in_ptr.data(), staged_ - pos, &in_done, out_ptr.data(), out_.frames(), &out_done);
    if (err != nullptr) fail_soxr("soxr_process", err);
    if (in_done == 0 && out_done == 0) LATHE_FAIL("libsoxr made no progress");
    pos += in_done;
    emit(out_done, out);
  }
  staged_ = 0;
}

void resample_stream::push(const_block_view in, frame_sink out) {
  LATHE_EXPECTS(in.channels == channels_, "resample_stream channel count differs");
  LATHE_EXPECTS(in.frames <= in_frames_ - pushed_, "more frames pushed than the stream was made for");
  for (std::size_t done = 0; done < in.frames;) {
    const std::size_t n = std::min(chunk_frames - staged_, in.frames - done);
    for (int c = 0; c < channels_; ++c) std::copy_n(in[c] + done, n, chunk_.channel(c) + staged_);
    staged_ += n;
    done += n;
    pushed_ += n;
    if (staged_ == chunk_frames) run_chunk(out);
  }
}

void resample_stream::finish(frame_sink out) {
  LATHE_EXPECTS(pushed_ == in_frames_, "resample_stream finished before all its frames were pushed");
  if (staged_ > 0) run_chunk(out);
  std::vector<float*> out_ptr(static_cast<std::size_t>(channels_));
  while (emitted_ < out_frames_) {
    for (int c = 0; c < channels_; ++c) out_ptr[static_cast<std::size_t>(c)] = out_.channel(c);
    std::size_t out_done = 0;
    const soxr_error_t err = soxr_process(soxr_.get(), nullptr, 0, nullptr, out_ptr.data(), out_.frames(), &out_done);
    if (err != nullptr) fail_soxr("soxr_process", err);
    if (out_done == 0) break;
    emit(out_done, out);
  }
  // If soxr stops a fraction of a sample short, the tail is zeros.
  if (emitted_ < out_frames_) {
    out_.resize(channels_, out_.frames());
    while (emitted_ < out_frames_) emit(std::min(out_.frames(), out_frames_ - emitted_), out);
  }
}

audio_buffer resample(const audio_buffer& in, double in_rate_hz, double out_rate_hz) {
  LATHE_EXPECTS(in_rate_hz > 0.0 && out_rate_hz > 0.0, "sample rates must be positive");
  if (in_rate_hz == out_rate_hz) return in;
  const auto out_frames =
      static_cast<std::size_t>(std::llround(static_cast<double>(in.frames()) * out_rate_hz / in_rate_hz));
  audio_buffer out(in.channels(), out_frames);
  if (in.channels() == 0 || in.frames() == 0) return out;
  resample_stream stream(in_rate_hz, out_rate_hz, in.channels(), in.frames());
  buffer_filler keep{out};
  stream.push(in.view(), keep);
  stream.finish(keep);
  return out;
}

}  // namespace lathe
