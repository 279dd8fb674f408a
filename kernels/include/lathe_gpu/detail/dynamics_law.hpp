#pragma once
// The per-thread bodies of the GPU compressor, multiband and de-esser kernels (kernels/
// dynamics.cu), written once as plain functions that compile for the device (under nvcc) and the
// host (under g++), so a CPU unit test (tests/dsp/gpu_dynamics_layout_test.cpp) runs exactly this
// code over the same block and chunk decomposition and compares it with lathe::compressor_stage,
// lathe::multiband_stage and lathe::deesser_stage through lathe::run_aligned. Host-compilable:
// no CUDA headers; LATHE_GPU_HD expands to nothing outside nvcc.
//
// Compressor, per stereo track (src/dsp/dynamics.cpp), over the STREAM the CPU stage sees inside
// run_aligned: u[t], t in [0, T), T = run_aligned_stream_frames(frames, latency, block); u is
// `lead` zeros, then the source lane (src_frames samples), then zeros.
//   detected[t] = max |u[t-W+1 .. t]|            (peak)   or  sum u^2[t-W+1 .. t] / W  (rms)
//   target[t]   = compressor_static_gain_db(to_db(detected))   (linked: the two lanes' max first)
//   g[t]        = target + a(t) (g[t-1] - target),  a = attack or release coefficient by the sign
//                 of (target - g[t-1]) * attack_sign;  g[-1] = 0
// The window is cut into blocks of W stream frames (van Herk / Gil-Werman): pass 1 writes suffix
// maxima / sums per block, pass 2 walks each block forward combining its prefix with the previous
// block's suffix at t - W + 1; 3 operations per frame for any W. The peak max is exact, so peak
// targets equal the CPU's bit for bit; the rms sum adds at most 2W float squares in a different
// order than the CPU's running float64 sum (which also accumulates rounding over the whole track),
// a relative difference of ~1e-16 x W of the local power.
//
// The smoothing is a contraction in g[t-1] (piecewise linear, slopes a_att, a_rel in [0, 1)). It is
// parallelized EXACTLY over chunks of time by fixed-point iteration of the chunk start states:
// every chunk runs the serial recurrence from its start state (iteration 0: the chunk's first
// target; the CPU's initial 0 dB for a path's first chunk) and records its end state;
// start[c+1] := end[c]; repeat until no start state changes bitwise. Then every chunk ran from its
// serial start state with the serial arithmetic, so the result equals a serial run. Iteration k
// makes chunks 0..k exact, so the scheme terminates; contraction makes it a few iterations
// (a^chunk small). After max_smoothing_iterations the remaining chunks are finished serially.
// The de-esser (src/dsp/deesser.cpp) is the same scheme with a two-part state (power, reduction):
// its power average is linear and its reduction smoothing a contraction.
//
// All double arithmetic is plain IEEE without contraction (mul_rn/add_rn/sub_rn; nvcc's default
// IEEE division), so host and device compute the same bits given the same log10/exp/pow results
// (the device's differ from glibc's by an ulp now and then: the GPU matches the CPU within
// rounding, the host emulation bit for bit).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "host_device.hpp"  // relative: CPU tests include this header by path

namespace lathe::gpu::detail {

inline constexpr double dyn_level_floor_db = -200.0;  // as src/dsp/dynamics.cpp
inline constexpr double dyn_gain_floor_db = -200.0;
inline constexpr double dyn_level_floor_amp = 1e-10;
inline constexpr double dyn_ln10_over_20 = 2.302585092994045684 / 20.0;
inline constexpr double deesser_reduction_floor_db = 1e-6;  // as src/dsp/deesser.cpp
inline constexpr double deesser_power_flush = 1e-30;        // deesser_stage flushes power below this
/// Fixed-point iterations before the remaining chunks are finished serially.
inline constexpr int max_smoothing_iterations = 64;

/// std::max / std::min semantics (first argument unless the second is strictly larger/smaller).
LATHE_GPU_HD inline double dyn_max(double x, double y) {
  return x < y ? y : x;
}
LATHE_GPU_HD inline double dyn_min(double x, double y) {
  return y < x ? y : x;
}

LATHE_GPU_HD inline std::uint64_t dyn_pieces(std::uint64_t n, std::uint64_t piece) {
  return (n + piece - 1) / piece;
}

/// Float operations the CPU performs one by one; on the device never fused into an FMA.
LATHE_GPU_HD inline float mul_f(float x, float y) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(x, y);
#else
  return x * y;
#endif
}
LATHE_GPU_HD inline float add_f(float x, float y) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(x, y);
#else
  return x + y;
