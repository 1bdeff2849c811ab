#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>

#include "backends/error.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/transport/file_stream.hpp"

using namespace colo::protocol;
using namespace colo::protocol::test;

using colo::test::error_of;

namespace {

// A temporary directory removed with everything in it at the end of the test.
class TemporaryDirectory {
public:
    TemporaryDirectory() {
        char pattern[] = "/tmp/colo-file-stream-XXXXXX";
        if (::mkdtemp(pattern) == nullptr) throw colo::SystemError("mkdtemp", errno);
        path_ = pattern;
    }
    ~TemporaryDirectory() { (void)std::system(("rm -rf '" + path_ + "'").c_str()); }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

}  // namespace

TEST_CASE("file streams: a save file round trips and is private to its owner") {
    TemporaryDirectory dir;
    const auto path = dir.file("guest.save");
    std::vector<Message> messages = one_of_each_message();
    std::vector<std::uint64_t> frames;
    for (std::uint64_t f = 0; f < kMaxPagesPerBatch; ++f) frames.push_back(0x100000 + f);
    messages.push_back(sample_pages(frames, 3));  // bigger than the file buffers
    {
        colo::FileSink sink(path);
        write_header(sink, sample_header());
        for (const auto& m : messages) write_message(sink, m);
        sink.sync();
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(static_cast<std::size_t>(st.st_size) == encode_stream(sample_header(), messages).size());

    colo::FileSource source(path);
    const StreamHeader header = read_header(source);
    CHECK(header == sample_header());
    for (const auto& m : messages) CHECK(read_message(source, header) == m);
    CHECK(source.at_end());
    CHECK(source.position() == static_cast<std::uint64_t>(st.st_size));
}

TEST_CASE("file streams: truncated and missing files are clear errors") {
    TemporaryDirectory dir;
    const auto path = dir.file("short.save");
    const auto bytes = encode_stream(sample_header(), {Heartbeat{1, 2}});
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - 5));
    }
    colo::FileSource source(path);
    const StreamHeader header = read_header(source);
    CHECK(error_of([&] { (void)read_message(source, header); }) ==
          "truncated stream: '" + path + "' ends at byte " + std::to_string(bytes.size() - 5) +
              ", 5 more bytes were expected");
    CHECK(error_of([&] { colo::FileSource missing(dir.file("missing")); }) ==
          "cannot open '" + dir.file("missing") + "': open: No such file or directory (errno 2)");
    CHECK(error_of([&] { colo::FileSink nowhere(dir.file("no/such/dir")); }) ==
          "cannot create '" + dir.file("no/such/dir") + "': open: No such file or directory (errno 2)");
}
