#include "lathe/mix_notes.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "lathe/error.hpp"
#include "lathe/loudness.hpp"
#include "lathe/spill.hpp"
#include "lathe/stereo.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {

const char* to_string(note_severity s) noexcept {
  switch (s) {
    case note_severity::info:
      return "info";
    case note_severity::warning:
      return "warning";
    case note_severity::problem:
      return "problem";
  }
  return "warning";
}

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
// The level grid of the head/tail, headroom, limiter and polarity checks: 10 ms is short enough
// to place a cut or a fade and long enough that a tick of steady hiss reads its level within ~1 dB.
constexpr double tick_s = 0.010;
constexpr std::size_t momentary_ticks = 40;  // 400 ms, BS.1770's momentary window
constexpr std::size_t window_ticks = 300;    // 3 s, the short-term window, for the limiter check
constexpr std::size_t min_head_ticks = 5;    // a head or tail shorter than 50 ms is not judged
constexpr double floor_percentile = 0.1;     // of a head's or tail's 10 ms slices: its noise floor
constexpr double polarity_window_s = 0.4;
// A peak this close to the track's peak counts as "at the ceiling" (limiter check).
constexpr double pinned_peak_db = 0.3;
// Share of the programme's 3 s windows that must peak at the ceiling to call it limited.
constexpr double pinned_share = 0.5;
// Bands over which sub-bass and harshness are summed: the 1/3-octave bands whose centres lie in
// these ranges (nominal 20..50 Hz, edges 17.5..55.7 Hz; nominal 2..5 kHz, edges 1.78..5.66 kHz).
constexpr double sub_bass_lo_hz = 19.0, sub_bass_hi_hz = 60.0;
constexpr double harsh_lo_hz = 1'900.0, harsh_hi_hz = 6'000.0;
// Upsampling check: an upsampled 44.1 or 48 kHz source has nothing above 24 kHz but the
// resampler's stop band (< -100 dB); real high-rate recordings carry cymbals, air and converter
// noise there at -60 .. -90 dB re the whole spectrum.
constexpr double ultrasonic_lo_hz = 24'000.0;
constexpr double ultrasonic_floor_db = -90.0;
constexpr double small_speaker_split_hz = 150.0;
constexpr std::size_t times_named = 3;  // occurrences spelled out in `where`
constexpr std::size_t times_kept = 8;   // occurrences kept in times_s

double power_db(double p) noexcept {
  return p > 0.0 ? 10.0 * std::log10(p) : -inf;
}
double amplitude_db(double a) noexcept {
  return a > 0.0 ? 20.0 * std::log10(a) : -inf;
}
double db_to_power(double db) noexcept {
  return std::pow(10.0, db / 10.0);
}
double db_to_amplitude(double db) noexcept {
  return std::pow(10.0, db / 20.0);
}

// JSON has no infinities: a level of digital silence is written as null.
nlohmann::json db_json(double db) {
  return std::isfinite(db) ? nlohmann::json(db) : nlohmann::json(nullptr);
}

std::string signed_db(double db) {
  return std::isfinite(db) ? fmt::format("{:+.1f}", db) : (db < 0 ? "-inf" : "+inf");
}

// "m:ss.mmm" (or "h:mm:ss.mmm"), the way an editor's timeline shows a position.
std::string format_time(double seconds) {
  const long long ms = std::llround(std::max(0.0, seconds) * 1000.0);
  const long long h = ms / 3'600'000, m = ms / 60'000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
  return h > 0 ? fmt::format("{}:{:02}:{:02}.{:03}", h, m, s, frac) : fmt::format("{}:{:02}.{:03}", m, s, frac);
}

// "at 0:42.310, 1:03.002 and 3 more" from the first times of `total` occurrences.
std::string where_times(std::span<const double> times, std::size_t total) {
  const std::size_t named = std::min({times.size(), times_named, total});
  std::string s = "at ";
  for (std::size_t i = 0; i < named; ++i) {
    if (i > 0) s += (i + 1 == named && total == named) ? " and " : ", ";
    s += format_time(times[i]);
  }
  if (total > named) s += fmt::format(" and {} more", total - named);
  return s;
}

const char* channel_name(int c) {
  return c == 0 ? "left" : (c == 1 ? "right" : "other");
}

mix_note make_note(const char* code, note_severity severity) {
  mix_note n;
  n.code = code;
  n.severity = severity;
  n.figures = nlohmann::json::object();
  return n;
}

// ---- reading the track -----------------------------------------------------------------------

// Frames of the decoded track through a window of at least window_frames frames, reloaded from
// the spill on a miss, so the checks read any length of track in bounded memory. A view stays
// valid until the next call.
class audio_window {
 public:
  static constexpr std::size_t window_frames = 1 << 16;
  explicit audio_window(const audio_spill& s) : s_(s), buf_(s.channels(), 0) {}
  std::size_t frames() const noexcept { return s_.frames(); }
  int channels() const noexcept { return s_.channels(); }
  /// Frames [first, last) of every channel; last <= frames().
  const_block_view view(std::size_t first, std::size_t last) {
    if (first < start_ || last > start_ + loaded_) {
      const std::size_t n = std::min(frames() - first, std::max(last - first, window_frames));
      if (buf_.frames() < n) buf_.resize(channels(), n);
      s_.read(first, buf_.view(0, n));
      start_ = first;
      loaded_ = n;
    }
    return std::as_const(buf_).view(first - start_, last - first);
  }
  /// Calls f(first, block) over the whole track in consecutive blocks whose length is a
  /// multiple of `multiple` frames (but the last).
  template <class F>
  void for_each_block(std::size_t multiple, F&& f) {
    const std::size_t step = std::max<std::size_t>(1, window_frames / multiple) * multiple;
    for (std::size_t pos = 0; pos < frames(); pos += step) {
      const std::size_t last = std::min(frames(), pos + step);
      f(pos, view(pos, last));
    }
  }

 private:
  const audio_spill& s_;
  audio_buffer buf_;
  std::size_t start_ = 0, loaded_ = 0;
};

// ---- the level grid --------------------------------------------------------------------------

// Per 10 ms tick: the mean over channels of the variance (the mean square about the tick's own
// mean, so a DC offset is reported once, as such, and never as noise or as programme; removing the
// track's mean instead would turn digital silence into "noise" at the offset's level), and the
// sample peak over channels (DC included: that is what reaches full scale).
struct level_grid {
  std::size_t tick_frames = 0, frames = 0;
  double sample_rate_hz = 0.0;
  std::vector<double> power;
  std::vector<float> peak;
  std::size_t ticks() const noexcept { return power.size(); }
  double start_s(std::size_t t) const noexcept { return static_cast<double>(t * tick_frames) / sample_rate_hz; }
};