#endif
}
LATHE_GPU_HD inline float sub_f(float x, float y) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(x, y);
#else
  return x - y;
#endif
}

enum class detector_kind : std::uint32_t { peak = 0, rms = 1 };

/// One compressor's constants, derived exactly as compressor_stage::prepare does.
struct comp_constants {
  double threshold_db = -20.0;
  double ratio = 1.0;
  double knee_db = 0.0;
  double slope = 0.0;  // 1 / ratio - 1
  double attack_coeff = 0.0;
  double release_coeff = 0.0;
  double attack_sign = -1.0;
  double makeup_db = 0.0;
  std::uint32_t window = 1;  // detector window W, frames
  detector_kind detector = detector_kind::peak;
  std::uint32_t linked = 1;
  std::uint32_t pad = 0;
};

/// compressor_static_gain_db, operation for operation.
LATHE_GPU_HD inline double static_gain_db(const comp_constants& k, double level_db) {
  const double x = dyn_max(level_db, dyn_level_floor_db);
  const double d = sub_rn(x, k.threshold_db);
  const double w = k.knee_db;
  double g = 0.0;
  if (w > 0.0 && fabs(mul_rn(2.0, d)) <= w) {
    if (k.ratio >= 1.0) {
      const double e = add_rn(d, mul_rn(0.5, w));
      g = mul_rn(mul_rn(k.slope, e), e) / mul_rn(2.0, w);
    } else {
      const double e = sub_rn(d, mul_rn(0.5, w));
      g = mul_rn(mul_rn(-k.slope, e), e) / mul_rn(2.0, w);
    }
  } else if (k.ratio >= 1.0 ? d > 0.0 : d < 0.0) {
    g = mul_rn(k.slope, d);
  }
  return dyn_max(g, dyn_gain_floor_db);
}

/// compressor_stage::to_db.
LATHE_GPU_HD inline double detected_level_db(const comp_constants& k, double detected) {
  if (k.detector == detector_kind::rms) {
    return mul_rn(10.0, log10(dyn_max(detected, dyn_level_floor_amp * dyn_level_floor_amp)));
  }
  return mul_rn(20.0, log10(dyn_max(detected, dyn_level_floor_amp)));
}

/// compressor_stage::smooth: one step of the attack/release recurrence (dB).
LATHE_GPU_HD inline double smooth_step(const comp_constants& k, double state_db, double target_db) {
  const double coeff = mul_rn(sub_rn(target_db, state_db), k.attack_sign) > 0.0 ? k.attack_coeff : k.release_coeff;
  return add_rn(target_db, mul_rn(coeff, sub_rn(state_db, target_db)));
}

/// The linear gain the CPU multiplies by (makeup included), rounded to float as it does.
LATHE_GPU_HD inline float gain_linear(const comp_constants& k, double g_db) {
  return static_cast<float>(exp(mul_rn(add_rn(g_db, k.makeup_db), dyn_ln10_over_20)));
}

/// One stereo track of one compressor pass: where its stream comes from, where the work arrays
/// hold its frames, and where its output goes. Element offsets into the respective arrays.
struct comp_track {
  std::uint64_t src[2] = {0, 0};     // first source sample of lanes 2t, 2t+1 (source array)
  std::uint64_t src_frames = 0;      // source samples per lane; zeros beyond
  std::uint64_t lead = 0;            // zeros before the source in the stream
  std::uint64_t stream_frames = 0;   // T
  std::uint64_t detect[2] = {0, 0};  // first frame of each lane's stream in the suffix array
  std::uint64_t path[2] = {0, 0};    // first frame of each gain path in the gain array (equal if linked)
  std::uint64_t out[2] = {0, 0};     // first output sample of each lane (output array)
  std::uint64_t out_frames = 0;      // output frames per lane
  std::uint64_t read_shift = 0;      // output frame i reads source sample i + read_shift ...
  std::uint64_t gain_shift = 0;      // ... times the gain of stream frame i + gain_shift
  std::uint64_t chunk_begin = 0;     // first smoothing chunk of the track (path 0, then path 1)
  std::uint64_t chunk_count = 0;     // smoothing chunks of the track (all its paths)
};

