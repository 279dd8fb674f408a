// Mix notes: each fault, built into an otherwise clean signal, raises its note (and only the notes
// that fault implies), at the right place; clean mixes raise none; translation checks against
// analytic values, and the streaming translation meter against check_translation() bit for bit.
#include "lathe/mix_notes.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "demo_catalog.hpp"
#include "lathe/analysis.hpp"
#include "lathe/limiter.hpp"
#include "lathe/loudness.hpp"
#include "lathe/resampler.hpp"
#include "lathe/tonal.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

constexpr double fs = 44'100.0;
// Clip runs are placed on exact frames; their reported times are frame / fs, so one frame.
constexpr double clip_time_tol_s = 1.0 / fs;
// Figures that are plain float64 arithmetic on the same samples as the reference.
constexpr double exact_db_tol = 0.01;
// 8x sinc interpolation (Kaiser, 32 taps per phase) reads a sine's true peak within a few
// hundredths of a dB up to 20 kHz (true_peak.hpp); 0.1 dB leaves room for the burst's edges.
constexpr double true_peak_tol_db = 0.1;
// Mono fold-down of tones sharing one envelope: mono and stereo gate the same blocks, and per
// block the K-weighted ratio is that of the steady tones up to the envelope's sidebands.
constexpr double fold_down_tones_tol_db = 0.05;
// Independent noises: the fold-down is -3.0103 dB in expectation; 15 s of Gaussian noise keeps
// the estimate within a few hundredths.
constexpr double fold_down_noise_tol_db = 0.1;
constexpr double fold_down_identical_tol_db = 0.01;
constexpr double analytic_tol_db = 1e-9;
// A 10 ms reading of stereo Gaussian noise (882 samples) has a standard deviation of
// 4.34 * sqrt(2 / 882) = 0.21 dB; the floor is the 10th percentile of ~200 readings, -1.28 sigma.
constexpr double hiss_floor_bias_db = -1.28 * 0.21;
constexpr double hiss_floor_tol_db = 0.3;

double peak_of(const audio_buffer& b) {
  double p = 0.0;
  for (int c = 0; c < b.channels(); ++c)
    for (std::size_t i = 0; i < b.frames(); ++i) p = std::max(p, std::abs(static_cast<double>(b.channel(c)[i])));
  return p;
}

void scale_to_peak(audio_buffer& b, double peak_dbfs) {
  const double g = std::pow(10.0, peak_dbfs / 20.0) / peak_of(b);
  for (int c = 0; c < b.channels(); ++c)
    for (std::size_t i = 0; i < b.frames(); ++i) b.channel(c)[i] = static_cast<float>(b.channel(c)[i] * g);
}

// Raised-cosine (S-curve) fades, as an editor draws them.
void fade(audio_buffer& b, double in_s, double out_s) {
  const auto in_n = static_cast<std::size_t>(in_s * fs), out_n = static_cast<std::size_t>(out_s * fs);
  for (int c = 0; c < b.channels(); ++c) {
    float* x = b.channel(c);
    for (std::size_t i = 0; i < in_n && i < b.frames(); ++i)
      x[i] = static_cast<float>(x[i] * 0.5 * (1.0 - std::cos(M_PI * static_cast<double>(i) / in_n)));
    for (std::size_t i = 0; i < out_n && i < b.frames(); ++i)
      x[b.frames() - 1 - i] =
          static_cast<float>(x[b.frames() - 1 - i] * 0.5 * (1.0 - std::cos(M_PI * static_cast<double>(i) / out_n)));
  }
}

audio_buffer silence(double seconds, double rate = fs) {
  return audio_buffer(2, static_cast<std::size_t>(std::llround(seconds * rate)));
}

void remove_dc(audio_buffer& b) {
  for (int c = 0; c < b.channels(); ++c) {
    double mean = 0.0;
    for (std::size_t i = 0; i < b.frames(); ++i) mean += b.channel(c)[i];
    mean /= static_cast<double>(b.frames());
    for (std::size_t i = 0; i < b.frames(); ++i) b.channel(c)[i] = static_cast<float>(b.channel(c)[i] - mean);
  }
}

// The demo song without its DC (it carries about -57 dBFS of it at -6 dBFS peak, over the dc_offset
// threshold; a clean mix has none). Synthesis is the slow part of these tests, so each song is
// made once.
audio_buffer song(double seconds, double rate = fs, unsigned seed = 1) {
  static std::map<std::tuple<double, double, unsigned>, audio_buffer> made;
  auto [it, fresh] = made.try_emplace({seconds, rate, seed});
  if (fresh) {
    demo_track_spec s;
    s.seconds = seconds;
    s.sample_rate_hz = rate;
    s.seed = seed;
    it->second = synthesize_song(s);
    remove_dc(it->second);
  }
  return it->second;
}

// The clean reference mix: a music-like song, peaks at -6 dBFS, 1 s fade in, 2 s fade out and
// 0.3 s of digital silence at both ends.
audio_buffer clean_song(double seconds = 16.0, double rate = fs, unsigned seed = 1) {
  audio_buffer s = song(seconds, rate, seed);
  scale_to_peak(s, -6.0);
  fade(s, 1.0, 2.0);
  const audio_buffer pad = silence(0.3, rate);
  return test::concat({&pad, &s, &pad});
}

// A shaped noise mix: one-pole low-passed noise (a -6 dB/oct tilt above 1 kHz), half common to
// both channels, with a slow level swell, the same fades and padding.
audio_buffer clean_noise_mix(double seconds = 16.0) {
  audio_buffer n = test::white_noise(-20.0, seconds, fs, 3, 7);
  audio_buffer out(2, n.frames());
  const double a = std::exp(-2.0 * M_PI * 1000.0 / fs);
  double s[3] = {0, 0, 0};
  for (std::size_t i = 0; i < n.frames(); ++i) {
    for (int c = 0; c < 3; ++c) s[c] = a * s[c] + (1.0 - a) * n.channel(c)[i];
    const double swell = 0.6 + 0.4 * std::sin(2.0 * M_PI * static_cast<double>(i) / fs / 7.0);
    out.channel(0)[i] = static_cast<float>(swell * (s[0] + s[2]));
    out.channel(1)[i] = static_cast<float>(swell * (s[1] + s[2]));
  }
  scale_to_peak(out, -6.0);
  fade(out, 1.0, 2.0);
  const audio_buffer pad = silence(0.3);
  return test::concat({&pad, &out, &pad});
}