// Variance of x[first, last) in float64.
double slice_variance(const float* x, std::size_t first, std::size_t last) noexcept {
  double sum = 0.0, sum_sq = 0.0;
  for (std::size_t i = first; i < last; ++i) {
    const double v = x[i];
    sum += v;
    sum_sq += v * v;
  }
  const double n = static_cast<double>(last - first), mean = sum / n;
  return std::max(0.0, sum_sq / n - mean * mean);
}

level_grid scan_levels(audio_window& a, double fs) {
  level_grid g;
  g.sample_rate_hz = fs;
  g.tick_frames = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(tick_s * fs)));
  const std::size_t n = a.frames();
  g.frames = n;
  const std::size_t ticks = (n + g.tick_frames - 1) / g.tick_frames;
  g.power.assign(ticks, 0.0);
  g.peak.assign(ticks, 0.0f);
  for (int c = 0; c < a.channels(); ++c) {
    for (std::size_t t = 0; t < ticks; ++t) {
      const std::size_t first = t * g.tick_frames, last = std::min(n, first + g.tick_frames);
      const float* x = a.view(first, last)[c];
      float peak = 0.0f;
      for (std::size_t i = 0; i < last - first; ++i) peak = std::max(peak, std::abs(x[i]));
      g.power[t] += slice_variance(x, 0, last - first) / a.channels();
      g.peak[t] = std::max(g.peak[t], peak);
    }
  }
  return g;
}

// Where the programme (the music) starts and ends: the first (last) tick at or above a threshold
// whose following (preceding) 400 ms also averages above it, so a click in the lead-in or a stray
// noise in the tail does not count as the start. The threshold is 30 dB under the programme's
// loud level (95th percentile of the ticks), at least -50 dBFS, and at most 10 dB under the loud
// level so a very quiet track still has a start.
struct programme_span {
  bool found = false;
  std::size_t first = 0, last = 0;  // ticks, inclusive
  double threshold_db = -inf;
  double loud_db = -inf;
};

programme_span find_programme(const level_grid& g) {
  programme_span s;
  const std::size_t n = g.ticks();
  if (n == 0) return s;
  std::vector<double> sorted = g.power;
  const std::size_t k = std::min(n - 1, static_cast<std::size_t>(0.95 * static_cast<double>(n)));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
  s.loud_db = power_db(sorted[k]);
  if (!std::isfinite(s.loud_db)) return s;
  s.threshold_db = std::min(std::max(-50.0, s.loud_db - 30.0), s.loud_db - 10.0);
  const double thr = db_to_power(s.threshold_db);
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t t = 0; t < n; ++t) prefix[t + 1] = prefix[t] + g.power[t];
  auto mean = [&](std::size_t a, std::size_t b) { return (prefix[b] - prefix[a]) / static_cast<double>(b - a); };
  for (std::size_t t = 0; t < n && !s.found; ++t) {
    if (g.power[t] >= thr && mean(t, std::min(n, t + momentary_ticks)) >= thr) {
      s.found = true;
      s.first = t;
    }
  }
  if (!s.found) return s;
  for (std::size_t t = n; t-- > s.first;) {
    if (g.power[t] >= thr && mean(t + 1 - std::min(t + 1, momentary_ticks), t + 1) >= thr) {
      s.last = t;
      break;
    }
  }
  return s;
}

// ---- the checks ------------------------------------------------------------------------------

void clipping_notes(const track_analysis& an, std::vector<mix_note>& out) {
  for (int c = 0; c < an.channels; ++c) {
    std::vector<const clip_run*> runs;
    for (const clip_run& r : an.clip_runs)
      if (r.channel == c) runs.push_back(&r);
    if (runs.empty()) continue;
    std::sort(runs.begin(), runs.end(), [](auto* a, auto* b) { return a->start_frame < b->start_frame; });
    std::size_t longest = 0, samples = 0;
    std::vector<double> times;
    for (const clip_run* r : runs) {
      longest = std::max(longest, r->length_frames);
      samples += r->length_frames;
      if (times.size() < times_kept) times.push_back(r->start_s);
    }
    mix_note n = make_note("clipping", note_severity::problem);
    n.what = fmt::format("Clipped samples on the {} channel", channel_name(c));
    n.where = where_times(times, runs.size());
    n.how_bad = fmt::format(
        "{} run{} of {} or more consecutive full-scale samples, longest {} samples ({:.2f} ms); {} "
        "clipped samples in all",
        runs.size(), runs.size() == 1 ? "" : "s", min_clip_run_frames, longest,
        1000.0 * static_cast<double>(longest) / an.sample_rate_hz, samples);
    n.advice =
        "Something in the mix chain hits 0 dBFS. Pull the master fader (or the mix-bus limiter's output) down until "
        "nothing reaches full scale, by 1 dB or more, and re-export at 24-bit or 32-bit float. Clipping cannot be "
        "undone in mastering.";
    n.times_s = times;
    n.figures = {{"channel", channel_name(c)},
                 {"runs", runs.size()},
                 {"longest_run_frames", longest},
                 {"longest_run_ms", 1000.0 * static_cast<double>(longest) / an.sample_rate_hz},
                 {"clipped_samples", samples}};
    out.push_back(std::move(n));
  }
}

