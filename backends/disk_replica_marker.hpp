// The mark a secondary leaves beside its copy of a disk image, IMAGE.colo-replica, for as long as
// that copy is a replica rather than a disk a guest runs on: from the initial sync until the
// takeover (or the end of the migration) that makes it the guest's own. It says how far the copy
// got: "syncing" (the initial sync never finished), "applying N" (checkpoint N was being written
// into it: some of its writes are there, some not), "committed N" (exactly checkpoint N).
//
// A secondary that dies leaves the mark, so a guest is never started on a copy that is not a
// disk at all (half synced, half applied, or without the memory its blocks go with):
// refuse_if_marked turns it into a one-line error. Protecting the guest again brings the copy up to
// date (only differing blocks are sent) and a takeover removes the mark.
//
// The state is rewritten in place (one pwrite, no fsync): it tracks a process that dies, not a
// host that loses power; after a crash of the secondary's host the copy is resynced anyway.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "backends/unique_fd.hpp"

namespace colo {

class DiskReplicaMarker {
public:
    [[nodiscard]] static std::filesystem::path path_for(const std::filesystem::path& image);
    // Throws colo::Error (one line, naming the image and what to do) when `image` has a mark.
    static void refuse_if_marked(const std::filesystem::path& image);

    // Marks `image` ("syncing"). Throws colo::SystemError.
    explicit DiskReplicaMarker(std::filesystem::path image);
    DiskReplicaMarker(const DiskReplicaMarker&) = delete;
    DiskReplicaMarker& operator=(const DiskReplicaMarker&) = delete;

    void set_applying(std::uint64_t epoch) { write_state("applying " + std::to_string(epoch)); }
    void set_committed(std::uint64_t epoch) { write_state("committed " + std::to_string(epoch)); }
    // The copy is the guest's own now. Never throws (a mark that stays only makes a later start refuse).
    void remove() noexcept;

private:
    void write_state(const std::string& state);

    std::filesystem::path path_;
    UniqueFd fd_;
};

}  // namespace colo
