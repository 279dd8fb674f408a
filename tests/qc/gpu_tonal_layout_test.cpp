// CPU checks of the GPU Welch power decomposition (kernels/qc/tonal.cu), runnable without a GPU: the
// slice plan and the per-thread bodies of lathe_gpu/detail/welch_layout.hpp are driven exactly as
// the kernels drive them (gather per slice into 2 x slice_capacity padded entries, one batched
// float R2C, accumulate per segment in a shuffled thread order), with FFTW float standing in for
// cuFFT, and compared with lathe::measure_welch_power track by track. The emulation uses the CPU's
// FFT, so it must reproduce the CPU bitwise: any index error (frame start, count, padding, entry
// or bin offsets, segment bounds) shows as a difference.
#include <fftw3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "gpu/welch_support.hpp"
#include "lathe/fft64.hpp"
#include "lathe/tonal.hpp"
#include "lathe_gpu/detail/welch_layout.hpp"

namespace lathe {
namespace {

namespace gd = lathe::gpu::detail;
namespace wt = lathe::welch_test;

constexpr double fs_hz = 48'000.0;
// The task's band criterion (the GPU test's too): 1/3-octave levels after summarize().
constexpr double band_tolerance_db = 0.01;
// The GPU test bounds cuFFT against FFTW at 1e-4 per bin (above the bin floor). Each float FFT must
// then stay within half of it of the exact (float64) transform of the same float input.
constexpr double float_fft_bin_tolerance = 0.5e-4;

struct fftwf_free_t {
  void operator()(void* p) const noexcept { fftwf_free(p); }
};

// The emulated device: FFTW float plans for n (FFTW_ESTIMATE, as the CPU), run entry by entry
// over a batch buffer laid out as cuFFT's (entries n floats / n/2 + 1 complex apart).
class float_r2c {
 public:
  explicit float_r2c(std::size_t n)
      : n_(n),
        in_(static_cast<float*>(fftwf_malloc(n * sizeof(float)))),
        out_(static_cast<fftwf_complex*>(fftwf_malloc((n / 2 + 1) * sizeof(fftwf_complex)))) {
    plan_ = fftwf_plan_dft_r2c_1d(static_cast<int>(n), in_.get(), out_.get(), FFTW_ESTIMATE);
  }
  ~float_r2c() { fftwf_destroy_plan(plan_); }
  float_r2c(const float_r2c&) = delete;
  float_r2c& operator=(const float_r2c&) = delete;
  void batch(const std::vector<float>& time, std::vector<float>& spectra, std::size_t entries) const {
    const std::size_t bins = n_ / 2 + 1;
    for (std::size_t e = 0; e < entries; ++e) {
      std::copy_n(time.data() + e * n_, n_, in_.get());
      fftwf_execute(plan_);
      for (std::size_t k = 0; k < bins; ++k) {
        spectra[(e * bins + k) * 2] = out_.get()[k][0];
        spectra[(e * bins + k) * 2 + 1] = out_.get()[k][1];
      }
    }
  }

