// StallWatch: a process that was stopped longer than the threshold notices on waking, whichever
// of its threads runs first; one that merely ran on does not.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "toolstack/replication/stall_watch.hpp"

using namespace std::chrono_literals;

TEST_CASE("stall watch: running on is no stall") {
    colo::StallWatch watch(200ms);
    for (int i = 0; i < 10; ++i) std::this_thread::sleep_for(20ms);
    CHECK_FALSE(watch.take_stall().has_value());
}

TEST_CASE("stall watch: a SIGSTOP longer than the threshold is seen after SIGCONT, once") {
    int to_parent[2], to_child[2];
    REQUIRE(::pipe(to_parent) == 0);
    REQUIRE(::pipe(to_child) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        colo::StallWatch watch(150ms);
        char byte = 'r';
        (void)!::write(to_parent[1], &byte, 1);  // ready
        (void)!::read(to_child[0], &byte, 1);    // the parent stopped and continued us meanwhile
        const auto stall = watch.take_stall();
        const auto again = watch.take_stall();
        const char verdict = stall && *stall >= 250ms && !again ? 'y' : 'n';
        (void)!::write(to_parent[1], &verdict, 1);
        ::_exit(0);
    }
    char byte = 0;
    REQUIRE(::read(to_parent[0], &byte, 1) == 1);
    REQUIRE(::kill(child, SIGSTOP) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, WUNTRACED) == child);  // it stands still now
    std::this_thread::sleep_for(400ms);                       // the stop itself, not a wait for a condition
    byte = 'g';
    REQUIRE(::write(to_child[1], &byte, 1) == 1);
    REQUIRE(::kill(child, SIGCONT) == 0);
    REQUIRE(::read(to_parent[0], &byte, 1) == 1);
    CHECK(byte == 'y');
    REQUIRE(::waitpid(child, &status, 0) == child);
    for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}