source_info source_of(const audio_buffer& a, double rate, const char* encoding = "pcm24", int bits = 24) {
  source_info s;
  s.container = "wav";
  s.encoding = encoding;
  s.bit_depth = bits;
  s.sample_rate_hz = rate;
  s.channels = 2;
  s.frames = a.frames();
  return s;
}

struct checked {
  track_analysis analysis;
  std::vector<mix_note> notes;
  std::set<std::string> codes() const {
    std::set<std::string> c;
    for (const mix_note& n : notes) c.insert(n.code);
    return c;
  }
  const mix_note* find(const std::string& code) const {
    for (const mix_note& n : notes)
      if (n.code == code) return &n;
    return nullptr;
  }
  std::string dump() const {
    std::string s;
    for (const mix_note& n : notes) s += to_json(n).dump(1) + "\n";
    return s;
  }
};

checked run_check(const audio_buffer& a, double rate = fs, const source_info* src = nullptr,
                  const tonal_analysis* tonal = nullptr, const target_curve* target = nullptr) {
  checked r;
  r.analysis = analyze(a, rate);
  const source_info own = source_of(a, rate);
  mix_check_input in;
  in.audio = &a;
  in.sample_rate_hz = rate;
  in.source = src != nullptr ? src : &own;
  in.analysis = &r.analysis;
  in.tonal = tonal;
  in.target = target;
  r.notes = check_mix(in);
  return r;
}

using codes_t = std::set<std::string>;

// ---- clean mixes -----------------------------------------------------------------------------

TEST(MixNotes, CleanSongRaisesNothing) {
  const checked r = run_check(clean_song());
  EXPECT_EQ(r.codes(), codes_t{}) << r.dump();
}

TEST(MixNotes, CleanNoiseMixRaisesNothing) {
  const checked r = run_check(clean_noise_mix());
  EXPECT_EQ(r.codes(), codes_t{}) << r.dump();
}

TEST(MixNotes, SameInputSameNotes) {
  audio_buffer a = clean_song(10.0);
  a.channel(0)[static_cast<std::size_t>(3 * fs)] = 1.0f;  // something to report
  a.channel(0)[static_cast<std::size_t>(3 * fs) + 1] = 1.0f;
  a.channel(0)[static_cast<std::size_t>(3 * fs) + 2] = 1.0f;
  const checked r1 = run_check(a), r2 = run_check(a);
  ASSERT_FALSE(r1.notes.empty());
  EXPECT_EQ(r1.dump(), r2.dump());
}

// Digital silence and a clip shorter than one 10 ms slice have nothing to report and must not
// trip over their length.
TEST(MixNotes, SilenceAndTinyClipsRaiseNothing) {
  EXPECT_EQ(run_check(silence(3.0)).codes(), codes_t{});
  audio_buffer tiny = test::white_noise(-60.0, 0.004, fs, 2, 9);  // 176 frames at -60 dBFS
  EXPECT_EQ(run_check(tiny).codes(), codes_t{});
}

// ---- one fault each --------------------------------------------------------------------------

TEST(MixNotes, ClippingNamesChannelTimesAndRuns) {
  audio_buffer a = clean_song();
  const std::size_t run1 = 154'321, run2 = 401'000;  // 3.499 s, 9.093 s
  for (std::size_t i = 0; i < 6; ++i) a.channel(0)[run1 + i] = 1.0f;
  for (std::size_t i = 0; i < 11; ++i) a.channel(0)[run2 + i] = -1.0f;
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"clipping"}) << r.dump();
  const mix_note* n = r.find("clipping");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->severity, note_severity::problem);
  EXPECT_NE(n->what.find("left"), std::string::npos);
  ASSERT_EQ(n->times_s.size(), 2u);
  EXPECT_NEAR(n->times_s[0], static_cast<double>(run1) / fs, clip_time_tol_s);
  EXPECT_NEAR(n->times_s[1], static_cast<double>(run2) / fs, clip_time_tol_s);
  EXPECT_EQ(n->where, "at 0:03.499 and 0:09.093");
  EXPECT_EQ(n->figures["runs"], 2);
  EXPECT_EQ(n->figures["longest_run_frames"], 11);
  EXPECT_EQ(n->figures["clipped_samples"], 17);
}

TEST(MixNotes, ClippingOnBothChannelsGivesOneNoteEach) {
  audio_buffer a = clean_song(10.0);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < 4; ++i) a.channel(c)[200'000 + 1000 * c + i] = 1.0f;
  const checked r = run_check(a);
  ASSERT_EQ(r.notes.size(), 2u) << r.dump();
  EXPECT_NE(r.notes[0].what.find("left"), std::string::npos);
  EXPECT_NE(r.notes[1].what.find("right"), std::string::npos);
  EXPECT_NEAR(r.notes[1].times_s.at(0), 201'000 / fs, clip_time_tol_s);
}

TEST(MixNotes, IntersampleOverWithSamplesUnderFullScale) {
  audio_buffer a = clean_song();
  // A 20 ms burst at fs/4 with 45 degree phase: samples +-0.8485, waveform peaks 1.2 (+1.58 dBTP)
  // halfway between them. 2 ms raised-cosine edges.
  const double amp = 1.2, start_s = 5.0, len_s = 0.020, edge_s = 0.002;
  const auto first = static_cast<std::size_t>(start_s * fs), len = static_cast<std::size_t>(len_s * fs);
  const auto edge = static_cast<std::size_t>(edge_s * fs);
  for (std::size_t i = 0; i < len; ++i) {
    const double env = i < edge ? 0.5 * (1 - std::cos(M_PI * i / edge))
                                : (len - 1 - i < edge ? 0.5 * (1 - std::cos(M_PI * (len - 1 - i) / edge)) : 1.0);
    const double v = amp * env * std::sin(M_PI / 2.0 * static_cast<double>(i) + M_PI / 4.0);
    a.channel(0)[first + i] = a.channel(1)[first + i] = static_cast<float>(v);
  }
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), (codes_t{"intersample_clipping", "headroom"})) << r.dump();
  const mix_note* n = r.find("intersample_clipping");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->figures["events"], 1);
  ASSERT_EQ(n->times_s.size(), 1u);
  EXPECT_GE(n->times_s[0], start_s);
  EXPECT_LE(n->times_s[0], start_s + len_s);
  EXPECT_NEAR(n->figures["highest_dbtp"].get<double>(), 20.0 * std::log10(amp), true_peak_tol_db);
}

