#pragma once
// Runs a stage over a buffer in blocks cycling through `sizes` (no latency removal), for the
// block-size independence tests.
#include <algorithm>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe::test {

template <class Stage>
audio_buffer run_blocks(Stage& s, const audio_buffer& in, const std::vector<std::size_t>& sizes) {
  audio_buffer out(in.channels(), in.frames());
  std::size_t pos = 0;
  for (std::size_t b = 0; pos < in.frames(); ++b) {
    const std::size_t n = std::min(sizes[b % sizes.size()], in.frames() - pos);
    s.process(in.view(pos, n), out.view(pos, n));
    pos += n;
  }
  return out;
}

/// The same, in place over `buf`.
template <class Stage>
void process_in_place(Stage& s, audio_buffer& buf, const std::vector<std::size_t>& sizes) {
  std::size_t pos = 0;
  for (std::size_t b = 0; pos < buf.frames(); ++b) {
    const std::size_t n = std::min(sizes[b % sizes.size()], buf.frames() - pos);
    s.process(buf.view(pos, n), buf.view(pos, n));
    pos += n;
  }
}

}  // namespace lathe::test
