#include <doctest/doctest.h>

#include "backends/error.hpp"
#include "backends/fake_backend.hpp"
#include "toolstack/guest_image.hpp"

using namespace colo;

namespace {
GuestConfig config_named(const std::string& name) {
    GuestConfig c;
    c.name = name;
    return c;
}

std::vector<std::byte> saved_image(FakeBackend& guest) {
    guest.pause();
    protocol::MemorySink sink;
    (void)write_guest_image(guest, config_named("img"), sink);
    return sink.take();
}

FakeBackend guest_with_pages() {
    FakeBackend guest("img", 600, Pfn{16});
    guest.guest_write(Pfn{16}, std::byte{0x11});
    guest.guest_write(Pfn{300}, std::byte{0x22});
    guest.guest_write(Pfn{615}, std::byte{0x33});
    guest.set_vcpu_state({std::byte{1}, std::byte{2}, std::byte{3}});
    return guest;
}
}  // namespace

TEST_CASE("guest image: save then load gives the same memory and state, zero pages left out") {
    FakeBackend guest = guest_with_pages();
    const auto image = saved_image(guest);
    CHECK(image.size() < 10 * kPageSize);  // three non-zero pages, not 600

    protocol::MemorySource source(image);
    GuestImageReader reader(source);
    CHECK(reader.config().name == "img");
    FakeBackend restored("img", 600, Pfn{16});
    restored.pause();
    const auto stats = reader.load_into(restored);
    CHECK(stats.pages == 3);
    CHECK(stats.state_records == 1);
    CHECK(restored.vcpu_state() == guest.vcpu_state());
    for (std::uint64_t p = 16; p < 616; ++p) {
        const auto a = guest.page(Pfn{p});
        const auto b = restored.page(Pfn{p});
        REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
    }
    CHECK(source.at_end());
}

TEST_CASE("guest image: a running guest is not saved") {
    FakeBackend guest("img", 8);
    protocol::MemorySink sink;
    CHECK_THROWS_WITH_AS(write_guest_image(guest, config_named("img"), sink), "save: the guest must be paused", Error);
}

TEST_CASE("guest image: truncated, corrupt or mismatched images are refused before the guest runs") {
    FakeBackend guest = guest_with_pages();
    const auto image = saved_image(guest);

    // Every truncation point fails with an error, never a crash or a half-loaded guest reported as fine.
    for (std::size_t cut = 0; cut < image.size(); cut += 97) {
        protocol::MemorySource source(std::span<const std::byte>(image).first(cut));
        FakeBackend target("img", 600, Pfn{16});
        target.pause();
        CHECK_THROWS_AS(GuestImageReader(source).load_into(target), Error);
    }
    // A flipped byte in the middle of a page is caught by the record checksum.
    auto corrupt = image;
    corrupt[corrupt.size() / 2] ^= std::byte{0x40};
    {
        protocol::MemorySource source(corrupt);
        FakeBackend target("img", 600, Pfn{16});
        target.pause();
        CHECK_THROWS_AS(GuestImageReader(source).load_into(target), Error);
    }
    // A guest of another size cannot take the image.
    {
        protocol::MemorySource source(image);
        FakeBackend other("img", 300, Pfn{16});
        other.pause();
        CHECK_THROWS_WITH_AS(GuestImageReader(source).load_into(other),
                             "guest image: its memory layout does not match the guest built from its config", Error);
    }
}

TEST_CASE("guest image: bytes after the commit record are refused before the state is restored") {
    FakeBackend guest = guest_with_pages();
    for (const std::size_t extra : {std::size_t{1}, std::size_t{4096}}) {
        CAPTURE(extra);
        auto image = saved_image(guest);
        image.insert(image.end(), extra, std::byte{0x5a});
        protocol::MemorySource source(image);
        GuestImageReader reader(source);
        FakeBackend target("img", 600, Pfn{16});
        target.pause();
        CHECK_THROWS_WITH_AS(reader.load_into(target),
                             "guest image: bytes follow the commit record (the image is damaged or has something appended)",
                             Error);
        CHECK(target.vcpu_state() != guest.vcpu_state());  // nothing of the state was applied
        guest.resume();
    }
}