// A hot passage far longer than the check's read window (4 s of inter-sample overs, with
// full-scale samples in it): the note's figures equal a brute-force reference (the interpolator
// over the whole zero-padded channel, full-scale neighbours searched over the whole track), and
// reading the track from a file spill gives the same notes as the buffer.
TEST(MixNotes, LongIntersampleStretchMatchesBruteForceAndTheSpill) {
  audio_buffer a = clean_song(12.0);
  const double start_s = 4.0, len_s = 4.0;
  const auto first = static_cast<std::size_t>(start_s * fs), len = static_cast<std::size_t>(len_s * fs);
  for (std::size_t i = 0; i < len; ++i) {
    // fs/4 at 45 degrees: samples +-0.85 amp, peaks amp between them; amp swells 1.05..1.25.
    const double amp = 1.15 + 0.1 * std::sin(2.0 * M_PI * static_cast<double>(i) / fs);
    const double v = amp * std::sin(M_PI / 2.0 * static_cast<double>(i) + M_PI / 4.0);
    a.channel(0)[first + i] = static_cast<float>(v);
    a.channel(1)[first + i] = static_cast<float>(0.9 * v);
  }
  for (const std::size_t at : {first + 70'000, first + 131'072, first + 150'001})  // near the pieces' edges
    a.channel(0)[at] = 1.0f;
  const checked r = run_check(a);
  const mix_note* n = r.find("intersample_clipping");
  ASSERT_NE(n, nullptr) << r.dump();

  true_peak_interpolator tp;
  tp.prepare(fs);
  const std::size_t reach = tp.phase_length(), latency = tp.latency_frames();
  const auto tick = static_cast<std::size_t>(std::llround(0.010 * fs));
  std::vector<std::size_t> overs;
  float highest = 0.0f;
  for (int c = 0; c < 2; ++c) {
    std::vector<float> x(a.channel(c), a.channel(c) + a.frames());
    x.resize(a.frames() + latency + 1, 0.0f);
    std::vector<float> peaks(x.size());
    tp.reset();
    tp.process(x.data(), peaks.data(), x.size());
    for (std::size_t i = 0; i < a.frames(); ++i) {
      bool near = false;
      for (std::size_t k = i > reach ? i - reach : 0; k <= std::min(a.frames() - 1, i + reach) && !near; ++k)
        near = std::abs(x[k]) >= clip_level;
      if (peaks[i + latency] > 1.0f && !near) {
        overs.push_back(i);
        highest = std::max(highest, peaks[i + latency]);
      }
    }
  }
  std::sort(overs.begin(), overs.end());
  std::size_t events = 0;
  std::vector<double> times;
  for (std::size_t k = 0; k < overs.size(); ++k)
    if (k == 0 || overs[k] - overs[k - 1] > tick) {
      ++events;
      if (times.size() < 8) times.push_back(static_cast<double>(overs[k]) / fs);
    }
  EXPECT_GT(overs.size(), len / 2);  // most of the passage
  EXPECT_EQ(n->figures["frames_over"].get<std::size_t>(), overs.size());
  EXPECT_EQ(n->figures["events"].get<std::size_t>(), events);
  EXPECT_EQ(n->times_s, times);
  EXPECT_EQ(n->figures["highest_dbtp"].get<double>(), 20.0 * std::log10(static_cast<double>(highest)));

  audio_spill spill(2, std::filesystem::temp_directory_path() / "lathe-mix-notes-spill");
  spill.append(a.view());
  const source_info own = source_of(a, fs);
  mix_check_input in;
  in.spill = &spill;
  in.sample_rate_hz = fs;
  in.source = &own;
  in.analysis = &r.analysis;
  const std::vector<mix_note> from_spill = check_mix(in);
  ASSERT_EQ(from_spill.size(), r.notes.size());
  for (std::size_t k = 0; k < r.notes.size(); ++k) EXPECT_EQ(to_json(from_spill[k]), to_json(r.notes[k]));
}

TEST(MixNotes, HeadroomNamesPeakAndItsTime) {
  audio_buffer a = clean_song();
  scale_to_peak(a, -1.5);
  std::size_t frame = 0;
  double best = 0.0;
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < a.frames(); ++i)
      if (std::abs(static_cast<double>(a.channel(c)[i])) > best) best = std::abs(a.channel(c)[i]), frame = i;
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"headroom"}) << r.dump();
  const mix_note* n = r.find("headroom");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["sample_peak_dbfs"].get<double>(), 20.0 * std::log10(best), exact_db_tol);
  ASSERT_EQ(n->times_s.size(), 1u);
  EXPECT_NEAR(n->times_s[0], static_cast<double>(frame) / fs, clip_time_tol_s);
}

