// Writes a seed corpus for protocol_decoder_fuzz: valid streams in each harness mode, so the
// fuzzer starts from inputs that pass the magic, version and checksum checks.
//   protocol_fuzz_seeds DIR
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "toolstack/protocol/message_codec.hpp"

using namespace colo::protocol;

namespace {

std::vector<std::byte> page_data(std::size_t pages) {
    std::vector<std::byte> out(pages * colo::kPageSize);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(i * 31 + 7);
    return out;
}

void write_seed(const std::string& dir, const std::string& name, unsigned char mode,
                const std::vector<std::byte>& bytes) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.put(static_cast<char>(mode));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + dir + "/" + name);
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 2) {
        std::fprintf(stderr, "usage: protocol_fuzz_seeds DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    StreamHeader header;
    header.regions = {{colo::Pfn{0}, 64}, {colo::Pfn{256}, 64}};
    const std::vector<Message> messages{
        GuestConfigText{"memory = 1\n"},
        PageBatch{{colo::Pfn{1}, colo::Pfn{257}}, page_data(2)},
        DeviceState{colo::StateRecord{3, 1, std::vector<std::byte>(24, std::byte{0x5a})}},
        MigrationCommit{2}, EnterColo{1}, CheckpointBegin{2}, CheckpointEnd{2, 2, 1, 100},
        CheckpointLoaded{2}, Heartbeat{5, 6}, SecondaryOutput{10, std::vector<std::byte>(5, std::byte{'o'})},
        ReleasedOutput{15}, Goodbye{"bye"}, Failure{"oops"},
        ReplicationSetup{ReplicationPurpose::colo, true},
        CheckpointOutput{3, std::vector<std::byte>(4, std::byte{'h'}), 7},
        NetIngress{0, 1, std::vector<std::byte>(60, std::byte{0x11})},
        NetEgress{0, 2, std::vector<std::byte>(60, std::byte{0x22})},
        NetReleased{0, 3, {5}, 1, {4}},
        NetCheckpoint{0, 4, 9, 1, {HeldFrame{8, std::vector<std::byte>(60, std::byte{0x33})}}},
    };
    MemorySink all;
    write_header(all, header);
    for (const auto& m : messages) write_message(all, m);
    write_seed(dir, "stream", 0, all.bytes());
    write_seed(dir, "stream-fixed", 2, all.bytes());
    for (const auto& m : messages) {
        write_seed(dir, std::string("record-") + message_name(m), 1, encode(m));
        write_seed(dir, std::string("record-fixed-") + message_name(m), 3, encode(m));
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "protocol_fuzz_seeds: %s\n", e.what());
    return 1;
}
