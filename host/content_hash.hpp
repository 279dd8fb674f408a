#pragma once
// What resume knows an input by: a hash of its bytes, so a catalog copied to another disk or
// mounted elsewhere is recognised as the same catalog, with a cache so that a rerun over the
// same files reads none of them again.
#include <filesystem>
#include <string>

namespace lathe {

/// "xxh3-128:<32 hex digits>:<bytes>" of the file's bytes (XXH3, 128 bits). Throws input_error
/// naming the file when it cannot be read.
std::string content_hash(const std::filesystem::path& file);

/// content_hash, remembered in `cache_dir` under the file's absolute path, size and
/// modification time: a file whose three are unchanged is not read again. A missing, damaged
/// or stale entry is computed anew; an entry that cannot be written costs only the next run's
/// reading time. Entries are one file each, written atomically, so runs sharing an output
/// folder (shards) never lose each other's.
std::string cached_content_hash(const std::filesystem::path& file, const std::filesystem::path& cache_dir);

}  // namespace lathe