TEST(MixNotes, BusLimiterOnLimitedSong) {
  audio_buffer s = song(20.0);
  scale_to_peak(s, -6.0);
  offline_limiter lim;
  limiter_params lp;
  lp.ceiling_dbtp = -0.3;
  lim.analyze(s, fs, lp);
  audio_buffer limited;
  lim.render(s, 14.0, limited);
  remove_dc(limited);  // limiting the asymmetric waveform leaves -50 dBFS of DC: a separate note
  fade(limited, 1.0, 2.0);
  const audio_buffer pad = silence(0.3);
  const audio_buffer a = test::concat({&pad, &limited, &pad});
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), (codes_t{"bus_limiter", "headroom"})) << r.dump();
  const mix_note* n = r.find("bus_limiter");
  ASSERT_NE(n, nullptr);
  EXPECT_LT(n->figures["plr_db"].get<double>(), mix_check_params{}.bus_limiter_plr_db);
  EXPECT_NEAR(n->figures["plr_db"].get<double>(), r.analysis.plr_db, analytic_tol_db);
}

// Loud, low PLR, but not limited: a tone swelling from -14 to 0 dBFS peaks at the ceiling only at
// the end, so it is not mistaken for a bus limiter.
TEST(MixNotes, LoudButDynamicIsNotLimited) {
  const double seconds = 20.0;
  audio_buffer a(2, static_cast<std::size_t>(seconds * fs));
  for (std::size_t i = 0; i < a.frames(); ++i) {
    const double t = static_cast<double>(i) / fs;
    const double g = std::pow(10.0, (-14.0 + 14.0 * t / seconds) / 20.0);
    a.channel(0)[i] = a.channel(1)[i] = static_cast<float>(g * std::sin(2.0 * M_PI * 220.0 * t));
  }
  fade(a, 0.5, 0.5);
  const checked r = run_check(a);
  ASSERT_LT(r.analysis.plr_db, mix_check_params{}.bus_limiter_plr_db);  // the PLR test alone would fire
  EXPECT_EQ(r.find("bus_limiter"), nullptr) << r.dump();

  audio_buffer loud = clean_song();
  scale_to_peak(loud, -0.1);
  const checked r2 = run_check(loud);
  EXPECT_EQ(r2.find("bus_limiter"), nullptr) << r2.dump();
}

TEST(MixNotes, DcOffsetOnTheLeft) {
  audio_buffer a = clean_song();
  double sum = 0.0;
  for (std::size_t i = 0; i < a.frames(); ++i) {
    a.channel(0)[i] += 0.01f;
    sum += a.channel(0)[i];
  }
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"dc_offset"}) << r.dump();
  const mix_note* n = r.find("dc_offset");
  ASSERT_NE(n, nullptr);
  EXPECT_NE(n->what.find("left"), std::string::npos);
  EXPECT_NEAR(n->figures["dc_offset_dbfs"].get<double>(), 20.0 * std::log10(sum / a.frames()), exact_db_tol);
}

// Anti-phase noise mix: L = s + u1, R = -s + u2 (correlation -0.5), fully anti-phase (u = 0)
// during [6, 7) s; the worst window lies there.
TEST(MixNotes, PolarityFindsWorstWindows) {
  const double seconds = 14.0, bad_from = 6.0, bad_to = 7.0;
  const audio_buffer n = test::white_noise(-20.0, seconds, fs, 3, 11);
  audio_buffer a(2, n.frames());
  double sl = 0, sr = 0, sll = 0, srr = 0, slr = 0;
  for (std::size_t i = 0; i < a.frames(); ++i) {
    const double t = static_cast<double>(i) / fs;
    const double u = (t >= bad_from && t < bad_to) ? 0.0 : 1.0;
    a.channel(0)[i] = n.channel(2)[i] + static_cast<float>(u) * n.channel(0)[i];
    a.channel(1)[i] = -n.channel(2)[i] + static_cast<float>(u) * n.channel(1)[i];
  }
  fade(a, 1.0, 1.0);
  for (std::size_t i = 0; i < a.frames(); ++i) {
    const double l = a.channel(0)[i], rr = a.channel(1)[i];
    sl += l, sr += rr, sll += l * l, srr += rr * rr, slr += l * rr;
  }
  const double m = static_cast<double>(a.frames());
  const double pearson = (slr - sl * sr / m) / std::sqrt((sll - sl * sl / m) * (srr - sr * sr / m));
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"polarity"}) << r.dump();
  const mix_note* note = r.find("polarity");
  ASSERT_NE(note, nullptr);
  EXPECT_NEAR(note->figures["correlation"].get<double>(), pearson, 1e-6);
  ASSERT_FALSE(note->times_s.empty());
  // A 400 ms window entirely inside [6, 7) s starts at 6.0 or 6.4 s.
  EXPECT_GE(note->times_s[0], bad_from - 1e-9);
  EXPECT_LE(note->times_s[0], bad_to - 0.4 + 1e-9);
  EXPECT_LT(note->figures["worst_windows"][0]["correlation"].get<double>(), -0.999);
}

// L = b + m, R = b - m: a 100 Hz "bass" in phase and a 1 kHz part in anti-phase, with 30 % more
// power in the 1 kHz part: correlation -0.13 (no polarity note), mono loses more than 3 dB.
// Notes with random levels and decays keep it music-like (not mistaken for a limiter).
TEST(MixNotes, MonoCompatibilityAgainstKWeightedTones) {
  const double fb = 100.0, fm = 1000.0, ab = 0.25, am = 0.25 * std::sqrt(1.3);
  const double seconds = 16.0, note_s = 0.5;
  audio_buffer a(2, static_cast<std::size_t>(seconds * fs));
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> level_db(-12.0, 0.0);
  for (double t0 = 0.5; t0 + note_s <= seconds - 1.0; t0 += note_s) {
    const double g = std::pow(10.0, level_db(rng) / 20.0);
    const auto first = static_cast<std::size_t>(t0 * fs);
    for (std::size_t i = 0; i < static_cast<std::size_t>(note_s * fs); ++i) {
      const double t = static_cast<double>(first + i) / fs, tn = static_cast<double>(i) / fs;
      const double env = g * std::min(1.0, tn / 0.005) * std::exp(-tn / 0.15) * std::min(1.0, (note_s - tn) / 0.005);
      const double b = ab * env * std::sin(2 * M_PI * fb * t), mm = am * env * std::sin(2 * M_PI * fm * t);
      a.channel(0)[first + i] = static_cast<float>(b + mm);
      a.channel(1)[first + i] = static_cast<float>(b - mm);
    }
  }
  const k_weighting_coeffs k = design_k_weighting(fs);
  auto kw = [&](double f) { return std::norm(k.shelf.response(f, fs) * k.highpass.response(f, fs)); };
  const double pb = kw(fb) * ab * ab, pm = kw(fm) * am * am;
  const double expected_db = 10.0 * std::log10(pb / (pb + pm));
  ASSERT_LT(expected_db, -mix_check_params{}.mono_drop_db);
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"mono_compatibility"}) << r.dump();
  const mix_note* n = r.find("mono_compatibility");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["mono_fold_down_db"].get<double>(), expected_db, fold_down_tones_tol_db);
  EXPECT_GT(n->figures["correlation"].get<double>(), mix_check_params{}.anti_phase_correlation);
}