// Inter-sample overs: frames whose interpolated peak (true_peak_interpolator, 8x below 88.2 kHz)
// exceeds the threshold while no sample within the interpolator's reach is at full scale (those
// are clipping, reported as such). Only the stretches that can hold an over are interpolated: a
// point between samples is a weighted sum of the neighbouring samples, so it is at most
// sum |h| (the largest phase's) times their largest magnitude; ticks whose neighbourhood peak
// is under threshold / sum |h| are skipped exactly, not by a guess.
void intersample_note(audio_window& a, double fs, const track_analysis& an, const level_grid& g,
                      const mix_check_params& p, std::vector<mix_note>& out) {
  if (!(an.true_peak_dbtp > p.intersample_dbtp)) return;
  const float threshold = static_cast<float>(db_to_amplitude(p.intersample_dbtp));
  true_peak_interpolator tp;
  tp.prepare(fs);
  const std::size_t phase_len = tp.phase_length(), latency = tp.latency_frames();
  double gain_bound = 1.0;
  for (int ph = 0; ph < tp.factor(); ++ph) {
    double s = 0.0;
    for (std::size_t k = 0; k < phase_len; ++k)
      s += std::abs(tp.coefficients()[static_cast<std::size_t>(ph) * phase_len + k]);
    gain_bound = std::max(gain_bound, s);
  }
  // One tick of margin each side covers the interpolator's reach (phase_len < tick_frames at
  // any rate the decoder accepts: 33 frames vs 80 at 8 kHz).
  const std::size_t frames = a.frames(), ticks = g.ticks();
  const float candidate = static_cast<float>(threshold / (gain_bound * 1.0001));
  std::vector<char> live(ticks, 0);
  for (std::size_t t = 0; t < ticks; ++t)
    if (g.peak[t] >= candidate)
      for (std::size_t u = t > 0 ? t - 1 : 0; u <= std::min(ticks - 1, t + 1); ++u) live[u] = 1;

  // Overs closer than 10 ms are one event (one transient, one chord hit). Stretches are read in
  // pieces in time order, each with both channels, so the overs arrive sorted piece by piece.
  std::vector<double> times;
  std::size_t events = 0, overs_total = 0, prev_frame = 0;
  float highest = 0.0f;
  std::vector<std::size_t> overs;  // one piece's frames, both channels
  std::vector<float> feed, peaks;
  std::vector<std::size_t> near_full;  // per feed frame: distance to the nearest full-scale sample
  const std::size_t reach = phase_len;
  // A piece inside a stretch starts its feed this far back, so its interpolator holds the same
  // history and its full-scale search sees the same neighbours as a feed of the whole stretch.
  const std::size_t margin = reach + latency + phase_len + 1;
  constexpr std::size_t piece_frames = 1 << 16;
  for (std::size_t t = 0; t < ticks;) {
    if (!live[t]) {
      ++t;
      continue;
    }
    std::size_t e = t;
    while (e < ticks && live[e]) ++e;
    const std::size_t first = t * g.tick_frames, last = std::min(frames, e * g.tick_frames);
    // The stretch's feed is [first - reach, last + latency + 1): frames outside the track are
    // zeros, as true_peak_of assumes; output k of a feed from `start` describes frame start + k - latency.
    const std::ptrdiff_t feed_first = static_cast<std::ptrdiff_t>(first) - static_cast<std::ptrdiff_t>(reach);
    const auto feed_end = static_cast<std::ptrdiff_t>(last + latency + 1);
    for (std::size_t pa = first; pa < last; pa += piece_frames) {
      const std::size_t pb = std::min(last, pa + piece_frames);
      const std::ptrdiff_t start =
          std::max(feed_first, static_cast<std::ptrdiff_t>(pa) - static_cast<std::ptrdiff_t>(margin));
      const std::ptrdiff_t end = std::min(feed_end, static_cast<std::ptrdiff_t>(pb + reach + latency + 1));
      const auto feed_len = static_cast<std::size_t>(end - start);
      const std::size_t lo = static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, start));
      const std::size_t hi =
          static_cast<std::size_t>(std::min<std::ptrdiff_t>(end, static_cast<std::ptrdiff_t>(frames)));
      const const_block_view src = a.view(lo, hi);
      overs.clear();
      for (int c = 0; c < a.channels(); ++c) {
        feed.assign(feed_len, 0.0f);
        std::copy_n(src[c], hi - lo, feed.begin() + (static_cast<std::ptrdiff_t>(lo) - start));
        peaks.assign(feed_len, 0.0f);
        tp.reset();
        tp.process(feed.data(), peaks.data(), feed_len);
        // Distance to the nearest full-scale sample, computed forwards and backwards.
        near_full.assign(feed_len, std::numeric_limits<std::size_t>::max());
        std::size_t prev = std::numeric_limits<std::size_t>::max();
        for (std::size_t j = 0; j < feed_len; ++j) {
          if (std::abs(feed[j]) >= clip_level) prev = j;
          if (prev != std::numeric_limits<std::size_t>::max()) near_full[j] = j - prev;
        }
        std::size_t next = std::numeric_limits<std::size_t>::max();
        for (std::size_t j = feed_len; j-- > 0;) {
          if (std::abs(feed[j]) >= clip_level) next = j;
          if (next != std::numeric_limits<std::size_t>::max()) near_full[j] = std::min(near_full[j], next - j);
        }
        for (std::size_t i = pa; i < pb; ++i) {
          const auto j = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(i) - start);  // feed index of frame i
          const float v = peaks[j + latency];
          if (v > threshold && near_full[j] > reach) {
            overs.push_back(i);
            highest = std::max(highest, v);
          }
        }
      }
      std::sort(overs.begin(), overs.end());
      for (const std::size_t o : overs) {
        if (overs_total == 0 || o - prev_frame > g.tick_frames) {
          ++events;
          if (times.size() < times_kept) times.push_back(static_cast<double>(o) / fs);
        }
        prev_frame = o;
        ++overs_total;
      }
    }
    t = e;
  }
  if (overs_total == 0) return;
  mix_note n = make_note("intersample_clipping", note_severity::warning);
  n.what =
      fmt::format("Inter-sample peaks over {:.1f} dBTP while the samples stay under full scale", p.intersample_dbtp);
  n.where = where_times(times, events);
  n.how_bad = fmt::format("{} place{}; the highest reaches {} dBTP (sample peak {:.2f} dBFS)", events,
                          events == 1 ? "" : "s", signed_db(amplitude_db(highest)), an.sample_peak_dbfs);
  n.advice =
      "The reconstructed waveform goes over full scale between the samples, so D/A converters and lossy encoders "
      "(MP3, AAC, Ogg) will clip there. Use a true-peak limiter or lower the limiter's ceiling to -1 dBTP; better, "
      "send the mix without bus limiting and leave peak control to mastering.";
  n.times_s = times;
  n.figures = {{"events", events},
               {"frames_over", overs_total},
               {"highest_dbtp", amplitude_db(highest)},
               {"true_peak_dbtp", db_json(an.true_peak_dbtp)},
               {"sample_peak_dbfs", db_json(an.sample_peak_dbfs)},
               {"threshold_dbtp", p.intersample_dbtp}};
  out.push_back(std::move(n));
}

