#pragma once
// Sample-rate conversion with libsoxr at its very-high-quality setting.
#include "lathe/audio_buffer.hpp"

namespace lathe {

/// Converts a whole buffer from in_rate_hz to out_rate_hz with libsoxr (SOXR_VHQ, linear phase,
/// one thread so output is deterministic). The result is sample-aligned with the input (soxr's
/// delay removed) and has round(frames * out/in) frames. Returns a copy when the rates match.
/// Allocates; thread-safe (no shared state).
audio_buffer resample(const audio_buffer& in, double in_rate_hz, double out_rate_hz);

}  // namespace lathe