// Spectral notes from a hand-built analysis: flat at -20 dB except a boost in the region, against
// a flat target. Normalization (mean over the 21 bands 100 Hz .. 10 kHz) leaves a sub-bass boost
// untouched and dilutes a 2-5 kHz boost E to E * (1 - 5/21).
tonal_analysis flat_tonal() {
  tonal_analysis t;
  t.sample_rate_hz = fs;
  t.mid_db.fill(-20.0);
  t.side_db.fill(-30.0);
  return t;
}

target_curve flat_target() {
  target_curve t;
  t.name = "flat";
  return t;  // flat, no width target
}

void boost(tonal_analysis& t, double lo_hz, double hi_hz, double db) {
  for (std::size_t b = 0; b < third_octave_band_count; ++b)
    if (third_octave_centres_hz()[b] >= lo_hz && third_octave_centres_hz()[b] <= hi_hz) t.mid_db[b] += db;
}

TEST(MixNotes, SubBassAgainstTarget) {
  const audio_buffer a = clean_song(10.0);
  const target_curve target = flat_target();
  tonal_analysis t = flat_tonal();
  boost(t, 19.0, 51.0, 9.0);  // the 20, 25, 31.5, 40 and 50 Hz bands
  const checked r = run_check(a, fs, nullptr, &t, &target);
  EXPECT_EQ(r.codes(), codes_t{"sub_bass"}) << r.dump();
  const mix_note* n = r.find("sub_bass");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["excess_db"].get<double>(), 9.0, analytic_tol_db);
  EXPECT_EQ(n->figures["bands"].size(), 5u);

  tonal_analysis below = flat_tonal();
  boost(below, 19.0, 51.0, 5.0);
  EXPECT_EQ(run_check(a, fs, nullptr, &below, &target).codes(), codes_t{}) << "5 dB is under the 6 dB threshold";
  EXPECT_EQ(run_check(a, fs, nullptr, &t, nullptr).codes(), codes_t{}) << "no target, no spectral notes";
}

TEST(MixNotes, HarshnessAgainstTarget) {
  const audio_buffer a = clean_song(10.0);
  const target_curve target = flat_target();
  tonal_analysis t = flat_tonal();
  boost(t, 1'900.0, 5'100.0, 9.0);  // 2, 2.5, 3.15, 4 and 5 kHz
  const checked r = run_check(a, fs, nullptr, &t, &target);
  EXPECT_EQ(r.codes(), codes_t{"harshness"}) << r.dump();
  const mix_note* n = r.find("harshness");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["excess_db"].get<double>(), 9.0 * (1.0 - 5.0 / 21.0), analytic_tol_db);

  tonal_analysis below = flat_tonal();
  boost(below, 1'900.0, 5'100.0, 7.5);  // 7.5 * 16/21 = 5.7 dB: under 6
  EXPECT_EQ(run_check(a, fs, nullptr, &below, &target).codes(), codes_t{});
}

// The same checks on measured spectra: a target made from another clean song (another seed: the
// same arrangement, other notes and noise), which the clean song meets and a song with a boosted
// region does not.
target_curve target_of(const audio_buffer& a, double rate = fs) {
  target_curve t;
  t.name = "demo song";
  t.mid_db = normalized_mid_db(analyze_tonal(a, rate));
  t.width_db.fill(std::numeric_limits<double>::quiet_NaN());
  return t;
}

void add_sines(audio_buffer& a, std::initializer_list<double> freqs_hz, double peak_each) {
  for (std::size_t i = 0; i < a.frames(); ++i) {
    double v = 0.0;
    for (double f : freqs_hz) v += peak_each * std::sin(2.0 * M_PI * f * static_cast<double>(i) / fs);
    for (int c = 0; c < 2; ++c) a.channel(c)[i] += static_cast<float>(v);
  }
}

