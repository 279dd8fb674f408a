#include "lathe/convolver.hpp"

#include <fftw3.h>

#include <algorithm>
#include <cstring>

#include "lathe/error.hpp"

namespace lathe {
namespace {

// 16 floats = 64 bytes: every split array starts on a cache line and its padded length is a
// whole number of AVX-512 vectors, so the multiply-accumulate loop needs no remainder handling.
constexpr std::size_t simd_floats = 16;

float* alloc_floats(std::size_t n) {
  auto* p = static_cast<float*>(fftwf_malloc(n * sizeof(float)));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, n * sizeof(float));
  return p;
}

// acc += x * h over split complex arrays. The hot loop of the convolver: P partitions x
// (partition_frames + 1) bins per partition of input. Compiled for AVX2 and baseline SSE2 and
// picked at load time; both use only separate multiplies and adds (no FMA), so the result is the
// same on either path.
__attribute__((target_clones("avx2", "default"))) void complex_mac(
    float* __restrict acc_re, float* __restrict acc_im, const float* __restrict x_re, const float* __restrict x_im,
    const float* __restrict h_re, const float* __restrict h_im, std::size_t n) noexcept {
  for (std::size_t k = 0; k < n; ++k) {
    const float xr = x_re[k], xi = x_im[k], hr = h_re[k], hi = h_im[k];
    acc_re[k] += xr * hr - xi * hi;
    acc_im[k] += xr * hi + xi * hr;
  }
}

void release_filter(fftwf_plan& r2c, fftwf_plan& c2r, float*& spectra) noexcept {
  if (r2c != nullptr || c2r != nullptr) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    if (r2c != nullptr) fftwf_destroy_plan(r2c);
    if (c2r != nullptr) fftwf_destroy_plan(c2r);
  }
  r2c = c2r = nullptr;
  fftwf_free(spectra);
  spectra = nullptr;
}

}  // namespace

std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

partitioned_filter::partitioned_filter(std::span<const float> impulse_response, std::size_t partition_frames) {
  LATHE_EXPECTS(partition_frames >= 64 && (partition_frames & (partition_frames - 1)) == 0,
                "partition_frames must be a power of two >= 64");
  LATHE_EXPECTS(!impulse_response.empty(), "impulse response must not be empty");
  partition_frames_ = partition_frames;
  ir_frames_ = impulse_response.size();
  partitions_ = (ir_frames_ + partition_frames - 1) / partition_frames;
  bins_ = partition_frames + 1;
  stride_ = (bins_ + simd_floats - 1) / simd_floats * simd_floats;
  const std::size_t fft_frames = 2 * partition_frames;

  float* time = nullptr;
  fftwf_complex* freq = nullptr;
  try {
    spectra_ = alloc_floats(partitions_ * 2 * stride_);
    time = alloc_floats(fft_frames);
    freq = static_cast<fftwf_complex*>(fftwf_malloc(bins_ * sizeof(fftwf_complex)));
    if (freq == nullptr) throw std::bad_alloc();
    {
      // FFTW_ESTIMATE: the plan depends only on size and alignment, never on timing, so every
      // run picks the same algorithm and produces bit-identical output.
      std::lock_guard<std::mutex> lock(fftw_planner_mutex());
      r2c_plan_ = fftwf_plan_dft_r2c_1d(static_cast<int>(fft_frames), time, freq, FFTW_ESTIMATE);
      c2r_plan_ = fftwf_plan_dft_c2r_1d(static_cast<int>(fft_frames), freq, time, FFTW_ESTIMATE);
    }
    LATHE_EXPECTS(r2c_plan_ != nullptr && c2r_plan_ != nullptr, "FFTW could not plan the partition FFTs");

    // Overlap-save: partition p of the IR, zero-padded to 2 * partition_frames, so that the
    // circular convolution of one 2B input window with it is linear over its second half.
    const float scale = 1.0f / static_cast<float>(fft_frames);  // a power of two: exact
    for (std::size_t p = 0; p < partitions_; ++p) {
      std::fill(time, time + fft_frames, 0.0f);
      const std::size_t begin = p * partition_frames;
      const std::size_t count = std::min(partition_frames, ir_frames_ - begin);
      std::copy_n(impulse_response.data() + begin, count, time);
      fftwf_execute_dft_r2c(r2c_plan_, time, freq);
      float* re = spectra_ + p * 2 * stride_;
      float* im = re + stride_;
      for (std::size_t k = 0; k < bins_; ++k) {
        re[k] = freq[k][0] * scale;
        im[k] = freq[k][1] * scale;
      }
    }
  } catch (...) {
    fftwf_free(time);
    fftwf_free(freq);
    release_filter(r2c_plan_, c2r_plan_, spectra_);
    throw;
  }
  fftwf_free(time);
  fftwf_free(freq);
}

partitioned_filter::~partitioned_filter() {
  release_filter(r2c_plan_, c2r_plan_, spectra_);
}

struct partitioned_convolver::impl {
  std::vector<std::shared_ptr<const partitioned_filter>> filters;
  std::size_t block = 0;              // partition_frames
  std::size_t stride = 0;             // floats per split array
  std::size_t bins = 0;               // block + 1
  std::size_t slots = 0;              // most partitions of any filter = frequency-domain delay line length
  float* window = nullptr;            // 2 * block: [previous input partition | current input partition]
  float* result = nullptr;            // [filter][2 * block]: inverse FFT; second half is the output partition
  fftwf_complex* spectrum = nullptr;  // bins: FFT output / inverse FFT input (scratch)
  float* fdl = nullptr;               // [slot][re[stride], im[stride]] input spectra, newest at `head`
  float* acc = nullptr;               // re[stride], im[stride]
  std::size_t fill = 0;               // input frames gathered into the current partition
  std::size_t head = 0;