void headroom_note(audio_window& a, double fs, const track_analysis& an, const level_grid& g, const mix_check_params& p,
                   std::vector<mix_note>& out) {
  // Clipping says the same thing louder; one note per cause.
  if (!an.clip_runs.empty() || !(an.sample_peak_dbfs > p.headroom_dbfs) || g.ticks() == 0) return;
  const auto loudest = static_cast<std::size_t>(std::max_element(g.peak.begin(), g.peak.end()) - g.peak.begin());
  // The exact frame of the peak inside its tick.
  std::size_t frame = loudest * g.tick_frames;
  float best = -1.0f;
  const std::size_t tick_first = loudest * g.tick_frames;
  const const_block_view tick = a.view(tick_first, std::min(a.frames(), (loudest + 1) * g.tick_frames));
  for (int c = 0; c < a.channels(); ++c)
    for (std::size_t i = 0; i < tick.frames; ++i)
      if (std::abs(tick[c][i]) > best) best = std::abs(tick[c][i]), frame = tick_first + i;
  const float thr = static_cast<float>(db_to_amplitude(p.headroom_dbfs));
  const auto above =
      static_cast<std::size_t>(std::count_if(g.peak.begin(), g.peak.end(), [&](float v) { return v > thr; }));
  const double share = static_cast<double>(above) / static_cast<double>(g.ticks());
  mix_note n = make_note("headroom", note_severity::warning);
  n.what = fmt::format("Little headroom: peaks reach {:.1f} dBFS", an.sample_peak_dbfs);
  n.where = fmt::format("loudest peak at {}", format_time(static_cast<double>(frame) / fs));
  n.how_bad = fmt::format(
      "sample peak {:.2f} dBFS, above the {:.0f} dBFS this check allows; {:.1f} % of the track's "
      "10 ms slices peak above it",
      an.sample_peak_dbfs, p.headroom_dbfs, 100.0 * share);
  n.advice =
      "Leave room for mastering: peaks around -6 dBFS are common practice. Lower the master fader (not the "
      "individual tracks, which would change the balance) and re-export; do not normalize the file.";
  n.times_s = {static_cast<double>(frame) / fs};
  n.figures = {{"sample_peak_dbfs", an.sample_peak_dbfs},
               {"threshold_dbfs", p.headroom_dbfs},
               {"share_above", share},
               {"peak_time_s", static_cast<double>(frame) / fs}};
  out.push_back(std::move(n));
}

// A limiter leaves PLR low AND pins the peaks of nearly every stretch of the programme to one
// ceiling. A loud but unlimited mix can have a low PLR too, but its 3 s windows peak wherever
// their own transients take them, mostly a few dB under the track's single highest peak.
void bus_limiter_note(const track_analysis& an, const level_grid& g, const mix_check_params& p,
                      std::vector<mix_note>& out) {
  if (!std::isfinite(an.integrated_lufs) || !(an.plr_db < p.bus_limiter_plr_db) || g.ticks() == 0) return;
  const float track_peak = *std::max_element(g.peak.begin(), g.peak.end());
  if (track_peak <= 0.0f) return;
  const float pinned = static_cast<float>(track_peak * db_to_amplitude(-pinned_peak_db));
  struct window {
    double power;
    float peak;
    std::size_t first_tick;
  };
  std::vector<window> windows;
  for (std::size_t t = 0; t < g.ticks(); t += window_ticks) {
    const std::size_t e = std::min(g.ticks(), t + window_ticks);
    if (e - t < window_ticks / 3 && !windows.empty()) break;  // a short last window says little
    double pw = 0.0;
    float pk = 0.0f;
    for (std::size_t u = t; u < e; ++u) pw += g.power[u], pk = std::max(pk, g.peak[u]);
    windows.push_back({pw / static_cast<double>(e - t), pk, t});
  }
  double loudest = 0.0;
  for (const window& w : windows) loudest = std::max(loudest, w.power);
  // Programme windows: within 20 dB of the loudest (fades, breaks and silence say nothing).
  std::size_t programme = 0, at_ceiling = 0;
  std::vector<double> times;
  for (const window& w : windows) {
    if (w.power < loudest * 0.01) continue;
    ++programme;
    if (w.peak >= pinned) {
      ++at_ceiling;
      if (times.size() < times_kept) times.push_back(g.start_s(w.first_tick));
    }
  }
  const auto near_peak_ticks =
      static_cast<std::size_t>(std::count_if(g.peak.begin(), g.peak.end(), [&](float v) { return v >= pinned; }));
  const double minutes = static_cast<double>(an.frames) / an.sample_rate_hz / 60.0;
  if (programme < 3) return;  // too short to tell a ceiling from a few loud hits
  const double share = static_cast<double>(at_ceiling) / static_cast<double>(programme);
  if (share < pinned_share) return;
  mix_note n = make_note("bus_limiter", note_severity::warning);
  n.what = "Limiter (or heavy peak compression) on the mix bus";
  n.where = share > 0.9 ? "whole track" : where_times(times, at_ceiling);
  n.how_bad = fmt::format(
      "PLR {:.1f} dB (under {:.0f} dB) and flat-topped peaks: {:.0f} % of the 3 s windows of the "
      "programme peak within {:.1f} dB of the track's peak ({:.2f} dBFS)",
      an.plr_db, p.bus_limiter_plr_db, 100.0 * share, pinned_peak_db, amplitude_db(track_peak));
  n.advice =
      "Mastering needs the mix's dynamics to work with. Bypass the limiter or maximizer on the mix bus (keep glue "
      "compression if it is part of the sound) and send that version; if the loud version is the reference for the "
      "client, send both.";
  n.times_s = times;
  n.figures = {{"plr_db", an.plr_db},
               {"threshold_plr_db", p.bus_limiter_plr_db},
               {"windows_at_ceiling_share", share},
               {"programme_windows", programme},
               {"ceiling_dbfs", amplitude_db(track_peak)},
               {"near_peak_ticks_per_minute", minutes > 0 ? static_cast<double>(near_peak_ticks) / minutes : 0.0}};
  out.push_back(std::move(n));
}

