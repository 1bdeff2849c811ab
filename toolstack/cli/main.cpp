// colo-replicate: the operator's command. Everything is in the command table; main only turns
// argv into strings and makes sure no exception escapes without a one-line message.
#include <unistd.h>

#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "toolstack/cli/command_table.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    colo::cli::Io io{std::cout, std::cerr, ::isatty(STDOUT_FILENO) == 1};
    try {
        return colo::cli::dispatch(args, io);
    } catch (const std::exception& e) {
        std::cerr << "colo-replicate: " << e.what() << "\n";
        return colo::cli::kExitFailure;
    }
}