/// Stream sample t of lane c of a track.
LATHE_GPU_HD inline float stream_sample(const float* src, const comp_track& d, int c, std::uint64_t t) {
  if (t < d.lead) return 0.0f;
  const std::uint64_t j = t - d.lead;
  return j < d.src_frames ? src[d.src[c] + j] : 0.0f;
}

/// What the detector accumulates for one sample: |x| (peak) or the float square x*x (rms),
/// both exact in double.
LATHE_GPU_HD inline double detector_value(const comp_constants& k, float x) {
  if (k.detector == detector_kind::rms) {
    const float sq = x * x;
    return static_cast<double>(sq);
  }
  return static_cast<double>(fabsf(x));
}

LATHE_GPU_HD inline double detector_combine(const comp_constants& k, double a, double b) {
  return k.detector == detector_kind::rms ? add_rn(a, b) : dyn_max(a, b);
}

/// Pass 1 over detector block [start, start + len) of lane c's stream: suffix[t] = combination of
/// the detector values of t .. the block's last frame. `suffix` is the lane's stream base.
LATHE_GPU_HD inline void detector_suffix_block(const comp_constants& k, const float* src, const comp_track& d, int c,
                                               std::uint64_t start, std::uint64_t len, double* suffix) {
  double acc = 0.0;
  for (std::uint64_t i = len; i-- > 0;) {
    const std::uint64_t t = start + i;
    acc = detector_combine(k, acc, detector_value(k, stream_sample(src, d, c, t)));
    suffix[t] = acc;
  }
}

/// Pass 2 over detector block [start, start + len) of a track (both lanes): the window value at
/// each t is the block's prefix up to t combined with the previous block's suffix at t - W + 1
/// (when the window reaches back into it), then the static curve; writes target gains (dB) to
/// target0 (linked, or lane 0) and target1 (independent: lane 1). Reads only suffixes of the
/// previous block, which pass 1 finished.
LATHE_GPU_HD inline void detector_target_block(const comp_constants& k, const float* src, const comp_track& d,
                                               std::uint64_t start, std::uint64_t len, const double* suffix0,
                                               const double* suffix1, double* target0, double* target1) {
  const std::uint64_t w = k.window;
  const double w_frames = static_cast<double>(w);
  double acc0 = 0.0, acc1 = 0.0;
  for (std::uint64_t i = 0; i < len; ++i) {
    const std::uint64_t t = start + i;
    acc0 = detector_combine(k, acc0, detector_value(k, stream_sample(src, d, 0, t)));
    acc1 = detector_combine(k, acc1, detector_value(k, stream_sample(src, d, 1, t)));
    double v0 = acc0, v1 = acc1;
    if (i + 1 < w && start >= w) {  // the window [t - W + 1, t] starts in the previous block
      v0 = detector_combine(k, suffix0[t + 1 - w], acc0);
      v1 = detector_combine(k, suffix1[t + 1 - w], acc1);
    }
    if (k.detector == detector_kind::rms) {
      v0 = dyn_max(v0, 0.0) / w_frames;
      v1 = dyn_max(v1, 0.0) / w_frames;
    }
    if (k.linked != 0) {
      target0[t] = static_gain_db(k, detected_level_db(k, dyn_max(v0, v1)));
    } else {
      target0[t] = static_gain_db(k, detected_level_db(k, v0));
      target1[t] = static_gain_db(k, detected_level_db(k, v1));
    }
  }
}

/// Output frame i of lane c: the source sample times the linear gain of its stream frame
/// (compressor_stage: delayed input times gain; multiband: band sample times gain).
LATHE_GPU_HD inline float comp_output(const comp_constants& k, const float* src, const double* g, const comp_track& d,
                                      int c, std::uint64_t i) {
  return mul_f(src[d.src[c] + i + d.read_shift], gain_linear(k, g[d.path[c] + i + d.gain_shift]));
}