void dc_offset_note(const track_analysis& an, const mix_check_params& p, std::vector<mix_note>& out) {
  if (!(an.dc_offset_dbfs > p.dc_offset_dbfs)) return;
  std::vector<int> offending;
  std::string levels;
  nlohmann::json per_channel = nlohmann::json::array();
  for (int c = 0; c < an.channels; ++c) {
    const double dc = an.dc_offset[static_cast<std::size_t>(c)];
    const double db = amplitude_db(std::abs(dc));
    if (db > p.dc_offset_dbfs) offending.push_back(c);
    if (!levels.empty()) levels += ", ";
    levels += fmt::format("{:+.5f} ({:.1f} dBFS) on the {}", dc, db, channel_name(c));
    per_channel.push_back({{"channel", channel_name(c)}, {"mean", dc}, {"dbfs", db_json(db)}});
  }
  mix_note n = make_note("dc_offset", note_severity::warning);
  n.what = offending.size() == 1 ? fmt::format("DC offset on the {} channel", channel_name(offending[0]))
                                 : "DC offset on both channels";
  n.where = "whole track";
  n.how_bad = fmt::format("mean sample value {}; more than {:.0f} dBFS", levels, p.dc_offset_dbfs);
  n.advice =
      "A constant offset wastes headroom and turns into clicks at edits and fades. Find the source (a plug-in, a "
      "converter, a synth oscillator) or put a DC-removing high-pass (5-20 Hz) on the offending track, then "
      "re-export.";
  n.figures = {{"dc_offset_dbfs", an.dc_offset_dbfs}, {"threshold_dbfs", p.dc_offset_dbfs}, {"channels", per_channel}};
  out.push_back(std::move(n));
}

// The mono fold-down (L+R)/2 on both channels is metered as one channel weighted 2, which is
// exactly the stereo meter's sum of two identical channels.
constexpr std::size_t fold_down_chunk_frames = 4096;

void prepare_fold_down_meter(loudness_meter& m, double fs) {
  const std::array<double, 1> weight{2.0};
  m.prepare(fs, 1, weight);
}

// Folds `stereo` down through `mid` (a chunk at a time) into the meter. The meter's result does
// not depend on how its input is split, so neither does this.
void meter_fold_down(loudness_meter& m, const_block_view stereo, std::span<float> mid) noexcept {
  for (std::size_t pos = 0; pos < stereo.frames; pos += mid.size()) {
    const std::size_t n = std::min(mid.size(), stereo.frames - pos);
    for (std::size_t i = 0; i < n; ++i) mid[i] = 0.5f * (stereo[0][pos + i] + stereo[1][pos + i]);
    m.process(const_block_view::mono(mid.data(), n));
  }
}

// Loudness (LUFS) of the mono fold-down.
double mono_fold_down_lufs(audio_window& a, double fs) {
  loudness_meter m;
  prepare_fold_down_meter(m, fs);
  std::vector<float> mid(fold_down_chunk_frames);
  a.for_each_block(1, [&](std::size_t, const_block_view v) { meter_fold_down(m, v, mid); });
  return m.integrated_lufs();
}

double fold_down_difference_db(double mono_lufs, double stereo_lufs) {
  if (!std::isfinite(stereo_lufs)) return std::numeric_limits<double>::quiet_NaN();  // silence
  return mono_lufs - stereo_lufs;  // -inf when the fold-down cancels completely
}

void polarity_and_mono_notes(audio_window& a, double fs, const track_analysis& an, const level_grid& g,
                             const programme_span& prog, const mix_check_params& p, std::vector<mix_note>& out) {
  const std::size_t window = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(polarity_window_s * fs)));
  correlation_meter whole(window);
  // Blocks of whole windows: the meter then sums each window as one add() of the whole would.
  a.for_each_block(window, [&](std::size_t, const_block_view v) { whole.add(v[0], v[1], v.frames); });
  const double corr = whole.correlation();
  const double drop_db = fold_down_difference_db(mono_fold_down_lufs(a, fs), an.integrated_lufs);

  if (corr < p.anti_phase_correlation) {
    // The worst 400 ms windows of the programme, worst first.
    struct scored {
      double corr, start_s;
    };
    std::vector<scored> windows;
    const double thr = prog.found ? db_to_power(prog.threshold_db) : 0.0;
    for (std::size_t pos = 0; pos + window <= a.frames(); pos += window) {
      double pw = 0.0;
      std::size_t ticks = 0;
      for (std::size_t t = pos / g.tick_frames; t < std::min(g.ticks(), (pos + window) / g.tick_frames); ++t, ++ticks)
        pw += g.power[t];
      if (ticks == 0 || pw / static_cast<double>(ticks) < thr) continue;
      correlation_meter m(window);
      const const_block_view v = a.view(pos, pos + window);
      m.add(v[0], v[1], window);
      if (std::isnan(m.side_to_mid_db())) continue;  // silent
      windows.push_back({m.correlation(), static_cast<double>(pos) / fs});
    }
    const std::size_t keep = std::min(times_kept, windows.size());
    std::partial_sort(windows.begin(), windows.begin() + static_cast<std::ptrdiff_t>(keep), windows.end(),
                      [](const scored& x, const scored& y) {
                        return x.corr < y.corr || (x.corr == y.corr && x.start_s < y.start_s);
                      });
    mix_note n = make_note("polarity", note_severity::problem);
    n.what = "Left and right are largely in opposite polarity";
    nlohmann::json worst = nlohmann::json::array();
    for (std::size_t k = 0; k < keep; ++k) {
      n.times_s.push_back(windows[k].start_s);
      worst.push_back({{"start_s", windows[k].start_s}, {"correlation", windows[k].corr}});
    }
    n.where = n.times_s.empty() ? "whole track"
                                : "worst " + where_times(n.times_s, std::min(times_named, keep)) +
                                      fmt::format(" ({:.0f} ms windows)", 1000.0 * polarity_window_s);
    n.how_bad = fmt::format(
        "overall L/R correlation {:.2f} (under {:.2f}){}; the mono fold-down is {} dB against the "
        "stereo mix",
        corr, p.anti_phase_correlation,
        keep > 0 ? fmt::format(", worst window {:.2f}", windows[0].corr) : std::string(), signed_db(drop_db));
    n.advice =
        "One channel, a stereo track or a mic pair has its polarity inverted (or a widener is overdone): in mono the "
        "centre cancels. Check the polarity of the stereo sources and of any widening plug-in, flip the offending "
        "one, check in mono and re-export.";
    n.figures = {{"correlation", corr},
                 {"threshold_correlation", p.anti_phase_correlation},
                 {"mono_fold_down_db", db_json(drop_db)},
                 {"worst_windows", worst}};
    out.push_back(std::move(n));
    return;  // the mono loss is this note's consequence, not a second cause
  }
  if (std::isnan(drop_db) || !(drop_db < -p.mono_drop_db)) return;
  mix_note n = make_note("mono_compatibility", note_severity::warning);
  n.what = "Poor mono compatibility";
  n.where = "whole track";
  n.how_bad = fmt::format(
      "the mono fold-down (L+R)/2 measures {} dB against the stereo mix (more than {:.0f} dB "
      "down); L/R correlation {:.2f}",
      signed_db(drop_db), p.mono_drop_db, corr);
  n.advice =
      "Out-of-phase content (stereo wideners, Haas delays, phase-shifted doubles) cancels on mono playback: phones, "
      "Bluetooth and club systems. Narrow or remove the widening, listen in mono while fixing it, and keep the low "
      "end centred.";
  n.figures = {{"mono_fold_down_db", db_json(drop_db)}, {"threshold_db", -p.mono_drop_db}, {"correlation", corr}};
  out.push_back(std::move(n));
}