 private:
  std::size_t n_;
  std::unique_ptr<float, fftwf_free_t> in_;
  std::unique_ptr<fftwf_complex, fftwf_free_t> out_;
  fftwf_plan plan_ = nullptr;
};

// welch_power_batch on the CPU: the kernels' launches, thread by thread.
std::vector<welch_power> emulate_batch(const wt::host_batch& b, double rate_hz, std::size_t budget_bytes,
                                       unsigned shuffle_seed) {
  const std::size_t n = tonal_fft_size(rate_hz);
  const gd::welch_plan plan = gd::make_welch_plan(b.layout, n, budget_bytes);
  const std::size_t bins = plan.bins, cap = plan.slice_capacity;
  const std::vector<double> window = gd::welch_window(n);
  std::vector<double> sums(plan.tracks * 2 * bins, 0.0);
  // Poisoned buffers: an entry the gather forgets to write shows as NaN.
  std::vector<float> time(2 * cap * n), spectra(2 * cap * bins * 2);
  const float_r2c fft(n);
  std::mt19937 rng(shuffle_seed);
  for (const gd::welch_slice& sl : plan.slices) {
    std::fill(time.begin(), time.end(), NAN);
    std::fill(spectra.begin(), spectra.end(), NAN);
    const std::size_t count = sl.frame_end - sl.frame_begin;
    // gather_frames: block i, thread j.
    for (std::size_t i = 0; i < cap; ++i) {
      const bool real = i < count;
      const gd::welch_frame fr = real ? plan.frames[sl.frame_begin + i] : gd::welch_frame{};
      for (std::size_t j = 0; j < n; ++j) {
        float mid = 0.0f, side = 0.0f;
        if (real) gd::welch_mid_side(b.samples.data(), fr, window.data(), static_cast<std::uint32_t>(j), mid, side);
        time[2 * i * n + j] = mid;
        time[(2 * i + 1) * n + j] = side;
      }
    }
    fft.batch(time, spectra, 2 * cap);
    // accumulate_segments: blocks (segment, part) in a shuffled order (any order must do).
    std::vector<std::size_t> order(2 * (sl.segment_end - sl.segment_begin));
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), rng);
    for (const std::size_t o : order) {
      const gd::welch_segment seg = plan.segments[sl.segment_begin + o / 2];
      const auto part = static_cast<std::uint32_t>(o % 2);
      double* row = sums.data() + (std::size_t{seg.track} * 2 + part) * bins;
      for (std::size_t k = 0; k < bins; ++k) row[k] = gd::welch_accumulate(row[k], spectra.data(), bins, seg, part, k);
    }
  }
  std::vector<welch_power> out(plan.tracks);
  for (std::size_t t = 0; t < plan.tracks; ++t) {
    out[t].fft_size = n;
    out[t].sample_rate_hz = rate_hz;
    out[t].frames_analyzed = plan.track_frames[t];
    out[t].samples = b.layout.frames[2 * t];
    const double* mid = sums.data() + 2 * t * bins;
    out[t].mid.assign(mid, mid + bins);
    out[t].side.assign(mid + bins, mid + 2 * bins);
  }
  return out;
}

// Lengths around the frame size (n = 8192 at 48 kHz, hop 4096): none, 1, n - 1, n, n + 1,
// n + hop +- 1, primes, several frames; each a noise track; and the demo song.
wt::host_batch make_batch(double rate_hz) {
  const std::size_t n = tonal_fft_size(rate_hz), hop = n / 2;
  wt::host_batch b;
  const std::vector<std::size_t> lengths = {0,     1,           2,       31,          257,  n - 1,  n,
                                            n + 1, n + hop - 1, n + hop, n + hop + 1, 7919, 65'537, 104'729};
  for (std::size_t k = 0; k < lengths.size(); ++k) wt::add_track(b, wt::noise_track(lengths[k], 11 + 7 * k));
  wt::add_track(b, wt::song(4.0, rate_hz));
  return b;
}

void expect_batch_matches_cpu(const wt::host_batch& b, const std::vector<welch_power>& got, double rate_hz,
                              const char* what) {
  ASSERT_EQ(got.size(), b.tracks.size()) << what;
  int bit_diffs = 0;
  double worst_band_db = 0.0;
  for (std::size_t t = 0; t < b.tracks.size(); ++t) {
    const welch_power want = measure_welch_power(b.tracks[t], rate_hz);
    const std::string name =
        std::string(what) + ", track " + std::to_string(t) + " (" + std::to_string(b.tracks[t].frames()) + " frames)";
    wt::expect_same_framing(got[t], want, name);
    // Same FFT, same windowed input, same summation order: the same bits.
    const bool same = got[t].mid == want.mid && got[t].side == want.side;
    EXPECT_TRUE(same) << name << ": bins differ, max rel " << wt::max_bin_rel_error(got[t], want);
    bit_diffs += same ? 0 : 1;
    if (want.frames_analyzed > 0) {
      const double band_db = wt::max_band_error_db(got[t], want);
      EXPECT_LE(band_db, band_tolerance_db) << name;
      worst_band_db = std::max(worst_band_db, band_db);
    }
  }
  std::printf("%s: %zu tracks, %d not bitwise, worst band %.3g dB\n", what, b.tracks.size(), bit_diffs, worst_band_db);
}

