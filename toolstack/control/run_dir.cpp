#include "toolstack/control/run_dir.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "backends/error.hpp"

namespace colo::control {

namespace {

std::string octal(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

mode_t dir_mode(bool group) { return group ? 0750 : 0700; }
mode_t file_mode(bool group) { return group ? 0640 : 0600; }
mode_t socket_mode(bool group) { return group ? 0660 : 0600; }

// Mode and group of something of ours in the run directory, whatever the umask made of it.
void set_access(int fd, const std::filesystem::path& path, mode_t mode) {
    const auto group = control_group();
    if (group && ::fchown(fd, static_cast<uid_t>(-1), *group) != 0) throw SystemError("chown " + path.string(), errno);
    if (::fchmod(fd, mode) != 0) throw SystemError("chmod " + path.string(), errno);
}

// Opens the run directory, refusing one that someone else could change under us.
UniqueFd open_checked_dir(const std::filesystem::path& dir) {
    struct stat link {};
    if (::lstat(dir.c_str(), &link) != 0) throw SystemError("stat run directory " + dir.string(), errno);
    // A symlink is followed only when it is root's or ours: one planted by someone else (in /tmp,
    // say) could point us at a directory of theirs, or at one where our files do harm.
    if (S_ISLNK(link.st_mode) && link.st_uid != 0 && link.st_uid != ::geteuid()) {
        throw Error("run directory " + dir.string() + " is a symbolic link owned by uid " +
                    std::to_string(link.st_uid) + "; refusing it");
    }
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) throw SystemError("open run directory " + dir.string(), errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("stat run directory " + dir.string(), errno);
    if (st.st_uid != ::geteuid()) {
        throw Error("run directory " + dir.string() + " is owned by uid " + std::to_string(st.st_uid) +
                    ", not by this user (uid " + std::to_string(::geteuid()) + "); refusing it");
    }
    if ((st.st_mode & 022) != 0) {
        throw Error("run directory " + dir.string() + " has mode " + octal(st.st_mode) +
                    ": others may write in it; refusing it (make it 0700, or remove it)");
    }
    return fd;
}

}  // namespace

std::filesystem::path run_dir() {
    const char* env = std::getenv("COLO_RUN_DIR");
    return (env != nullptr && *env != '\0') ? env : "/run/colo-replicate";
}

std::filesystem::path owned_run_dir() {
    const std::filesystem::path dir = run_dir();
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SystemError("mkdir " + dir.string(), errno);
    const UniqueFd fd = open_checked_dir(dir);
    set_access(fd.get(), dir, dir_mode(control_group().has_value()));
    return dir;
}

std::filesystem::path control_socket_path(const std::string& guest_name) {
    return run_dir() / (guest_name + ".sock");
}

std::filesystem::path guest_log_path(const std::string& guest_name) {
    return run_dir() / (guest_name + ".log");
}

std::optional<gid_t> control_group() {
    const char* env = std::getenv("COLO_GROUP");
    if (env == nullptr || *env == '\0') return std::nullopt;
    const std::string name = env;
    std::vector<char> buffer(16384);
    group entry {};
    group* found = nullptr;
    const int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == 0 && found != nullptr) return found->gr_gid;
    if (name.find_first_not_of("0123456789") == std::string::npos && name.size() < 10) {
        return static_cast<gid_t>(std::stoul(name));
    }
    throw Error("COLO_GROUP: no group named '" + name + "' on this host");
}

UniqueFd open_run_dir_log(const std::filesystem::path& log) {
    (void)owned_run_dir();  // made and given its mode when this is the first file in it
    const UniqueFd dir = open_checked_dir(log.parent_path());
    UniqueFd fd(::openat(dir.get(), log.filename().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        if (errno == ELOOP) throw Error("log " + log.string() + " is a symbolic link; refusing to write through it");
        throw SystemError("open " + log.string(), errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("stat " + log.string(), errno);
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1) {
        throw Error("log " + log.string() + " is not a regular file of this user's with one link; refusing it");
    }
    set_access(fd.get(), log, file_mode(control_group().has_value()));
    return fd;
}

void restrict_socket(const std::filesystem::path& path) {
    // A socket cannot be opened to fchmod it; the directory it is in is ours alone (owned_run_dir),
    // so its path names what we bound.
    const auto group = control_group();
    if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) throw SystemError("chown " + path.string(), errno);
    if (::chmod(path.c_str(), socket_mode(group.has_value())) != 0) throw SystemError("chmod " + path.string(), errno);
}

std::string refuse_peer(int fd) {
    ucred peer {};
    socklen_t length = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return std::string("SO_PEERCRED: ") + std::strerror(errno);
    if (peer.uid == 0 || peer.uid == ::geteuid()) return "";
    const auto group = control_group();
    if (group) {
        if (peer.gid == *group) return "";
        std::vector<gid_t> groups(256);
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            for (const gid_t g : groups) {
                if (g == *group) return "";
            }
        }
        return "permission denied: uid " + std::to_string(peer.uid) + " is neither root nor in group " +
               std::to_string(*group) + " (COLO_GROUP)";
    }
    return "permission denied: uid " + std::to_string(peer.uid) + " is not root (set COLO_GROUP to let a group in)";
}

}  // namespace colo::control