// Energy excess of the track over the target in the bands whose centres lie in [lo, hi], both
// normalized (mean 0 dB over 100 Hz .. 10 kHz): 10 log10(sum track power / sum target power).
struct band_excess {
  double excess_db = 0.0;
  std::vector<std::size_t> bands;
};

band_excess excess_over_target(const std::array<double, third_octave_band_count>& track, const target_curve& target,
                               double lo_hz, double hi_hz) {
  band_excess r;
  double mine = 0.0, theirs = 0.0;
  const auto& centres = third_octave_centres_hz();
  for (std::size_t b = 0; b < centres.size(); ++b) {
    if (centres[b] < lo_hz || centres[b] > hi_hz) continue;
    if (!std::isfinite(track[b]) || !std::isfinite(target.mid_db[b])) continue;
    r.bands.push_back(b);
    mine += db_to_power(track[b]);
    theirs += db_to_power(target.mid_db[b]);
  }
  r.excess_db = r.bands.empty() ? std::numeric_limits<double>::quiet_NaN() : power_db(mine) - power_db(theirs);
  return r;
}

void spectral_notes(const tonal_analysis& tonal, const target_curve& target, const mix_check_params& p,
                    std::vector<mix_note>& out) {
  const auto track = normalized_mid_db(tonal);
  struct region {
    const char* code;
    double lo_hz, hi_hz;
    const char* what;
    const char* range;
    const char* advice;
  };
  const region regions[] = {
      {"sub_bass", sub_bass_lo_hz, sub_bass_hi_hz, "Too much sub-bass", "20-50 Hz",
       "Energy this low eats headroom, makes a limiter pump, and most systems cannot play it. High-pass the tracks "
       "that do not need it (everything but kick and bass), look for rumble, and tame kick and bass below 50 Hz."},
      {"harshness", harsh_lo_hz, harsh_hi_hz, "Harsh upper mids", "2-5 kHz",
       "The ear is most sensitive here and the mix turns fatiguing when loud. Find the source (guitars, cymbals, "
       "vocal edge, bright synths) and cut it there, or use a dynamic EQ around 2-5 kHz rather than a static cut on "
       "the whole mix."},
  };
  for (const region& r : regions) {
    const band_excess e = excess_over_target(track, target, r.lo_hz, r.hi_hz);
    if (!(e.excess_db > p.excess_db)) continue;
    mix_note n = make_note(r.code, note_severity::warning);
    n.what = fmt::format("{} ({})", r.what, r.range);
    n.where = fmt::format("{} (1/3-octave bands {} to {})", r.range, third_octave_names()[e.bands.front()],
                          third_octave_names()[e.bands.back()]);
    n.how_bad = fmt::format(
        "{} dB against the target \"{}\" in these bands (both balanced over 100 Hz - 10 kHz; "
        "more than {:.0f} dB over)",
        signed_db(e.excess_db), target.name, p.excess_db);
    n.advice = r.advice;
    nlohmann::json bands = nlohmann::json::array();
    for (std::size_t b : e.bands)
      bands.push_back({{"band", third_octave_names()[b]},
                       {"track_db", track[b]},
                       {"target_db", target.mid_db[b]},
                       {"difference_db", track[b] - target.mid_db[b]}});
    n.figures = {{"excess_db", e.excess_db}, {"threshold_db", p.excess_db}, {"target", target.name}, {"bands", bands}};
    out.push_back(std::move(n));
  }
}

void noise_notes(const level_grid& g, const programme_span& prog, const mix_check_params& p,
                 std::vector<mix_note>& out) {
  if (!prog.found) return;
  // The floor of a lead-in or tail is its 10th-percentile 10 ms slice: steady hiss reads about its
  // own level there (0.3 dB under), while a fade from (or to) silence, or a silent gap before the
  // hiss, reads far lower, and a lead-in that is mostly noise is not excused by a few silent slices.
  std::vector<double> slice;
  auto judge = [&](std::size_t first, std::size_t last, bool head) {  // ticks [first, last)
    if (last < first + min_head_ticks) return;
    slice.assign(g.power.begin() + static_cast<std::ptrdiff_t>(first),
                 g.power.begin() + static_cast<std::ptrdiff_t>(last));
    const auto k = static_cast<std::ptrdiff_t>(floor_percentile * static_cast<double>(slice.size()));
    std::nth_element(slice.begin(), slice.begin() + k, slice.end());
    const double floor = slice[static_cast<std::size_t>(k)];
    const double floor_db = power_db(floor);
    if (!(floor_db > p.noise_floor_dbfs)) return;
    const double from_s = g.start_s(first),
                 to_s = std::min(g.start_s(last), static_cast<double>(g.frames) / g.sample_rate_hz);
    mix_note n = make_note(head ? "noisy_head" : "noisy_tail", note_severity::warning);
    n.what = head ? "Noise before the music starts" : "Noise after the music ends";
    n.where = fmt::format("{} to {}", format_time(from_s), format_time(to_s));
    n.how_bad = fmt::format(
        "the floor there is {:.1f} dBFS RMS (90 % of its 10 ms slices are louder), above {:.0f} dBFS, for {:.2f} s",
        floor_db, p.noise_floor_dbfs, to_s - from_s);
    n.advice = head ? "Hiss, hum or room noise before the first note is audible, and mastering gain makes it louder. "
                      "Edit the start to digital silence or fade in from silence, or de-noise the source."
                    : "Hiss, hum or room noise after the last note is audible, and mastering gain makes it louder. "
                      "Fade the tail to digital silence once the reverb has died away, or de-noise the source.";
    n.times_s = {from_s};
    n.figures = {{"floor_dbfs", floor_db},
                 {"threshold_dbfs", p.noise_floor_dbfs},
                 {"start_s", from_s},
                 {"end_s", to_s},
                 {"programme_threshold_dbfs", prog.threshold_db}};
    out.push_back(std::move(n));
  };
  judge(0, prog.first, true);
  // Leave out a last tick shorter than half a tick: too few frames to read a floor from.
  std::size_t tail_end = g.ticks();
  if (tail_end > prog.last + 1 && g.frames - (tail_end - 1) * g.tick_frames < g.tick_frames / 2) --tail_end;
  judge(prog.last + 1, tail_end, false);
}

