#include "toolstack/guest_image.hpp"

#include <algorithm>
#include <variant>
#include <vector>

#include "backends/error.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/protocol/stream_header.hpp"

namespace colo {

namespace {
constexpr std::size_t kBatchPages = 256;

bool all_zero(std::span<const std::byte> page) {
    return std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
}

// Whether `source` has nothing left: reads one byte to find out.
bool at_end(protocol::ByteSource& source) {
    std::byte probe[1];
    try {
        source.read_exact(probe);
    } catch (const protocol::StreamTruncated&) {
        return true;
    }
    return false;
}
}  // namespace

GuestImageStats write_guest_image(Backend& backend, const GuestConfig& config, protocol::ByteSink& sink) {
    if (!backend.paused()) throw Error("save: the guest must be paused");
    GuestImageStats stats;
    protocol::StreamHeader header;
    header.backend = backend.kind();
    header.regions = backend.memory().regions();
    protocol::write_header(sink, header);
    protocol::write_message(sink, protocol::GuestConfigText{format_guest_config(config)});

    std::vector<Pfn> frames;
    std::vector<std::byte> data(kBatchPages * kPageSize);
    protocol::PageBatch batch;
    for (const auto& region : header.regions) {
        for (std::uint64_t done = 0; done < region.pages; done += frames.size()) {
            const std::uint64_t n = std::min<std::uint64_t>(kBatchPages, region.pages - done);
            frames.clear();
            for (std::uint64_t i = 0; i < n; ++i) frames.push_back(region.first + done + i);
            backend.memory().read_pages(frames, std::span(data).first(n * kPageSize));
            batch.frames.clear();
            batch.data.clear();
            for (std::uint64_t i = 0; i < n; ++i) {
                const auto page = std::span<const std::byte>(data).subspan(i * kPageSize, kPageSize);
                if (all_zero(page)) continue;
                batch.frames.push_back(frames[i]);
                batch.data.insert(batch.data.end(), page.begin(), page.end());
            }
            if (batch.frames.empty()) continue;
            stats.pages += batch.frames.size();
            protocol::write_message(sink, batch);
        }
    }
    for (auto& record : backend.save_state()) {
        protocol::write_message(sink, protocol::DeviceState{std::move(record)});
        ++stats.state_records;
    }
    protocol::write_message(sink, protocol::MigrationCommit{stats.pages});
    sink.flush();
    return stats;
}

GuestImageReader::GuestImageReader(protocol::ByteSource& source)
    : source_(source), header_(protocol::read_header(source)) {
    auto first = protocol::read_message(source_, header_);
    const auto* text = std::get_if<protocol::GuestConfigText>(&first);
    if (text == nullptr) {
        throw Error(std::string("guest image: expected guest-config-text, found ") + protocol::message_name(first));
    }
    config_ = parse_guest_config(text->text, "guest image config");
}

GuestImageStats GuestImageReader::load_into(Backend& backend) {
    if (backend.kind() != header_.backend) {
        throw Error(std::string("guest image is for the ") + to_string(header_.backend) + " backend, not " +
                    to_string(backend.kind()));
    }
    if (backend.memory().regions() != header_.regions) {
        throw Error("guest image: its memory layout does not match the guest built from its config");
    }
    GuestImageStats stats;
    std::vector<StateRecord> state;
    while (true) {
        auto message = protocol::read_message(source_, header_);
        if (auto* batch = std::get_if<protocol::PageBatch>(&message)) {
            backend.memory().write_pages(batch->frames, batch->data);
            stats.pages += batch->frames.size();
        } else if (auto* device = std::get_if<protocol::DeviceState>(&message)) {
            state.push_back(std::move(device->state));
        } else if (auto* commit = std::get_if<protocol::MigrationCommit>(&message)) {
            if (commit->pages_total != stats.pages) {
                throw Error("guest image: the commit record counts " + std::to_string(commit->pages_total) +
                            " pages but the image holds " + std::to_string(stats.pages));
            }
            break;
        } else {
            throw Error(std::string("guest image: unexpected ") + protocol::message_name(message) + " record");
        }
    }
    // The commit record is the image's last byte: anything after it means the file was damaged
    // or something was appended, and the image cannot be trusted to be the guest that was saved.
    if (!at_end(source_))
        throw Error("guest image: bytes follow the commit record (the image is damaged or has something appended)");
    backend.restore_state(state);
    stats.state_records = state.size();
    return stats;
}

}  // namespace colo