/// multiband_stage's final mix of the band sum and the (aligned) dry input.
LATHE_GPU_HD inline float multiband_mix(float wet_gain, float band_sum, float dry_gain, float dry) {
  return add_f(mul_f(wet_gain, band_sum), mul_f(dry_gain, dry));
}

/// deesser_stage's output: rest + band * g = x + band * (g - 1).
LATHE_GPU_HD inline float deesser_output(float x, float band, float gain) {
  return add_f(x, mul_f(band, sub_f(gain, 1.0f)));
}

/// The de-esser's linked detector input: max over the two channels of the squared detector band
/// (deesser_stage: det = max(det, d * d) from det = 0).
LATHE_GPU_HD inline float deesser_linked_power(float d0, float d1) {
  const float p0 = mul_f(d0, d0), p1 = mul_f(d1, d1);
  const float m = 0.0f < p0 ? p0 : 0.0f;
  return m < p1 ? p1 : m;
}

// ---- chunked fixed-point smoothing -------------------------------------------------------------

/// One chunk of one gain path: frames [begin, begin + len) of the work array, which are stream
/// frames [stream_start, stream_start + len) of the path. Chunks of a path are consecutive in
/// the table and in time order; `first` marks each path's first chunk.
struct smooth_chunk {
  std::uint64_t begin = 0;
  std::uint64_t stream_start = 0;
  std::uint32_t len = 0;
  std::uint32_t first = 0;
};

struct comp_chunk_stats {
  double sum_reduction_db = 0.0;  // sum of -g over the chunk, in time order
  double max_reduction_db = 0.0;  // max of -g (and 0)
};

/// Runs one compressor chunk from `state` over the targets g[begin ..] and returns its end state.
/// With `stats` (the final pass) it overwrites the targets with the smoothed gains (dB) and
/// records the chunk's reduction statistics.
LATHE_GPU_HD inline double comp_smooth_chunk(const comp_constants& k, double* g, const smooth_chunk& c, double state,
                                             comp_chunk_stats* stats) {
  double sum = 0.0, mx = 0.0;
  for (std::uint32_t i = 0; i < c.len; ++i) {
    state = smooth_step(k, state, g[c.begin + i]);
    if (stats != nullptr) {
      g[c.begin + i] = state;
      sum = sub_rn(sum, state);
      mx = dyn_max(mx, -state);
    }
  }
  if (stats != nullptr) *stats = comp_chunk_stats{sum, mx};
  return state;
}

/// The start guess of a compressor chunk: the CPU's 0 dB for a path's first chunk, else the
/// chunk's first target (where the state is heading anyway).
LATHE_GPU_HD inline double comp_start_guess(const double* g, const smooth_chunk& c) {
  return c.first != 0 ? 0.0 : g[c.begin];
}

/// De-esser constants, as deesser_stage::prepare derives them.
struct deesser_constants {
  double power_coeff = 0.0;
  double attack_coeff = 0.0;
  double release_coeff = 0.0;
  double slope = 0.0;  // 1 - 1 / ratio
  double threshold_db = 0.0;
  double max_reduction_db = 0.0;
  std::uint64_t flush_period = 1;  // the chain's block size: power is flushed at each block end
};

struct deesser_state {
  double power = 0.0;
  double reduction_db = 0.0;
};

struct deesser_chunk_stats {
  double max_reduction_db = 0.0;
  double sum_reduction_db = 0.0;
  std::uint64_t active_frames = 0;
};

