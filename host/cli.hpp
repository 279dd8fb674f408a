#pragma once
// The `lathe` command line: master, analyze, formats.

namespace lathe {

/// Exit status: 0 every track succeeded, 2 some tracks failed, 1 usage or configuration error.
int cli_main(int argc, char** argv);

}  // namespace lathe