  explicit impl(std::vector<std::shared_ptr<const partitioned_filter>> f) : filters(std::move(f)) {
    LATHE_EXPECTS(!filters.empty(), "convolver needs a filter");
    for (const auto& x : filters) LATHE_EXPECTS(x != nullptr, "convolver needs a filter");
    block = filters.front()->partition_frames_;
    stride = filters.front()->stride_;
    bins = filters.front()->bins_;
    for (const auto& x : filters) {
      LATHE_EXPECTS(x->partition_frames_ == block, "the filters of one convolver must share the partition size");
      slots = std::max(slots, x->partitions_);
    }
    try {
      window = alloc_floats(2 * block);
      result = alloc_floats(filters.size() * 2 * block);
      fdl = alloc_floats(slots * 2 * stride);
      acc = alloc_floats(2 * stride);
      spectrum = static_cast<fftwf_complex*>(fftwf_malloc(bins * sizeof(fftwf_complex)));
      if (spectrum == nullptr) throw std::bad_alloc();
    } catch (...) {
      release();
      throw;
    }
  }
  ~impl() { release(); }

  void release() noexcept {
    fftwf_free(window);
    fftwf_free(result);
    fftwf_free(fdl);
    fftwf_free(acc);
    fftwf_free(spectrum);
    window = result = fdl = acc = nullptr;
    spectrum = nullptr;
  }

  void reset() noexcept {
    std::memset(window, 0, 2 * block * sizeof(float));
    std::memset(result, 0, filters.size() * 2 * block * sizeof(float));
    std::memset(fdl, 0, slots * 2 * stride * sizeof(float));
    fill = 0;
    head = 0;
  }

  // One whole input partition is in the second half of `window`: transform it once, push it into
  // the delay line, then per filter multiply-accumulate against its partitions and transform back.
  void run_partition() noexcept {
    const partitioned_filter& f0 = *filters.front();
    fftwf_execute_dft_r2c(f0.r2c_plan_, window, spectrum);
    head = head + 1 == slots ? 0 : head + 1;
    float* x_re = fdl + head * 2 * stride;
    float* x_im = x_re + stride;
    for (std::size_t k = 0; k < bins; ++k) {
      x_re[k] = spectrum[k][0];
      x_im[k] = spectrum[k][1];
    }
    float* acc_re = acc;
    float* acc_im = acc + stride;
    for (std::size_t fi = 0; fi < filters.size(); ++fi) {
      const partitioned_filter& f = *filters[fi];
      std::memset(acc, 0, 2 * stride * sizeof(float));
      for (std::size_t p = 0; p < f.partitions_; ++p) {
        // Input spectrum from p partitions ago meets filter partition p.
        const std::size_t slot = head >= p ? head - p : head + slots - p;
        const float* xr = fdl + slot * 2 * stride;
        const float* hr = f.spectra_ + p * 2 * stride;
        complex_mac(acc_re, acc_im, xr, xr + stride, hr, hr + stride, stride);
      }
      for (std::size_t k = 0; k < bins; ++k) {
        spectrum[k][0] = acc_re[k];
        spectrum[k][1] = acc_im[k];
      }
      fftwf_execute_dft_c2r(f0.c2r_plan_, spectrum, result + fi * 2 * block);
    }
    std::memcpy(window, window + block, block * sizeof(float));
  }

  void process(const float* in, float* const* outs, std::size_t frames) noexcept {
    const std::size_t count = filters.size();
    std::size_t pos = 0;
    while (pos < frames) {
      const std::size_t n = std::min(frames - pos, block - fill);
      // Read the input chunk before writing the output chunks: in and an output may be the same memory.
      std::memcpy(window + block + fill, in + pos, n * sizeof(float));
      for (std::size_t fi = 0; fi < count; ++fi) {
        std::memcpy(outs[fi] + pos, result + fi * 2 * block + block + fill, n * sizeof(float));
      }
      fill += n;
      pos += n;
      if (fill == block) {
        run_partition();
        fill = 0;
      }
    }
  }
};

partitioned_convolver::partitioned_convolver(std::shared_ptr<const partitioned_filter> filter) {
  LATHE_EXPECTS(filter != nullptr, "convolver needs a filter");
  impl_ = std::make_unique<impl>(std::vector<std::shared_ptr<const partitioned_filter>>{std::move(filter)});
}

partitioned_convolver::partitioned_convolver(std::vector<std::shared_ptr<const partitioned_filter>> filters) {
  impl_ = std::make_unique<impl>(std::move(filters));
}

partitioned_convolver::~partitioned_convolver() = default;
partitioned_convolver::partitioned_convolver(partitioned_convolver&&) noexcept = default;
partitioned_convolver& partitioned_convolver::operator=(partitioned_convolver&&) noexcept = default;

void partitioned_convolver::reset() noexcept {
  impl_->reset();
}

void partitioned_convolver::process(const float* in, float* out, std::size_t frames) noexcept {
  impl_->process(in, &out, frames);
}

void partitioned_convolver::process(const float* in, float* const* outs, std::size_t frames) noexcept {
  impl_->process(in, outs, frames);
}

std::size_t partitioned_convolver::filters() const noexcept {
  return impl_->filters.size();
}

std::size_t partitioned_convolver::latency_frames() const noexcept {
  return impl_->block;
}

}  // namespace lathe
