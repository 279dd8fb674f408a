#include "master_writer.hpp"

#include <utility>

#include "lathe/error.hpp"

namespace lathe {

master_writer::master_writer(std::filesystem::path dest, container_format container, const track_tags& tags)
    : dest_(std::move(dest)), container_(container), tags_(tags) {}

void master_writer::begin(double sample_rate_hz, int channels, int bit_depth, std::size_t frames) {
  writer_.reset();  // an earlier attempt's temporary goes
  writer_.emplace(dest_, container_, channels, sample_rate_hz, bit_depth, tags_, frames);
  tonal_.emplace(sample_rate_hz);
  translation_.emplace(sample_rate_hz);
}

void master_writer::add(const_block_view delivered, std::span<const std::int32_t> ints, std::span<const float> floats) {
  if (ints.empty())
    writer_->write(floats);
  else
    writer_->write(ints);
  tonal_->add(delivered);
  translation_->add(delivered);
}

master_writer::measured master_writer::commit(const target_curve* target) {
  LATHE_EXPECTS(writer_.has_value(), "master_writer::commit() before any attempt");
  writer_->commit();
  writer_.reset();
  measured m;
  m.tonal = tonal_->finish();
  m.translation = translation_->finish(m.tonal, target);
  return m;
}

}  // namespace lathe