/// Runs one de-esser chunk from `s` over the linked detector powers det[begin ..] (float, the
/// max over channels of the squared detector band) and returns its end state. With `stats` (the
/// final pass) it overwrites det with the band gain (float, 1 = untouched) and records stats.
/// Operation for operation deesser_stage::process's loop, including the flush of tiny powers at
/// the end of every chain block (stream frames t with (t + 1) % flush_period == 0).
LATHE_GPU_HD inline deesser_state deesser_smooth_chunk(const deesser_constants& k, float* det, const smooth_chunk& c,
                                                       deesser_state s, deesser_chunk_stats* stats) {
  const double kp = k.power_coeff, ka = k.attack_coeff, kr = k.release_coeff;
  double power = s.power, red = s.reduction_db;
  double mx = 0.0, sum = 0.0;
  std::uint64_t active = 0;
  for (std::uint32_t i = 0; i < c.len; ++i) {
    power = add_rn(mul_rn(kp, power), mul_rn(sub_rn(1.0, kp), static_cast<double>(det[c.begin + i])));
    double target = 0.0;
    if (power > 0.0) {
      const double over = sub_rn(mul_rn(10.0, log10(power)), k.threshold_db);
      if (over > 0.0) target = dyn_min(k.max_reduction_db, mul_rn(over, k.slope));
    }
    red = add_rn(target, mul_rn(target > red ? ka : kr, sub_rn(red, target)));
    if (target == 0.0 && red < deesser_reduction_floor_db) red = 0.0;
    if (stats != nullptr) {
      det[c.begin + i] = red == 0.0 ? 1.0f : static_cast<float>(pow(10.0, -red / 20.0));
      mx = dyn_max(mx, red);
      sum = add_rn(sum, red);
      active += red > 0.0 ? 1 : 0;
    }
    if ((c.stream_start + i + 1) % k.flush_period == 0 && power < deesser_power_flush) power = 0.0;
  }
  if (stats != nullptr) *stats = deesser_chunk_stats{mx, sum, active};
  return deesser_state{power, red};
}

LATHE_GPU_HD inline deesser_state deesser_start_guess(const float* det, const smooth_chunk& c) {
  return c.first != 0 ? deesser_state{} : deesser_state{static_cast<double>(det[c.begin]), 0.0};
}

LATHE_GPU_HD inline std::uint64_t double_bits(double x) {
#ifdef __CUDA_ARCH__
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}
LATHE_GPU_HD inline bool same_bits(double a, double b) {
  return double_bits(a) == double_bits(b);
}
LATHE_GPU_HD inline bool same_bits(const deesser_state& a, const deesser_state& b) {
  return same_bits(a.power, b.power) && same_bits(a.reduction_db, b.reduction_db);
}

/// The fixed-point update of chunk c: start[c] := end[c - 1] unless c starts its path. Returns
/// whether start[c] changed (bitwise). Each chunk writes only its own start and reads only the
/// previous end, so all chunks may update at once.
template <class State>
LATHE_GPU_HD inline bool propagate_start(const smooth_chunk* chunks, std::size_t c, const State* end, State* start) {
  if (chunks[c].first != 0) return false;
  const State v = end[c - 1];
  if (same_bits(v, start[c])) return false;
  start[c] = v;
  return true;
}

}  // namespace lathe::gpu::detail

// ---- host-side planning (shared by kernels/dsp/dynamics.cu and the CPU emulation test) -------------
#include <algorithm>
#include <bit>
#include <vector>

#include "lathe/crossover.hpp"
#include "lathe/deesser.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/error.hpp"
#include "lathe/multiband.hpp"

namespace lathe::gpu::detail {

/// The block size of the CPU chain (apply_prechain's stream_spec::max_block_frames): run_aligned
/// pushes blocks of this size, and the stream length and the de-esser's power flush depend on it.
inline constexpr std::size_t chain_block_frames = 8192;

/// Frames a stage of latency `latency` processes inside lathe::run_aligned(stage, buf, block) for
/// a buffer of `frames` frames: the buffer, then blocks of zeros until `frames` outputs past the
/// latency were kept (the last block may overshoot). Its statistics count all of them.
inline std::uint64_t run_aligned_stream_frames(std::uint64_t frames, std::uint64_t latency, std::uint64_t block) {
  LATHE_EXPECTS(block > 0, "run_aligned block size must be positive");
  std::uint64_t produced = frames;
  std::uint64_t written = frames > latency ? frames - latency : 0;
  while (written < frames) {
    produced += std::min(block, frames - written + latency);
    written = std::min(frames, produced > latency ? produced - latency : 0);
  }
  return produced;
}

inline std::uint64_t ms_to_frames(double ms, double fs_hz) {
  return static_cast<std::uint64_t>(std::llround(ms * 1e-3 * fs_hz));  // as src/dsp/dynamics.cpp
}

/// compressor_stage::prepare's constants (validates params by running it: throws lathe::error).
inline comp_constants make_comp_constants(const compressor_params& p, double fs_hz) {
  compressor_stage check(p);
  check.prepare(stream_spec{fs_hz, 2, 1});
  comp_constants k;
  k.threshold_db = p.threshold_db;
  k.ratio = p.ratio;
  k.knee_db = p.knee_db;
  k.slope = 1.0 / p.ratio - 1.0;
  k.attack_coeff = p.attack_ms <= 0.0 ? 0.0 : std::exp(-1.0 / (p.attack_ms * 1e-3 * fs_hz));
  k.release_coeff = p.release_ms <= 0.0 ? 0.0 : std::exp(-1.0 / (p.release_ms * 1e-3 * fs_hz));
  k.attack_sign = p.ratio >= 1.0 ? -1.0 : 1.0;
  k.makeup_db = p.makeup_db;
  k.window = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, ms_to_frames(p.detector_window_ms, fs_hz)));
  k.detector = p.detector == level_detector::rms ? detector_kind::rms : detector_kind::peak;
  k.linked = p.link == stereo_link::linked ? 1u : 0u;
  return k;
}