TEST(GpuTonalLayout, FrameCountAndStartsFollowTheCpuFraming) {
  for (const std::size_t n : {std::size_t{4}, std::size_t{256}, std::size_t{8192}}) {
    const std::size_t hop = n / 2;
    for (std::size_t total : {std::size_t{0}, std::size_t{1}, hop - 1, hop, hop + 1, n - 1, n, n + 1, n + hop - 1,
                              n + hop, n + hop + 1, 3 * n + 7, 10 * n}) {
      // Reference by walking: frames start at 0, hop, ... and stop once one reaches the end.
      std::size_t want = 0;
      for (std::size_t start = 0; total > 0; start += hop) {
        ++want;
        if (start + n >= total) break;
      }
      const std::uint64_t count = gd::welch_frame_count(total, n);
      EXPECT_EQ(count, want) << "n " << n << ", total " << total;
      if (count == 0) continue;
      // Every sample is in some frame; the last frame is the only partial one and is not empty.
      const std::uint64_t last = count - 1;
      EXPECT_EQ(gd::welch_frame_start(last, n) + gd::welch_frame_valid(total, last, n), total);
      EXPECT_GE(gd::welch_frame_valid(total, last, n), 1u);
      if (total > n) {
        EXPECT_GT(gd::welch_frame_valid(total, last, n), hop) << "n " << n << ", total " << total;
      }
      for (std::uint64_t f = 0; f + 1 < count; ++f) EXPECT_EQ(gd::welch_frame_valid(total, f, n), n);
    }
  }
}

TEST(GpuTonalLayout, SlicesCoverEveryFrameOnceWithinTheBudget) {
  const wt::host_batch b = make_batch(fs_hz);
  const std::size_t n = tonal_fft_size(fs_hz);
  const std::size_t frame_bytes = gd::welch_frame_work_bytes(n);
  for (const std::size_t budget : {std::size_t{0}, frame_bytes, 3 * frame_bytes, 7 * frame_bytes + 5,
                                   std::size_t{64} << 20, std::size_t{1} << 34}) {
    const gd::welch_plan p = gd::make_welch_plan(b.layout, n, budget);
    EXPECT_TRUE(std::has_single_bit(p.slice_capacity));
    if (budget >= frame_bytes) {
      EXPECT_LE(p.slice_capacity * frame_bytes, budget) << budget;
    }
    EXPECT_LE(p.slice_capacity, std::bit_ceil(p.frames.size()));
    std::size_t expected_begin = 0;
    std::vector<std::uint64_t> seen(p.tracks, 0);
    for (const gd::welch_slice& sl : p.slices) {
      EXPECT_EQ(sl.frame_begin, expected_begin);
      EXPECT_GT(sl.frame_end, sl.frame_begin);
      EXPECT_LE(sl.frame_end - sl.frame_begin, p.slice_capacity);
      expected_begin = sl.frame_end;
      std::uint32_t local = 0;
      std::vector<bool> track_in_slice(p.tracks, false);
      for (std::size_t s = sl.segment_begin; s < sl.segment_end; ++s) {
        const gd::welch_segment seg = p.segments[s];
        EXPECT_EQ(seg.first, local) << "segments tile the slice in order";
        EXPECT_GT(seg.count, 0u);
        EXPECT_FALSE(track_in_slice[seg.track]) << "one segment per track and slice (no write race)";
        track_in_slice[seg.track] = true;
        for (std::uint32_t i = 0; i < seg.count; ++i)
          EXPECT_EQ(p.frames[sl.frame_begin + seg.first + i].track, seg.track);
        seen[seg.track] += seg.count;
        local += seg.count;
      }
      EXPECT_EQ(local, sl.frame_end - sl.frame_begin);
    }
    EXPECT_EQ(expected_begin, p.frames.size());
    for (std::size_t t = 0; t < p.tracks; ++t) EXPECT_EQ(seen[t], p.track_frames[t]) << "track " << t;
  }
}