TEST(MixNotes, MeasuredSpectraAgainstAnotherSongsTarget) {
  const target_curve target = target_of(clean_song(16.0, fs, 2));
  const audio_buffer clean = clean_song();
  const tonal_analysis clean_tonal = analyze_tonal(clean, fs);
  EXPECT_EQ(run_check(clean, fs, nullptr, &clean_tonal, &target).codes(), codes_t{});

  // A 31.5 Hz + 40 Hz rumble at -16 dBFS peak each (peaks stay under -3 dBFS: no headroom note).
  audio_buffer rumble = song(16.0);
  scale_to_peak(rumble, -9.0);
  add_sines(rumble, {31.25, 39.37}, std::pow(10.0, -16.0 / 20.0));
  fade(rumble, 1.0, 2.0);
  const tonal_analysis rt = analyze_tonal(rumble, fs);
  const checked r = run_check(rumble, fs, nullptr, &rt, &target);
  EXPECT_EQ(r.codes(), codes_t{"sub_bass"}) << r.dump();

  // Whistling upper mids: 2.5, 3.2 and 4 kHz at -20 dBFS peak each.
  audio_buffer harsh = song(16.0);
  scale_to_peak(harsh, -8.0);
  add_sines(harsh, {2'520.0, 3'175.0, 4'000.0}, std::pow(10.0, -20.0 / 20.0));
  fade(harsh, 1.0, 2.0);
  const tonal_analysis ht = analyze_tonal(harsh, fs);
  const checked h = run_check(harsh, fs, nullptr, &ht, &target);
  EXPECT_EQ(h.codes(), codes_t{"harshness"}) << h.dump();
}

// Hiss at -50 dBFS RMS for 2 s, then the song cut in (no fade-in needed: hiss is not silence).
TEST(MixNotes, NoisyHead) {
  const double hiss_dbfs = -50.0, hiss_s = 2.0;
  audio_buffer s = song(14.0);
  scale_to_peak(s, -6.0);
  fade(s, 0.0, 2.0);
  const audio_buffer hiss = test::white_noise(hiss_dbfs, hiss_s, fs, 2, 3), pad = silence(0.3);
  const audio_buffer a = test::concat({&hiss, &s, &pad});
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"noisy_head"}) << r.dump();
  const mix_note* n = r.find("noisy_head");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["floor_dbfs"].get<double>(), hiss_dbfs + hiss_floor_bias_db, hiss_floor_tol_db);
  EXPECT_NEAR(n->figures["start_s"].get<double>(), 0.0, 1e-12);
  EXPECT_GE(n->figures["end_s"].get<double>(), hiss_s - 0.01);
  EXPECT_LE(n->figures["end_s"].get<double>(), hiss_s + 0.1);  // the song's first attack
}

TEST(MixNotes, NoisyTail) {
  const double hiss_dbfs = -50.0, hiss_s = 2.0, song_s = 14.0;
  audio_buffer s = song(song_s);
  scale_to_peak(s, -6.0);
  fade(s, 1.0, 0.3);  // a short fade into the hiss
  const audio_buffer hiss = test::white_noise(hiss_dbfs, hiss_s, fs, 2, 4), pad = silence(0.3);
  const audio_buffer a = test::concat({&pad, &s, &hiss});
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"noisy_tail"}) << r.dump();
  const mix_note* n = r.find("noisy_tail");
  ASSERT_NE(n, nullptr);
  EXPECT_NEAR(n->figures["floor_dbfs"].get<double>(), hiss_dbfs + hiss_floor_bias_db, hiss_floor_tol_db);
  const double song_end = 0.3 + song_s;
  EXPECT_GE(n->figures["start_s"].get<double>(), song_end - 0.3);  // inside the fade
  EXPECT_LE(n->figures["start_s"].get<double>(), song_end + 0.01);
  EXPECT_NEAR(n->figures["end_s"].get<double>(), static_cast<double>(a.frames()) / fs, 1e-9);
}

// The level the truncation check reads: mean over channels of the slice's variance, dBFS
// (two-pass float64 reference).
double rms_db(const audio_buffer& a, std::size_t first, std::size_t count) {
  double s = 0.0;
  for (int c = 0; c < 2; ++c) {
    double mean = 0.0;
    for (std::size_t i = first; i < first + count; ++i) mean += a.channel(c)[i];
    mean /= static_cast<double>(count);
    for (std::size_t i = first; i < first + count; ++i) s += (a.channel(c)[i] - mean) * (a.channel(c)[i] - mean);
  }
  return 10.0 * std::log10(s / (2.0 * count));
}

TEST(MixNotes, TruncatedHead) {
  // The song from its loud middle: starts mid-note.
  const audio_buffer full = song(16.0);
  audio_buffer a(2, full.frames() - static_cast<std::size_t>(6.0 * fs));
  for (int c = 0; c < 2; ++c)
    std::copy(full.channel(c) + static_cast<std::size_t>(6.0 * fs), full.channel(c) + full.frames(), a.channel(c));
  scale_to_peak(a, -6.0);
  fade(a, 0.0, 2.0);
  const audio_buffer pad = silence(0.3);
  a = test::concat({&a, &pad});
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"truncated_head"}) << r.dump();
  const mix_note* n = r.find("truncated_head");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->times_s, std::vector<double>{0.0});
  EXPECT_NEAR(n->figures["rms_dbfs"].get<double>(), rms_db(a, 0, 441), exact_db_tol);
}

TEST(MixNotes, TruncatedTail) {
  // Ends mid-beat (beats fall every 0.5 s) inside the loud middle section of a 16 s song.
  audio_buffer s = song(9.75);
  const audio_buffer full = song(16.0);
  for (int c = 0; c < 2; ++c) std::copy(full.channel(c), full.channel(c) + s.frames(), s.channel(c));
  scale_to_peak(s, -6.0);
  fade(s, 1.0, 0.0);
  const audio_buffer pad = silence(0.3);
  const audio_buffer a = test::concat({&pad, &s});
  const checked r = run_check(a);
  EXPECT_EQ(r.codes(), codes_t{"truncated_tail"}) << r.dump();
  const mix_note* n = r.find("truncated_tail");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->times_s.size(), 1u);
  EXPECT_NEAR(n->times_s[0], static_cast<double>(a.frames() - 441) / fs, 1e-9);
  EXPECT_NEAR(n->figures["rms_dbfs"].get<double>(), rms_db(a, a.frames() - 441, 441), exact_db_tol);
}

TEST(MixNotes, BitDepthPaddedSixteenBit) {
  audio_buffer a = clean_song(10.0);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < a.frames(); ++i)
      a.channel(c)[i] = std::nearbyint(a.channel(c)[i] * 32768.0f) / 32768.0f;
  const source_info pcm24 = source_of(a, fs, "pcm24", 24), flt = source_of(a, fs, "float", 0),
                    pcm16 = source_of(a, fs, "pcm16", 16);
  const checked r = run_check(a, fs, &pcm24);
  EXPECT_EQ(r.codes(), codes_t{"bit_depth"}) << r.dump();
  EXPECT_NE(r.find("bit_depth")->what.find("24-bit"), std::string::npos);
  const checked rf = run_check(a, fs, &flt);
  EXPECT_EQ(rf.codes(), codes_t{"bit_depth"}) << rf.dump();
  EXPECT_EQ(run_check(a, fs, &pcm16).codes(), codes_t{}) << "an honest 16-bit file";
  const audio_buffer fine = clean_song(10.0);
  EXPECT_EQ(run_check(fine, fs, &pcm24).codes(), codes_t{}) << "real 24-bit content";
}