inline std::uint64_t comp_lookahead_frames(const compressor_params& p, double fs_hz) {
  return ms_to_frames(p.lookahead_ms, fs_hz);
}

/// deesser_stage::prepare's constants (validates params by running it).
inline deesser_constants make_deesser_constants(const deesser_params& p, double fs_hz) {
  deesser_stage check(p);
  check.prepare(stream_spec{fs_hz, 2, 1});
  auto one_pole = [&](double tau_ms) { return std::exp(-1.0 / (tau_ms * 1e-3 * fs_hz)); };
  deesser_constants k;
  k.power_coeff = one_pole(p.detector_rms_ms);
  k.attack_coeff = one_pole(p.attack_ms);
  k.release_coeff = one_pole(p.release_ms);
  k.slope = 1.0 - 1.0 / p.ratio;
  k.threshold_db = p.threshold_db;
  k.max_reduction_db = p.max_reduction_db;
  k.flush_period = chain_block_frames;
  return k;
}

inline constexpr std::size_t min_smoothing_chunk_frames = 4096;
inline constexpr std::size_t max_smoothing_chunk_frames = 65536;

/// Chunk length of the fixed-point smoothing: the smallest power of two in [4096, 65536] over
/// which the slowest one-pole of the recurrence decays below 1e-4 (so a wrong start state is
/// forgotten to ~1e-4 within one chunk and to the last bit within a few iterations).
/// Coefficients 0 (instant) count as fast.
inline std::size_t smoothing_chunk_frames(double slowest_coeff) {
  if (!(slowest_coeff > 0.0)) return min_smoothing_chunk_frames;
  if (!(slowest_coeff < 1.0)) return max_smoothing_chunk_frames;
  const double need = std::log(1e-4) / std::log(slowest_coeff);
  if (!(need < static_cast<double>(max_smoothing_chunk_frames))) return max_smoothing_chunk_frames;
  const auto n = std::bit_ceil(static_cast<std::size_t>(std::ceil(need)));
  return std::clamp(n, min_smoothing_chunk_frames, max_smoothing_chunk_frames);
}

/// Appends the chunks of one gain path of `frames` stream frames stored at work-array offset
/// `begin`.
inline void add_path_chunks(std::vector<smooth_chunk>& chunks, std::uint64_t begin, std::uint64_t frames,
                            std::size_t chunk_frames) {
  for (std::uint64_t s = 0; s < frames; s += chunk_frames) {
    smooth_chunk c;
    c.begin = begin + s;
    c.stream_start = s;
    c.len = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_frames, frames - s));
    c.first = s == 0 ? 1u : 0u;
    chunks.push_back(c);
  }
}

/// Where a compressor pass over a batch of stereo tracks keeps its work: the track table and
/// the sizes of the per-lane suffix array and the per-path gain array.
struct comp_pass_plan {
  std::vector<comp_track> tracks;
  std::vector<smooth_chunk> chunks;
  std::uint64_t detect_frames = 0;  // suffix array length (both lanes of every track)
  std::uint64_t gain_frames = 0;    // gain array length (every path)
  std::uint64_t max_stream_frames = 0, max_out_frames = 0;
};