TEST(GpuTonalLayout, EmulatedBatchEqualsMeasureWelchPowerBitwise) {
  const wt::host_batch b = make_batch(fs_hz);
  const std::size_t frame_bytes = gd::welch_frame_work_bytes(tonal_fft_size(fs_hz));
  // One frame per slice, slices that cut tracks, the default budget (one slice here).
  expect_batch_matches_cpu(b, emulate_batch(b, fs_hz, frame_bytes, 1), fs_hz, "1 frame per slice");
  expect_batch_matches_cpu(b, emulate_batch(b, fs_hz, 5 * frame_bytes, 2), fs_hz, "4 frames per slice");
  expect_batch_matches_cpu(b, emulate_batch(b, fs_hz, std::size_t{128} << 20, 3), fs_hz, "default budget");
}

TEST(GpuTonalLayout, OtherRatesAndFftSizes) {
  for (const double rate : {22'050.0, 44'100.0, 96'000.0}) {
    wt::host_batch b;
    const std::size_t n = tonal_fft_size(rate);
    for (const std::size_t len : {std::size_t{1}, n - 1, n + 1, 3 * n + 5}) wt::add_track(b, wt::noise_track(len, 5));
    wt::add_track(b, wt::song(1.5, rate, 3));
    const std::string what = std::to_string(static_cast<int>(rate)) + " Hz";
    expect_batch_matches_cpu(b, emulate_batch(b, rate, 3 * gd::welch_frame_work_bytes(n), 4), rate, what.c_str());
  }
}

// Grounds the GPU test's per-bin tolerance: the CPU's float FFT against the exact transform of
// the same float frames (float64 FFT, lathe::detail::fft_inverse: |X_k| is the same for the
// inverse transform of a real input) stays within half of it, so cuFFT (another float FFT of
// the same accuracy class) and FFTW may differ by the whole of it.
TEST(GpuTonalLayout, FloatFftStaysWithinHalfTheGpuBinTolerance) {
  wt::host_batch b;
  wt::add_track(b, wt::noise_track(100'003, 9));
  wt::add_track(b, wt::song(3.0, fs_hz, 2));
  const std::size_t n = tonal_fft_size(fs_hz);
  const gd::welch_plan p = gd::make_welch_plan(b.layout, n, std::size_t{1} << 30);
  const std::vector<double> window = gd::welch_window(n);
  for (std::size_t t = 0; t < b.tracks.size(); ++t) {
    welch_power exact = measure_welch_power(b.tracks[t], fs_hz);
    std::fill(exact.mid.begin(), exact.mid.end(), 0.0);
    std::fill(exact.side.begin(), exact.side.end(), 0.0);
    for (const gd::welch_frame& fr : p.frames) {
      if (fr.track != t) continue;
      std::vector<double> mre(n), mim(n, 0.0), sre(n), sim(n, 0.0);
      for (std::uint32_t j = 0; j < n; ++j) {
        float mid = 0.0f, side = 0.0f;
        gd::welch_mid_side(b.samples.data(), fr, window.data(), j, mid, side);
        mre[j] = mid;
        sre[j] = side;
      }
      detail::fft_inverse(mre, mim);
      detail::fft_inverse(sre, sim);
      for (std::size_t k = 0; k < p.bins; ++k) {
        exact.mid[k] += mre[k] * mre[k] + mim[k] * mim[k];
        exact.side[k] += sre[k] * sre[k] + sim[k] * sim[k];
      }
    }
    const welch_power cpu = measure_welch_power(b.tracks[t], fs_hz);
    const double rel = wt::max_bin_rel_error(cpu, exact);
    std::printf("track %zu: float FFTW vs float64 FFT, max bin rel %.3g (floor %.0e of the peak bin), bands %.3g dB\n",
                t, rel, wt::bin_floor_rel, wt::max_band_error_db(cpu, exact));
    EXPECT_LE(rel, float_fft_bin_tolerance) << "track " << t;
  }
}

}  // namespace
}  // namespace lathe