// Level of frames [first, last): the mean over channels of the variance, in dBFS (as the grid).
double slice_level_db(audio_window& a, std::size_t first, std::size_t last) {
  double sum = 0.0;
  const const_block_view v = a.view(first, last);
  for (int c = 0; c < a.channels(); ++c) sum += slice_variance(v[c], 0, last - first);
  return power_db(sum / a.channels());
}

void truncation_notes(audio_window& a, double fs, const mix_check_params& p, std::vector<mix_note>& out) {
  const std::size_t len = std::min(a.frames(), static_cast<std::size_t>(std::llround(tick_s * fs)));
  if (len == 0) return;
  for (bool head : {true, false}) {
    const std::size_t first = head ? 0 : a.frames() - len;
    const double db = slice_level_db(a, first, first + len);
    if (!(db > p.truncation_dbfs)) continue;
    const double at_s = static_cast<double>(first) / fs;
    mix_note n = make_note(head ? "truncated_head" : "truncated_tail", note_severity::warning);
    n.what = head ? "The start is cut off" : "The end is cut off";
    n.where = fmt::format("{} 10 ms, at {}", head ? "first" : "last", format_time(at_s));
    n.how_bad = fmt::format("the {} 10 ms are at {:.1f} dBFS RMS (above {:.0f} dBFS): no fade, the music {} mid-sound",
                            head ? "first" : "last", db, p.truncation_dbfs, head ? "starts" : "stops");
    n.advice = head ? "The export range probably starts after the first note. Re-export with the region starting a "
                      "little earlier, with a few milliseconds of fade-in to avoid a click."
                    : "The export range probably ends before the last note or the reverb tail has died away. Extend "
                      "the bounce until the tail is silent, then fade.";
    n.times_s = {at_s};
    n.figures = {
        {"rms_dbfs", db}, {"threshold_dbfs", p.truncation_dbfs}, {"slice_ms", 1000.0 * static_cast<double>(len) / fs}};
    out.push_back(std::move(n));
  }
}

// A file stored deeper than 16-bit whose every sample is a multiple of 2^-15 went through 16-bit
// somewhere. Silence and near-silence prove nothing, so it takes a thousand non-zero samples.
void bit_depth_note(audio_window& a, const source_info& src, std::vector<mix_note>& out) {
  const bool is_float = src.encoding == "float" || src.encoding == "double";
  if (!(src.bit_depth > 16 || is_float)) return;
  std::size_t nonzero = 0;
  bool deeper = false;
  a.for_each_block(1, [&](std::size_t, const_block_view v) {
    for (int c = 0; c < v.channels && !deeper; ++c) {
      const float* x = v[c];
      for (std::size_t i = 0; i < v.frames; ++i) {
        const float s = x[i] * 32768.0f;  // exact: a power-of-two scale
        if (s != std::nearbyint(s)) {
          deeper = true;
          break;
        }
        nonzero += x[i] != 0.0f;
      }
    }
  });
  if (deeper) return;
  if (nonzero < 1000) return;
  const std::string stored =
      is_float ? fmt::format("{} float", src.encoding == "double" ? 64 : 32) : fmt::format("{}-bit", src.bit_depth);
  mix_note n = make_note("bit_depth", note_severity::info);
  n.what = fmt::format("{} file with only 16-bit resolution", stored);
  n.where = "whole track";
  n.how_bad = fmt::format(
      "every sample is a multiple of 2^-15 (a 16-bit step): the bits below are padding ({} non-zero "
      "samples checked)",
      nonzero);
  n.advice =
      "The mix went through a 16-bit stage (a 16-bit bounce, a dithered export, a 16-bit file reimported) before it "
      "was saved at the higher depth. Re-export from the session at 24-bit or 32-bit float without dither.";
  n.figures = {{"stored", stored}, {"effective_bits", 16}, {"nonzero_samples", nonzero}};
  out.push_back(std::move(n));
}

