// The colo-replicate command table (xl's xl_cmdtable.c, STYLE §10). Every subcommand is one entry:
// its name, a one-line summary, usage, its own Boost.Program_options options and a handler. Help
// and usage text are generated from the table, so they cannot drift from what is parsed.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace colo::cli {

namespace po = boost::program_options;

// Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong or the command is
// not available in this build.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct Io {
    std::ostream& out;
    std::ostream& err;
    bool terminal = false;  // `out` is a terminal: progress redraws one line instead of printing lines
};

struct Command {
    std::string name;
    std::string summary;  // one line, for `colo-replicate help`
    std::string usage;    // arguments after the name, e.g. "[options] NAME HOST[:PORT]"
    std::string detail;   // paragraph for `help NAME`
    // Declares the command's options and positional arguments.
    std::function<void(po::options_description&, po::positional_options_description&)> declare;
    // Runs it; empty when the command is planned but not built yet.
    std::function<int(const po::variables_map&, Io&)> run;
    // How many of the positional arguments must be given (the rest, at the end, are optional).
    unsigned required_positionals = ~0u;
};

[[nodiscard]] const std::vector<Command>& command_table();
[[nodiscard]] const Command* find_command(const std::string& name);

// Parses argv (without the program name) and runs the command. Errors are printed as one line
// "colo-replicate: ..." on io.err; the return value is the exit code.
int dispatch(const std::vector<std::string>& args, Io& io);

void print_overview(std::ostream& out);
void print_command_help(const Command& command, std::ostream& out);

}  // namespace colo::cli
