// Agreement with libebur128 (the reference implementation most tools use) on deterministic
// music-like programme at 44.1, 48 and 96 kHz, fed in random block sizes: integrated loudness,
// loudness range, album (merged) loudness and true peak.
#include <ebur128.h>
#include <fftw3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "lathe/analysis.hpp"
#include "lathe/loudness.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {
namespace {

// Required agreement on integrated loudness, and what is achieved: both meters compute the same
// blocks with the same K-weighting (design and gating identical), differing only in filter
// structure rounding (a 4th-order direct form vs two transposed biquads).
constexpr double integrated_required_lu = 0.05;
constexpr double integrated_achieved_lu = 1e-4;
// LRA. libebur128 1.2 takes a short-term block only every 1 s (its frame counter restarts at 2 s
// after each block); Tech 3342 (2016) asks for at least 10 Hz, which this meter keeps. On the same
// 1 s grid (our blocks decimated) the gating and the nearest-rank percentiles agree to rounding;
// on the full 10 Hz blocks the two differ only by that sampling (measured up to 0.20 LU on these
// 24 s programmes).
constexpr double lra_same_blocks_lu = 1e-4;
constexpr double lra_sampling_lu = 0.5;
// True peak: libebur128 1.2 interpolates 4x (below 96 kHz) or 2x (96..192 kHz) with a 49-tap
// Hann-windowed sinc; ours 8x / 4x with a 257- / 129-tap Kaiser sinc. On programme whose peaks are
// carried by content well below fs/4 both read the same to a few hundredths of a dB.
// libebur128's coarser grid and short filter can under-read intersample peaks of bright programme
// (hi-hats), so its reading is only a fair reference when it is itself close to the ideal one; the
// ideal reading (band-limited FFT interpolation on the same grid as ours) is the real reference.
constexpr double true_peak_required_db = 0.1;
constexpr double ebur128_trusted_db = 0.05;  // libebur128 within this of ideal: we must agree
constexpr double true_peak_ideal_db = 0.02;  // ours against the ideal interpolation

// ---- music-like programme ------------------------------------------------------------------------

/// RBJ low-pass (Butterworth Q), for band-limiting the noise.
biquad_coeffs lowpass(double f_hz, double fs_hz) {
  const double w = 2.0 * M_PI * f_hz / fs_hz, alpha = std::sin(w) * M_SQRT1_2, cw = std::cos(w);
  const double a0 = 1.0 + alpha;
  biquad_coeffs c;
  c.b0 = c.b2 = (1.0 - cw) / 2.0 / a0;
  c.b1 = (1.0 - cw) / a0;
  c.a1 = -2.0 * cw / a0;
  c.a2 = (1.0 - alpha) / a0;
  return c;
}

/// Deterministic stereo programme: a chord progression of detuned harmonic voices with ADSR
/// envelopes, a bass line, kick, snare and hi-hat from filtered noise, in loud / quiet / loud
/// sections, normalized to `peak_dbfs` sample peak. Like recorded music, it has little above
/// 16 kHz whatever the rate (the noise is low-passed at 14 kHz, 4th order): white noise up to
/// 48 kHz at 96 kHz would test the interpolators' transition bands, not music.
audio_buffer music_like(double fs, double seconds, std::uint32_t seed, double peak_dbfs) {
  const auto n = static_cast<std::size_t>(seconds * fs);
  audio_buffer out(2, n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const double beat_s = 60.0 / (100.0 + 40.0 * uni(rng));
  const int roots[] = {57, 53, 48, 55, 50, 52};
  const auto midi_hz = [](double note) { return 440.0 * std::pow(2.0, (note - 69.0) / 12.0); };
  std::vector<double> chord_phase(2 * 3 * 4, 0.0);
  double bass_phase = 0.0, kick_phase = 0.0;
  double snare_lp[2] = {0, 0}, hat_lp[2] = {0, 0};
  biquad band[2][2];
  for (auto& ch : band)
    for (auto& stage : ch) stage.set(lowpass(14'000.0, fs));
  const double snare_a = 1.0 - std::exp(-2.0 * M_PI * 1'500.0 / fs), hat_a = 1.0 - std::exp(-2.0 * M_PI * 7'000.0 / fs);
  const double quiet_from = 0.4 * seconds, loud_again = 0.65 * seconds;
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / fs;
    const double beat = t / beat_s;
    const auto beat_index = static_cast<long>(beat);
    const double in_beat = (beat - static_cast<double>(beat_index)) * beat_s;  // seconds into the beat
    const long bar_chord = beat_index / 2;
    const double in_chord = t - static_cast<double>(bar_chord) * 2.0 * beat_s;
    const int root = roots[bar_chord % 6];
    const bool minor = (bar_chord % 3) == 1;
    // Section gain with 50 ms ramps: 0 dB, -18 dB, -3 dB.
    const auto ramp = [&](double edge) { return std::clamp((t - edge) / 0.05 + 0.5, 0.0, 1.0); };
    const double section = 1.0 + (0.126 - 1.0) * ramp(quiet_from) + (0.708 - 0.126) * ramp(loud_again);
    // Chord: three voices, four harmonics, detuned per channel.
    const double env_chord = std::min(in_chord / 0.015, 1.0) * (0.6 + 0.4 * std::exp(-in_chord / 0.2)) *
                             std::clamp((2.0 * beat_s - in_chord) / 0.1, 0.0, 1.0);
    double chord[2] = {0, 0};
    for (int v = 0; v < 3; ++v) {
      const double note = root + (v == 0 ? 0 : v == 1 ? (minor ? 3 : 4) : 7) + 12;
      for (int ch = 0; ch < 2; ++ch) {
        const double detune = std::pow(2.0, (ch == 0 ? -3.0 : 4.0) * (v + 1) / 1200.0);
        for (int h = 1; h <= 4; ++h) {
          double& ph = chord_phase[static_cast<std::size_t>((ch * 3 + v) * 4 + h - 1)];
          ph += 2.0 * M_PI * midi_hz(note) * detune * h / fs;
          chord[ch] += env_chord * std::sin(ph) / h * (ch == (v & 1) ? 0.8 : 0.5);
        }
      }
    }
    // Bass: root two octaves down, every beat.
    bass_phase += 2.0 * M_PI * midi_hz(root - 12) / fs;
    const double bass = (std::sin(bass_phase) + 0.3 * std::sin(2.0 * bass_phase)) * std::exp(-in_beat / 0.35);
    // Kick on every beat: a falling sine.
    const double kick_hz = 50.0 + 100.0 * std::exp(-in_beat / 0.04);
    kick_phase = in_beat < 1.0 / fs ? 0.0 : kick_phase + 2.0 * M_PI * kick_hz / fs;
    const double kick = std::sin(kick_phase) * std::exp(-in_beat / 0.15);
    for (int ch = 0; ch < 2; ++ch) {
      // Snare on beats 2 and 4, hi-hat on eighths: noise, high-passed by subtracting a one-pole low-pass.
      const double w = band[ch][1].tick(band[ch][0].tick(noise(rng)));
      snare_lp[ch] += snare_a * (w - snare_lp[ch]);
      hat_lp[ch] += hat_a * (w - hat_lp[ch]);
      const double snare = (beat_index % 2 == 1) ? (w - snare_lp[ch]) * std::exp(-in_beat / 0.12) : 0.0;
      const double eighth = std::fmod(in_beat, beat_s / 2.0);
      const double hat = (w - hat_lp[ch]) * std::exp(-eighth / 0.03);
      const double v = section * (0.25 * chord[ch] + 0.5 * bass + 0.8 * kick + 0.6 * snare + 0.5 * hat);
      out.channel(ch)[i] = static_cast<float>(v);
    }
  }
  float peak = 0.0f;
  for (int ch = 0; ch < 2; ++ch)
    for (std::size_t i = 0; i < n; ++i) peak = std::max(peak, std::abs(out.channel(ch)[i]));
  const auto g = static_cast<float>(std::pow(10.0, peak_dbfs / 20.0) / peak);
  for (int ch = 0; ch < 2; ++ch)
    for (std::size_t i = 0; i < n; ++i) out.channel(ch)[i] *= g;
  return out;
}

// ---- runners -------------------------------------------------------------------------------------

std::size_t random_block(std::mt19937& rng) {
  const std::size_t sizes[] = {1, 2, 3, 5, 7, 64, 127, 441, 480, 1009, 4096, 8191, 9973};
  return sizes[rng() % 13];
}

struct ebur128_deleter {
  void operator()(ebur128_state* st) const { ebur128_destroy(&st); }
};
using ebur128_ptr = std::unique_ptr<ebur128_state, ebur128_deleter>;

ebur128_ptr run_ebur128(const audio_buffer& b, double fs, std::uint32_t seed) {
  ebur128_ptr st(ebur128_init(static_cast<unsigned>(b.channels()), static_cast<unsigned long>(fs),
                              EBUR128_MODE_I | EBUR128_MODE_LRA | EBUR128_MODE_TRUE_PEAK));
  std::mt19937 rng(seed);
  std::vector<float> interleaved;
  std::size_t pos = 0;
  while (pos < b.frames()) {
    const std::size_t n = std::min(b.frames() - pos, random_block(rng) * 7);
    interleaved.resize(n * static_cast<std::size_t>(b.channels()));
    for (std::size_t i = 0; i < n; ++i)
      for (int c = 0; c < b.channels(); ++c)
        interleaved[i * static_cast<std::size_t>(b.channels()) + static_cast<std::size_t>(c)] = b.channel(c)[pos + i];
    ebur128_add_frames_float(st.get(), interleaved.data(), n);
    pos += n;
  }
  return st;
}

loudness_meter run_meter_random_blocks(const audio_buffer& b, double fs, std::uint32_t seed) {
  loudness_meter m;
  m.prepare(fs, b.channels());
  std::mt19937 rng(seed);
  std::size_t pos = 0;
  while (pos < b.frames()) {
    const std::size_t n = std::min(b.frames() - pos, random_block(rng));
    m.process(b.view(pos, n));
    pos += n;
  }
  return m;
}

double ebur128_true_peak_db(ebur128_state* st, int channels) {
  double peak = 0.0;
  for (int c = 0; c < channels; ++c) {
    double v = 0.0;
    ebur128_true_peak(st, static_cast<unsigned>(c), &v);
    peak = std::max(peak, v);
  }
  return 20.0 * std::log10(peak);
}

/// Our short-term blocks (3.0 s, 3.1 s, ...) on libebur128's 1 s grid (3 s, 4 s, ...).
loudness_blocks on_ebur128_grid(const loudness_blocks& b) {
  loudness_blocks d;
  d.momentary_energy = b.momentary_energy;
  for (std::size_t i = 0; i < b.short_term_energy.size(); i += 10)
    d.short_term_energy.push_back(b.short_term_energy[i]);
  return d;
}

/// Ideal true peak of one channel on a grid of `factor` points per sample: the zero-extended
/// sequence's band-limited interpolation by FFT zero-padding, in 32768-sample windows that overlap
/// by half (the middle half of each is kept, where the window's wrap-around has decayed below
/// 1e-5 of full scale).
double ideal_true_peak(const float* x, std::size_t frames, int factor) {
  constexpr std::size_t n = 32768, hop = n / 2, quarter = n / 4;
  const std::size_t m = n * static_cast<std::size_t>(factor);
  std::vector<float> padded(frames + 2 * n, 0.0f);
  std::copy(x, x + frames, padded.begin() + static_cast<std::ptrdiff_t>(quarter));
  float* in = fftwf_alloc_real(n);
  fftwf_complex* spec = fftwf_alloc_complex(n / 2 + 1);
  fftwf_complex* up = fftwf_alloc_complex(m / 2 + 1);
  float* out = fftwf_alloc_real(m);
  const fftwf_plan fwd = fftwf_plan_dft_r2c_1d(static_cast<int>(n), in, spec, FFTW_ESTIMATE);
  const fftwf_plan inv = fftwf_plan_dft_c2r_1d(static_cast<int>(m), up, out, FFTW_ESTIMATE);
  double peak = 0.0;
  for (std::size_t start = 0; start + quarter < frames + quarter; start += hop) {
    std::copy(padded.begin() + static_cast<std::ptrdiff_t>(start),
              padded.begin() + static_cast<std::ptrdiff_t>(start + n), in);
    fftwf_execute(fwd);
    std::fill(up[0], up[0] + 2 * (m / 2 + 1), 0.0f);
    for (std::size_t k = 0; k <= n / 2; ++k) {
      const float w = (k == n / 2 ? 0.5f : 1.0f) / static_cast<float>(n);  // split the Nyquist bin
      up[k][0] = spec[k][0] * w;
      up[k][1] = spec[k][1] * w;
    }
    fftwf_execute(inv);
    for (std::size_t i = quarter * static_cast<std::size_t>(factor); i < 3 * quarter * static_cast<std::size_t>(factor);
         ++i) {
      peak = std::max(peak, static_cast<double>(std::abs(out[i])));
    }
  }
  fftwf_destroy_plan(fwd);
  fftwf_destroy_plan(inv);
  fftwf_free(in);
  fftwf_free(spec);
  fftwf_free(up);
  fftwf_free(out);
  return peak;
}

struct programme {
  double fs;
  std::uint32_t seed;
  double peak_dbfs;
};

class Ebur128Agreement : public ::testing::TestWithParam<programme> {};

TEST_P(Ebur128Agreement, IntegratedLraAndTruePeak) {
  const programme p = GetParam();
  const audio_buffer b = music_like(p.fs, 24.0, p.seed, p.peak_dbfs);
  const loudness_meter m = run_meter_random_blocks(b, p.fs, p.seed + 1);
  const ebur128_ptr ref = run_ebur128(b, p.fs, p.seed + 2);

  double ref_i = 0.0, ref_lra = 0.0;
  ebur128_loudness_global(ref.get(), &ref_i);
  ebur128_loudness_range(ref.get(), &ref_lra);
  ASSERT_TRUE(std::isfinite(ref_i));
  EXPECT_GT(ref_lra, 3.0);  // the sections make a real loudness range
  EXPECT_NEAR(m.integrated_lufs(), ref_i, integrated_required_lu);
  EXPECT_NEAR(m.integrated_lufs(), ref_i, integrated_achieved_lu);
  EXPECT_NEAR(m.loudness_range_lu(), ref_lra, lra_sampling_lu);
  EXPECT_NEAR(on_ebur128_grid(m.blocks()).loudness_range_lu(), ref_lra, lra_same_blocks_lu);

  float tp = 0.0f;
  double ideal = 0.0;
  true_peak_interpolator probe;
  probe.prepare(p.fs);
  for (int c = 0; c < 2; ++c) {
    tp = std::max(tp, true_peak_of(b.channel(c), b.frames(), p.fs));
    ideal = std::max(ideal, ideal_true_peak(b.channel(c), b.frames(), probe.factor()));
  }
  const double tp_db = 20.0 * std::log10(tp), ideal_db = 20.0 * std::log10(ideal);
  const double ref_tp = ebur128_true_peak_db(ref.get(), 2);
  std::printf("fs %.0f seed %u: I %.5f vs %.5f LUFS, LRA %.4f vs %.4f LU, TP %.4f vs %.4f dBTP (ideal %.4f)\n", p.fs,
              p.seed, m.integrated_lufs(), ref_i, m.loudness_range_lu(), ref_lra, tp_db, ref_tp, ideal_db);
  EXPECT_NEAR(tp_db, ideal_db, true_peak_ideal_db);
  EXPECT_GE(tp_db, ref_tp - true_peak_required_db);  // never below libebur128's reading
  if (ideal_db - ref_tp <= ebur128_trusted_db) {
    EXPECT_NEAR(tp_db, ref_tp, true_peak_required_db);
  } else {
    // libebur128 under-reads this programme: we must be the closer of the two to the ideal.
    EXPECT_LT(std::abs(tp_db - ideal_db), std::abs(ref_tp - ideal_db));
  }

  // analyze() reports the same figures.
  const track_analysis a = analyze(b, p.fs);
  EXPECT_NEAR(a.integrated_lufs, ref_i, integrated_achieved_lu);
  EXPECT_EQ(a.loudness_range_lu, m.loudness_range_lu());
  EXPECT_NEAR(a.true_peak_dbtp, tp_db, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Programmes, Ebur128Agreement,
                         ::testing::Values(programme{44'100.0, 1, -1.0}, programme{48'000.0, 2, -0.3},
                                           programme{96'000.0, 3, -2.0}, programme{44'100.0, 4, -6.0}));

TEST(Ebur128Agreement, AlbumLoudnessIsMergedBlocks) {
  // Three "tracks" at different levels: merged blocks against libebur128's loudness_global_multiple.
  const double fs = 44'100.0;
  loudness_blocks album, album_1hz;
  std::vector<ebur128_ptr> refs;
  std::vector<ebur128_state*> raw;
  for (std::uint32_t k = 0; k < 3; ++k) {
    const audio_buffer b = music_like(fs, 8.0 + 3.0 * k, 10 + k, -1.0 - 6.0 * k);
    const loudness_meter m = run_meter_random_blocks(b, fs, 20 + k);
    album.merge(m.blocks());
    album_1hz.merge(on_ebur128_grid(m.blocks()));
    refs.push_back(run_ebur128(b, fs, 30 + k));
    raw.push_back(refs.back().get());
  }
  double ref_i = 0.0, ref_lra = 0.0;
  ebur128_loudness_global_multiple(raw.data(), raw.size(), &ref_i);
  ebur128_loudness_range_multiple(raw.data(), raw.size(), &ref_lra);
  EXPECT_NEAR(album.integrated_lufs(), ref_i, integrated_achieved_lu);
  EXPECT_NEAR(album_1hz.loudness_range_lu(), ref_lra, lra_same_blocks_lu);
  std::printf("album: I %.5f vs %.5f LUFS, LRA %.4f (10 Hz) / %.4f (1 Hz) vs %.4f LU\n", album.integrated_lufs(), ref_i,
              album.loudness_range_lu(), album_1hz.loudness_range_lu(), ref_lra);
}

}  // namespace
}  // namespace lathe
