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

struct soxr_deleter {
  void operator()(soxr* s) const noexcept { soxr_delete(s); }
};

[[noreturn]] void fail_soxr(const char* where, soxr_error_t err) {
  LATHE_FAIL(std::string("libsoxr ") + where + " failed: " + soxr_strerror(err));
}

}  // namespace

audio_buffer resample(const audio_buffer& in, double in_rate_hz, double out_rate_hz) {
  LATHE_EXPECTS(in_rate_hz > 0.0 && out_rate_hz > 0.0, "sample rates must be positive");
  if (in_rate_hz == out_rate_hz) return in;
  const int channels = in.channels();
  const std::size_t in_frames = in.frames();
  const auto out_frames =
      static_cast<std::size_t>(std::llround(static_cast<double>(in_frames) * out_rate_hz / in_rate_hz));
  audio_buffer out(channels, out_frames);
  if (channels == 0 || in_frames == 0) return out;

  // Planar float in and out (the _S types take one pointer per channel); one thread so the
  // result does not depend on scheduling.
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_S, SOXR_FLOAT32_S);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_VHQ, SOXR_LINEAR_PHASE);
  const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);
  soxr_error_t err = nullptr;
  std::unique_ptr<soxr, soxr_deleter> s(
      soxr_create(in_rate_hz, out_rate_hz, static_cast<unsigned>(channels), &err, &io, &quality, &runtime));
  if (err != nullptr || !s) fail_soxr("soxr_create", err);

  // soxr compensates its own filter delay: the first output sample is aligned with the first
  // input sample, and the flushed stream ends at about in_frames * ratio (checked by the tests
  // against analytically resampled sines). So the output is the first out_frames samples of the
  // flushed stream; if soxr stops a fraction of a sample short, the zero-filled tail stays.
  std::vector<const float*> in_ptr(static_cast<std::size_t>(channels));
  std::vector<float*> out_ptr(static_cast<std::size_t>(channels));
  // Input goes in bounded chunks: handed a whole track at once, soxr grows its internal FIFO by
  // realloc in small steps, which costs more than the resampling (mremap and TLB shootdowns).
  constexpr std::size_t chunk_frames = 1 << 16;
  std::size_t in_pos = 0, out_pos = 0;
  while (out_pos < out_frames) {
    for (int c = 0; c < channels; ++c) {
      in_ptr[static_cast<std::size_t>(c)] = in.channel(c) + in_pos;
      out_ptr[static_cast<std::size_t>(c)] = out.channel(c) + out_pos;
    }
    const bool end_of_input = in_pos == in_frames;  // a null input asks soxr to flush
    std::size_t in_done = 0, out_done = 0;
    err = soxr_process(s.get(), end_of_input ? nullptr : in_ptr.data(), std::min(chunk_frames, in_frames - in_pos),
                       &in_done, out_ptr.data(), out_frames - out_pos, &out_done);
    if (err != nullptr) fail_soxr("soxr_process", err);
    in_pos += in_done;
    out_pos += out_done;
    if (end_of_input && out_done == 0) break;
  }
  return out;
}

}  // namespace lathe