/// Geometry of one track in a compressor pass: source lanes (offsets into the source array),
/// output lanes (offsets into the output array), and the stream mapping.
struct comp_track_geometry {
  std::uint64_t src[2] = {0, 0};
  std::uint64_t src_frames = 0;
  std::uint64_t lead = 0;
  std::uint64_t stream_frames = 0;
  std::uint64_t out[2] = {0, 0};
  std::uint64_t out_frames = 0;
  std::uint64_t read_shift = 0;
  std::uint64_t gain_shift = 0;
};

inline comp_pass_plan make_comp_pass_plan(const std::vector<comp_track_geometry>& geometry, const comp_constants& k,
                                          std::size_t chunk_frames) {
  comp_pass_plan plan;
  for (const comp_track_geometry& g : geometry) {
    LATHE_EXPECTS(g.out_frames == 0 || g.out_frames - 1 + g.gain_shift < g.stream_frames,
                  "compressor pass: output frames need gains past the stream");
    comp_track d;
    d.src[0] = g.src[0];
    d.src[1] = g.src[1];
    d.src_frames = g.src_frames;
    d.lead = g.lead;
    d.stream_frames = g.stream_frames;
    d.detect[0] = plan.detect_frames;
    d.detect[1] = plan.detect_frames + g.stream_frames;
    plan.detect_frames += 2 * g.stream_frames;
    d.path[0] = plan.gain_frames;
    d.path[1] = k.linked != 0 ? d.path[0] : plan.gain_frames + g.stream_frames;
    const int paths = k.linked != 0 ? 1 : 2;
    d.out[0] = g.out[0];
    d.out[1] = g.out[1];
    d.out_frames = g.out_frames;
    d.read_shift = g.read_shift;
    d.gain_shift = g.gain_shift;
    d.chunk_begin = plan.chunks.size();
    for (int p = 0; p < paths; ++p) add_path_chunks(plan.chunks, d.path[p], g.stream_frames, chunk_frames);
    d.chunk_count = plan.chunks.size() - d.chunk_begin;
    plan.gain_frames += static_cast<std::uint64_t>(paths) * g.stream_frames;
    plan.max_stream_frames = std::max(plan.max_stream_frames, g.stream_frames);
    plan.max_out_frames = std::max(plan.max_out_frames, g.out_frames);
    plan.tracks.push_back(d);
  }
  return plan;
}

/// Per-track dynamics_stats from the chunk stats of a pass, summed in chunk (= time, path 0 then
/// path 1) order on the host.
inline std::vector<dynamics_stats> comp_pass_stats(const comp_pass_plan& plan, const comp_constants& k,
                                                   const std::vector<comp_chunk_stats>& chunk_stats) {
  std::vector<dynamics_stats> out(plan.tracks.size());
  for (std::size_t t = 0; t < plan.tracks.size(); ++t) {
    const comp_track& d = plan.tracks[t];
    double sum = 0.0, mx = 0.0;
    for (std::uint64_t c = d.chunk_begin; c < d.chunk_begin + d.chunk_count; ++c) {
      sum += chunk_stats[c].sum_reduction_db;
      mx = std::max(mx, chunk_stats[c].max_reduction_db);
    }
    const double paths = k.linked != 0 ? 1.0 : 2.0;
    out[t].frames = d.stream_frames;
    out[t].max_gain_reduction_db = mx;
    out[t].mean_gain_reduction_db = d.stream_frames == 0 ? 0.0 : sum / (static_cast<double>(d.stream_frames) * paths);
  }
  return out;
}

/// Geometry of the standalone compressor over a layout of stereo tracks: run_aligned semantics
/// (output frame i = input i times the gain of stream frame i + lookahead).
inline std::vector<comp_track_geometry> compressor_geometry(const std::vector<std::uint64_t>& lane_offset,
                                                            const std::vector<std::uint64_t>& lane_frames,
                                                            std::uint64_t lookahead, std::uint64_t block) {
  LATHE_EXPECTS(lane_frames.size() % 2 == 0, "a stereo batch has two lanes per track");
  std::vector<comp_track_geometry> out(lane_frames.size() / 2);
  for (std::size_t t = 0; t < out.size(); ++t) {
    LATHE_EXPECTS(lane_frames[2 * t] == lane_frames[2 * t + 1], "both lanes of a track must have the same length");
    comp_track_geometry& g = out[t];
    const std::uint64_t n = lane_frames[2 * t];
    g.src[0] = g.out[0] = lane_offset[2 * t];
    g.src[1] = g.out[1] = lane_offset[2 * t + 1];
    g.src_frames = g.out_frames = n;
    g.lead = 0;
    g.stream_frames = n == 0 ? 0 : run_aligned_stream_frames(n, lookahead, block);
    g.read_shift = 0;
    g.gain_shift = lookahead;
  }
  return out;
}

