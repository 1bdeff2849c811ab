#include "backends/disk_replica_marker.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "backends/error.hpp"

namespace colo {

namespace {

constexpr std::size_t kRecordBytes = 64;  // one line, space padded: rewritten in place
constexpr const char* kPrefix = "colo-replicate replica: ";

}  // namespace

std::filesystem::path DiskReplicaMarker::path_for(const std::filesystem::path& image) {
    return std::filesystem::path(image.string() + ".colo-replica");
}

void DiskReplicaMarker::refuse_if_marked(const std::filesystem::path& image) {
    const auto mark = path_for(image);
    std::ifstream in(mark);
    if (!in) return;
    std::string line;
    std::getline(in, line);
    if (line.rfind(kPrefix, 0) == 0) line.erase(0, std::strlen(kPrefix));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::string what;
    if (line.rfind("applying ", 0) == 0) {
        what = "not a consistent disk: its secondary died while writing checkpoint " + line.substr(9) + " into it";
    } else if (line.rfind("committed ", 0) == 0) {
        what = "a secondary's copy at checkpoint " + line.substr(10) + " that was never taken over";
    } else {
        what = "a secondary's copy whose initial sync never finished";
    }
    throw Error("disk image " + image.string() + " is " + what + " (" + mark.string() +
                "); protect the guest again to bring it up to date, or remove " + mark.filename().string() +
                " to use it as it is");
}

DiskReplicaMarker::DiskReplicaMarker(std::filesystem::path image)
    : path_(path_for(image)), fd_(::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) {
    if (!fd_.valid()) throw SystemError("open", errno, path_.string());
    write_state("syncing");
}

void DiskReplicaMarker::write_state(const std::string& state) {
    std::string record = kPrefix + state;
    record.resize(kRecordBytes - 1, ' ');
    record += '\n';
    if (::pwrite(fd_.get(), record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
        throw SystemError("pwrite", errno, path_.string());
    }
}

void DiskReplicaMarker::remove() noexcept {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
}

}  // namespace colo