void sample_rate_note(audio_window& a, double decoded_rate_hz, const source_info* src, std::vector<mix_note>& out) {
  const double rate = src != nullptr && src->sample_rate_hz > 0.0 ? src->sample_rate_hz : decoded_rate_hz;
  constexpr std::array<double, 6> usual{44'100.0, 48'000.0, 88'200.0, 96'000.0, 176'400.0, 192'000.0};
  const bool standard = std::any_of(usual.begin(), usual.end(), [&](double r) { return std::abs(r - rate) < 0.5; });
  if (!standard) {
    mix_note n = make_note("sample_rate", note_severity::warning);
    n.what = fmt::format("Unusual sample rate: {:g} kHz", rate / 1000.0);
    n.where = "whole track";
    n.how_bad = "not one of 44.1, 48, 88.2, 96, 176.4 or 192 kHz";
    n.advice =
        "Check the session and export settings. Mastering will resample, but an export at the session's native "
        "standard rate avoids a conversion.";
    n.figures = {{"sample_rate_hz", rate}};
    out.push_back(std::move(n));
    return;
  }
  // Upsampled: nothing above 24 kHz but the resampler's stop band. Judged on the decoded audio at
  // its own rate, which is the stored rate here (the decoder does not resample).
  if (rate < 88'200.0 || std::abs(decoded_rate_hz - rate) > 0.5 || a.frames() == 0) return;
  welch_accumulator acc(decoded_rate_hz);
  a.for_each_block(1, [&](std::size_t, const_block_view v) { acc.add(v); });
  const welch_power w = acc.finish();
  const double bin_hz = decoded_rate_hz / static_cast<double>(w.fft_size);
  const double hi_hz = std::min(0.45 * decoded_rate_hz, 2.0 * ultrasonic_lo_hz);
  double total = 0.0, ultra = 0.0;
  for (std::size_t k = 1; k < w.mid.size(); ++k) {
    const double e = w.mid[k] + w.side[k];
    const double f = static_cast<double>(k) * bin_hz;
    total += e;
    if (f >= ultrasonic_lo_hz && f < hi_hz) ultra += e;
  }
  if (total <= 0.0) return;
  const double ratio_db = power_db(ultra / total);
  if (!(ratio_db < ultrasonic_floor_db)) return;
  mix_note n = make_note("sample_rate", note_severity::info);
  n.what = fmt::format("{:g} kHz file with no content above 24 kHz: probably upsampled", rate / 1000.0);
  n.where = "whole track";
  n.how_bad = fmt::format("the energy between {:g} and {:g} kHz is {} dB against the whole spectrum (under {:.0f} dB)",
                          ultrasonic_lo_hz / 1000.0, hi_hz / 1000.0, signed_db(ratio_db), ultrasonic_floor_db);
  n.advice =
      "The higher rate adds file size, not resolution. Send the mix at the session's native rate (probably 44.1 or "
      "48 kHz); if the session really runs at this rate, look for a low-rate bounce or plug-in in the chain.";
  n.figures = {{"sample_rate_hz", rate}, {"ultrasonic_db", db_json(ratio_db)}, {"threshold_db", ultrasonic_floor_db}};
  out.push_back(std::move(n));
}

// 10 log10 of the fraction of mid energy above 150 Hz. 150 Hz falls inside the 160 Hz band
// (140.3 .. 176.8 Hz); that band's power is split in proportion to the part of its width in
// octaves above 150 Hz (log2(176.8 / 150) / (1/3) = 71 %), i.e. its power is taken as evenly
// spread per octave, as music's roughly pink spectrum is.
double small_speaker_loss_db(const tonal_analysis& t) {
  const auto& centres = third_octave_centres_hz();
  const double half = std::pow(2.0, 1.0 / 6.0);
  double above = 0.0, total = 0.0;
  for (std::size_t b = 0; b < centres.size(); ++b) {
    if (!std::isfinite(t.mid_db[b])) continue;
    const double e = db_to_power(t.mid_db[b]);
    const double lo = centres[b] / half, hi = centres[b] * half;
    const double frac = std::clamp(std::log2(hi / small_speaker_split_hz) / std::log2(hi / lo), 0.0, 1.0);
    total += e;
    above += e * frac;
  }
  if (total <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  return power_db(above / total);
}

}  // namespace

std::vector<mix_note> check_mix(const mix_check_input& in, const mix_check_params& p) {
  LATHE_EXPECTS((in.audio != nullptr || in.spill != nullptr) && in.analysis != nullptr,
                "check_mix needs the audio and its analysis");
  std::optional<audio_spill> borrowed;
  if (in.spill == nullptr) borrowed = audio_spill::borrow(*in.audio);
  audio_window a(in.spill != nullptr ? *in.spill : *borrowed);
  LATHE_EXPECTS(a.channels() == 2, "check_mix takes the decoded stereo audio");
  LATHE_EXPECTS(in.sample_rate_hz > 0.0, "sample rate must be positive");
  const track_analysis& an = *in.analysis;
  const double fs = in.sample_rate_hz;
  std::vector<mix_note> notes;
  const level_grid grid = scan_levels(a, fs);
  const programme_span prog = find_programme(grid);
  clipping_notes(an, notes);
  intersample_note(a, fs, an, grid, p, notes);
  headroom_note(a, fs, an, grid, p, notes);
  bus_limiter_note(an, grid, p, notes);
  dc_offset_note(an, p, notes);
  polarity_and_mono_notes(a, fs, an, grid, prog, p, notes);
  if (in.tonal != nullptr && in.target != nullptr) spectral_notes(*in.tonal, *in.target, p, notes);
  noise_notes(grid, prog, p, notes);
  truncation_notes(a, fs, p, notes);
  if (in.source != nullptr) bit_depth_note(a, *in.source, notes);
  sample_rate_note(a, fs, in.source, notes);
  return notes;
}

nlohmann::json to_json(const mix_note& n) {
  return {{"code", n.code},       {"severity", to_string(n.severity)},
          {"what", n.what},       {"where", n.where},
          {"how_bad", n.how_bad}, {"advice", n.advice},
          {"times_s", n.times_s}, {"figures", n.figures}};
}

std::string mix_notes_markdown(const std::string& album, const std::vector<track_notes>& tracks) {
  const auto clean = static_cast<std::size_t>(
      std::count_if(tracks.begin(), tracks.end(), [](const track_notes& t) { return t.notes.empty(); }));
  std::string md = fmt::format("# Mix notes: {}\n\n", album.empty() ? "(no album)" : album);
  md += fmt::format("{} track{}: {} with notes, {} clean.\n", tracks.size(), tracks.size() == 1 ? "" : "s",
                    tracks.size() - clean, clean);
  for (const track_notes& t : tracks) {
    md += fmt::format("\n## {}\n\n", t.title.empty() ? t.path : t.title);
    if (!t.path.empty() && t.path != t.title) md += fmt::format("`{}`\n\n", t.path);
    if (t.notes.empty()) {
      md += "Clean: nothing to report.\n";
      continue;
    }
    for (const mix_note& n : t.notes) {
      std::string severity = to_string(n.severity);
      severity[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(severity[0])));
      md += fmt::format("- **{}: {}** (`{}`)\n", severity, n.what, n.code);
      md += fmt::format("  - Where: {}\n", n.where);
      md += fmt::format("  - How bad: {}\n", n.how_bad);
      md += fmt::format("  - What to do: {}\n", n.advice);
    }
  }
  return md;
}

translation_meter::translation_meter(double sample_rate_hz) : mid_(fold_down_chunk_frames) {
  LATHE_EXPECTS(sample_rate_hz > 0.0, "sample rate must be positive");
  prepare_fold_down_meter(mono_, sample_rate_hz);
  stereo_.prepare(sample_rate_hz, 2);
}

void translation_meter::add(const_block_view stereo_master) noexcept {
  stereo_.process(stereo_master);
  meter_fold_down(mono_, stereo_master, mid_);
}

translation_check translation_meter::finish(const tonal_analysis& tonal, const target_curve* target) const {
  translation_check t;
  t.mono_fold_down_db = fold_down_difference_db(mono_.integrated_lufs(), stereo_.integrated_lufs());
  t.small_speaker_loss_db = small_speaker_loss_db(tonal);
  t.target_deviation_db =
      target != nullptr ? target_deviation_db(tonal, *target) : std::numeric_limits<double>::quiet_NaN();
  return t;
}

translation_check check_translation(const audio_buffer& master, double sample_rate_hz, const tonal_analysis& tonal,
                                    const target_curve* target) {
  LATHE_EXPECTS(master.channels() == 2, "check_translation takes a stereo master");
  translation_meter m(sample_rate_hz);
  m.add(master.view());
  return m.finish(tonal, target);
}

nlohmann::json to_json(const translation_check& t) {
  return {{"mono_fold_down_db", db_json(t.mono_fold_down_db)},
          {"small_speaker_loss_db", db_json(t.small_speaker_loss_db)},
          {"target_deviation_db", db_json(t.target_deviation_db)}};
}

}  // namespace lathe