TEST(MixNotes, UnusualSampleRate) {
  const double rate = 32'000.0;
  const audio_buffer a = clean_song(10.0, rate);
  const source_info src = source_of(a, rate);
  const checked r = run_check(a, rate, &src);
  EXPECT_EQ(r.codes(), codes_t{"sample_rate"}) << r.dump();
  EXPECT_NE(r.find("sample_rate")->what.find("32 kHz"), std::string::npos);
}

// A 44.1 kHz song resampled to 96 kHz has nothing above 22 kHz; the same song synthesized at
// 96 kHz has its hi-hats' noise up to 48 kHz.
TEST(MixNotes, UpsampledHighRateFile) {
  const double rate = 96'000.0;
  const audio_buffer up = resample(clean_song(10.0), fs, rate);
  const source_info src = source_of(up, rate);
  const checked r = run_check(up, rate, &src);
  EXPECT_EQ(r.codes(), codes_t{"sample_rate"}) << r.dump();
  const mix_note* n = r.find("sample_rate");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->severity, note_severity::info);
  EXPECT_NE(n->what.find("upsampled"), std::string::npos);

  const audio_buffer native = clean_song(10.0, rate);
  const source_info nsrc = source_of(native, rate);
  const checked rn = run_check(native, rate, &nsrc);
  EXPECT_EQ(rn.codes(), codes_t{}) << rn.dump();
}

// ---- reports ---------------------------------------------------------------------------------