/// The multiband stage's fixed geometry at one rate (validated as multiband_stage::prepare does).
struct multiband_geometry {
  std::size_t taps = 0;                    // crossover FIR taps (odd)
  std::size_t partition = 0;               // the CPU crossover convolver's latency (its partition size)
  std::uint64_t latency = 0;               // (taps - 1) / 2 + partition + max lookahead
  std::vector<std::uint64_t> lookahead;    // per band
  std::vector<std::vector<double>> bands;  // band FIRs in float64
};

inline multiband_geometry make_multiband_geometry(const multiband_params& p, double fs_hz) {
  LATHE_EXPECTS(p.bands.size() == p.crossover.crossover_hz.size() + 1,
                "multiband needs one compressor per band (crossover frequencies + 1)");
  LATHE_EXPECTS(p.dry_wet >= 0.0 && p.dry_wet <= 1.0, "multiband dry_wet must lie in [0, 1]");
  LATHE_EXPECTS(std::abs(p.output_gain_db) <= 60.0, "multiband output_gain_db must lie within +-60 dB");
  const std::size_t b = p.crossover.partition_frames;
  LATHE_EXPECTS(b >= 64 && (b & (b - 1)) == 0, "crossover partition_frames must be a power of two >= 64");
  multiband_geometry g;
  g.taps = p.crossover.fir_taps != 0 ? p.crossover.fir_taps : crossover_auto_taps(p.crossover.crossover_hz, fs_hz);
  g.bands = design_crossover_bands(p.crossover.crossover_hz, fs_hz, g.taps);  // validates
  g.partition = b;
  std::uint64_t max_lookahead = 0;
  for (const compressor_params& c : p.bands) {
    (void)make_comp_constants(c, fs_hz);  // validates
    g.lookahead.push_back(comp_lookahead_frames(c, fs_hz));
    max_lookahead = std::max(max_lookahead, g.lookahead.back());
  }
  g.latency = (g.taps - 1) / 2 + b + max_lookahead;
  return g;
}

/// Geometry of band k's compressor pass. The CPU band compressor sees the crossover convolver's
/// output: `partition` zeros, then the full causal convolution z = h_k * x (n + taps - 1 samples,
/// which the GPU computes into an extended lane), then zeros, for the multiband's whole stream.
/// Aligned output frame i of the band is z[i + (taps - 1) / 2] times the gain of stream frame
/// i + partition + (taps - 1) / 2 + lookahead_k (the band's alignment delay cancels the rest).
inline std::vector<comp_track_geometry> multiband_band_geometry(const multiband_geometry& mb, std::size_t band,
                                                                const std::vector<std::uint64_t>& ext_offset,
                                                                const std::vector<std::uint64_t>& out_offset,
                                                                const std::vector<std::uint64_t>& lane_frames,
                                                                std::uint64_t block) {
  std::vector<comp_track_geometry> out(lane_frames.size() / 2);
  const std::uint64_t half = (mb.taps - 1) / 2;
  for (std::size_t t = 0; t < out.size(); ++t) {
    comp_track_geometry& g = out[t];
    const std::uint64_t n = lane_frames[2 * t];
    g.src[0] = ext_offset[2 * t];
    g.src[1] = ext_offset[2 * t + 1];
    g.src_frames = n + mb.taps - 1;
    g.lead = mb.partition;
    g.stream_frames = n == 0 ? 0 : run_aligned_stream_frames(n, mb.latency, block);
    g.out[0] = out_offset[2 * t];
    g.out[1] = out_offset[2 * t + 1];
    g.out_frames = n;
    g.read_shift = half;
    g.gain_shift = mb.partition + half + mb.lookahead[band];
  }
  return out;
}

}  // namespace lathe::gpu::detail