TEST(MixNotes, JsonCarriesEveryField) {
  audio_buffer a = clean_song(10.0);
  for (std::size_t i = 0; i < 5; ++i) a.channel(1)[100'000 + i] = 1.0f;
  const checked r = run_check(a);
  ASSERT_EQ(r.notes.size(), 1u);
  const nlohmann::json j = to_json(r.notes[0]);
  EXPECT_EQ(j["code"], "clipping");
  EXPECT_EQ(j["severity"], "problem");
  for (const char* key : {"what", "where", "how_bad", "advice"}) EXPECT_FALSE(j[key].get<std::string>().empty()) << key;
  EXPECT_EQ(j["times_s"].size(), 1u);
  EXPECT_EQ(j["figures"]["channel"], "right");
}

TEST(MixNotes, MarkdownHasAHeadingPerTrackAndListsCleanOnes) {
  audio_buffer a = clean_song(10.0);
  for (std::size_t i = 0; i < 5; ++i) a.channel(1)[100'000 + i] = 1.0f;
  const std::vector<track_notes> tracks = {{"Loud One", "mixes/01 loud one.wav", run_check(a).notes},
                                           {"Quiet One", "mixes/02 quiet one.wav", {}}};
  const std::string md = mix_notes_markdown("Demo Album", tracks);
  EXPECT_NE(md.find("# Mix notes: Demo Album"), std::string::npos);
  EXPECT_NE(md.find("## Loud One"), std::string::npos);
  EXPECT_NE(md.find("## Quiet One"), std::string::npos);
  EXPECT_NE(md.find("Clipped samples on the right channel"), std::string::npos);
  EXPECT_NE(md.find("at 0:02.268"), std::string::npos);  // 100'000 / 44'100 s
  EXPECT_GT(md.find("Clean: nothing to report"), md.find("## Quiet One"));
  EXPECT_NE(md.find("1 with notes, 1 clean"), std::string::npos);
}

// ---- translation -----------------------------------------------------------------------------

TEST(Translation, MonoFoldDownOfIdenticalChannelsIsZero) {
  const audio_buffer s = song(10.0);
  audio_buffer a(2, s.frames());
  for (int c = 0; c < 2; ++c) std::copy(s.channel(0), s.channel(0) + s.frames(), a.channel(c));
  const translation_check t = check_translation(a, fs, flat_tonal(), nullptr);
  EXPECT_NEAR(t.mono_fold_down_db, 0.0, fold_down_identical_tol_db);
  EXPECT_TRUE(std::isnan(t.target_deviation_db));
}

TEST(Translation, MonoFoldDownOfIndependentNoisesIsMinus3dB) {
  const audio_buffer a = test::white_noise(-20.0, 15.0, fs, 2, 21);
  const translation_check t = check_translation(a, fs, flat_tonal(), nullptr);
  EXPECT_NEAR(t.mono_fold_down_db, 10.0 * std::log10(0.5), fold_down_noise_tol_db);
}

TEST(Translation, MonoFoldDownOfOppositeChannelsCancels) {
  audio_buffer a = test::white_noise(-20.0, 10.0, fs, 2, 22);
  for (std::size_t i = 0; i < a.frames(); ++i) a.channel(1)[i] = -a.channel(0)[i];
  const translation_check t = check_translation(a, fs, flat_tonal(), nullptr);
  EXPECT_LT(t.mono_fold_down_db, -60.0);
  EXPECT_TRUE(to_json(t)["mono_fold_down_db"].is_null()) << "complete cancellation is -inf, written as null";
}

// Equal-power 100 Hz and 1 kHz tones: half the mid energy is above 150 Hz, -3.01 dB. The Welch
// analysis leaks a little of the 100 Hz tone past 111 Hz (Hann side lobes): 0.2 dB.
TEST(Translation, SmallSpeakerLossOfMeasuredTones) {
  constexpr double measured_loss_tol_db = 0.2;
  audio_buffer a(2, static_cast<std::size_t>(10.0 * fs));
  add_sines(a, {100.0, 1'000.0}, 0.25);
  const tonal_analysis t = analyze_tonal(a, fs);
  const translation_check tc = check_translation(a, fs, t, nullptr);
  EXPECT_NEAR(tc.small_speaker_loss_db, 10.0 * std::log10(0.5), measured_loss_tol_db);
  EXPECT_NEAR(tc.mono_fold_down_db, 0.0, fold_down_identical_tol_db);
  // Against its own curve the deviation is zero; against a tilted one, the tilt's RMS.
  target_curve own = target_of(a);
  EXPECT_NEAR(check_translation(a, fs, t, &own).target_deviation_db, 0.0, analytic_tol_db);
  EXPECT_TRUE(std::isnan(check_translation(a, fs, t, nullptr).target_deviation_db));
}

TEST(Translation, SmallSpeakerLossFromBands) {
  tonal_analysis t;
  t.mid_db.fill(-std::numeric_limits<double>::infinity());
  const auto& centres = third_octave_centres_hz();
  auto band_of = [&](double f) {
    return static_cast<std::size_t>(
        std::min_element(centres.begin(), centres.end(),
                         [&](double x, double y) { return std::abs(std::log2(x / f)) < std::abs(std::log2(y / f)); }) -
        centres.begin());
  };
  // Equal power at 100 Hz and 1 kHz: half of it above 150 Hz.
  t.mid_db[band_of(100.0)] = -12.0;
  t.mid_db[band_of(1000.0)] = -12.0;
  const audio_buffer a = test::white_noise(-20.0, 2.0, fs, 2, 23);
  EXPECT_NEAR(check_translation(a, fs, t, nullptr).small_speaker_loss_db, 10.0 * std::log10(0.5), analytic_tol_db);
  // Only the 160 Hz band (140.3 .. 176.8 Hz): the share of its width in octaves above 150 Hz.
  tonal_analysis only160;
  only160.mid_db.fill(-std::numeric_limits<double>::infinity());
  const std::size_t b160 = band_of(160.0);
  only160.mid_db[b160] = -6.0;
  const double hi = centres[b160] * std::pow(2.0, 1.0 / 6.0);
  EXPECT_NEAR(check_translation(a, fs, only160, nullptr).small_speaker_loss_db,
              10.0 * std::log10(std::log2(hi / 150.0) * 3.0), analytic_tol_db);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

std::uint64_t bits(double x) {
  return std::bit_cast<std::uint64_t>(x);
}

// A master with what a stream must carry across blocks: noise whose channels go from correlated
// to anti-phase, DC, a silent gap and full-scale runs.
audio_buffer streaming_master() {
  audio_buffer a = test::white_noise(-14.0, 6.0, fs, 2, 61);
  for (std::size_t i = 0; i < a.frames(); ++i) {
    const float mix = static_cast<float>(i) / static_cast<float>(a.frames());
    a.channel(1)[i] = (1.0f - 2.0f * mix) * a.channel(0)[i] + 0.3f * a.channel(1)[i] + 0.005f;
  }
  for (std::size_t i = 50'000; i < 60'000; ++i) a.channel(0)[i] = a.channel(1)[i] = 0.0f;
  for (std::size_t i = 4090; i < 4100; ++i) a.channel(0)[i] = 1.0f;
  return a;
}

// The fold-down difference straight from two meters: (L+R)/2 weighted 2, and L, R.
double reference_fold_down_db(const audio_buffer& a) {
  audio_buffer mono(1, a.frames());
  for (std::size_t i = 0; i < a.frames(); ++i) mono.channel(0)[i] = 0.5f * (a.channel(0)[i] + a.channel(1)[i]);
  loudness_meter m, s;
  const double weight[] = {2.0};
  m.prepare(fs, 1, weight);
  m.process(mono.view());
  s.prepare(fs, 2);
  s.process(a.view());
  return m.integrated_lufs() - s.integrated_lufs();
}

TEST(TranslationMeter, AnyBlockPartitionGivesCheckTranslationBitForBit) {
  std::mt19937 rng(14);
  std::uniform_int_distribution<std::size_t> size(1, 9000);
  std::vector<std::size_t> random(71);
  for (std::size_t& s : random) s = size(rng);
  const std::vector<std::vector<std::size_t>> partitions = {{1}, {7}, {480}, {4096}, {65'537}, random};
  audio_buffer cancelling = test::white_noise(-20.0, 3.0, fs, 2, 62);
  for (std::size_t i = 0; i < cancelling.frames(); ++i) cancelling.channel(1)[i] = -cancelling.channel(0)[i];
  const audio_buffer master = streaming_master(), silent = silence(2.0);
  const target_curve flat;
  for (const audio_buffer* a : std::initializer_list<const audio_buffer*>{&master, &cancelling, &silent}) {
    const tonal_analysis tonal = analyze_tonal(*a, fs);
    const translation_check whole = check_translation(*a, fs, tonal, &flat);
    if (a == &master) EXPECT_EQ(whole.mono_fold_down_db, reference_fold_down_db(master));
    for (const std::vector<std::size_t>& sizes : partitions) {
      SCOPED_TRACE(sizes.size() == 1 ? std::to_string(sizes[0]) : "random");
      translation_meter m(fs);
      std::size_t pos = 0;
      for (std::size_t k = 0; pos < a->frames(); ++k) {
        const std::size_t n = std::min(sizes[k % sizes.size()], a->frames() - pos);
        m.add(a->view(pos, n));
        pos += n;
      }
      const translation_check t = m.finish(tonal, &flat);
      EXPECT_EQ(bits(t.mono_fold_down_db), bits(whole.mono_fold_down_db));
      EXPECT_EQ(bits(t.small_speaker_loss_db), bits(whole.small_speaker_loss_db));
      EXPECT_EQ(bits(t.target_deviation_db), bits(whole.target_deviation_db));
      EXPECT_TRUE(std::isnan(m.finish(tonal, nullptr).target_deviation_db));
    }
  }
}

}  // namespace
}  // namespace lathe
