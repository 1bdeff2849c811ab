// The disk checkpoint device (toolstack/replication/disk_device.hpp) over FakeDisks: the initial
// sync sends only the blocks the secondary's copy lacks; after it the copy holds exactly the last
// committed checkpoint (writes kept until their checkpoint commits, a COLO SVM's own writes in an
// overlay), a takeover leaves the survivor's disk at that checkpoint (plus, in COLO, the SVM's
// own writes), and a secondary that fails half-way through applying leaves a mark that refuses
// the copy.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "backends/disk_replica_marker.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/disk_mirror.hpp"

using namespace pipeline_test;
using colo::test::error_of;

namespace {

constexpr std::uint64_t kBlock = disk::kSyncBlockBytes;
constexpr std::uint64_t kDiskBytes = 8 * kBlock;

std::vector<std::byte> filled(std::uint64_t bytes, unsigned char value) {
    return std::vector<std::byte>(bytes, std::byte{value});
}

std::vector<std::byte> slice(const std::vector<std::byte>& image, std::uint64_t offset, std::uint64_t length) {
    return {image.begin() + static_cast<std::ptrdiff_t>(offset), image.begin() + static_cast<std::ptrdiff_t>(offset + length)};
}

// A pair whose SVM copy is a file path (so it gets a replica mark); the sides are made again
// after the disks are added, as Pair makes them.
std::unique_ptr<Pair> pair_with_copy_at(const std::filesystem::path& image, ProtectionMode mode) {
    std::filesystem::create_directories(image.parent_path());
    auto pair = std::make_unique<Pair>(primary_config(mode), secondary_config(mode));
    pair->pvm.add_disk(kDiskBytes);
    pair->svm.add_disk(0, DiskConfig{image, "xvda", false});
    pair->primary.reset();  // its destructor takes the console sink away: before the new one is made
    pair->secondary.reset();
    pair->primary = std::make_unique<Primary>(pair->pvm, *pair->to_secondary, primary_config(mode), pair->primary_out.sink());
    pair->secondary = std::make_unique<Secondary>(pair->svm, *pair->to_primary, secondary_config(mode), pair->secondary_out.sink());
    return pair;
}

void kill_primary(Pair& pair) {
    pair.to_secondary->close();
    CHECK(pair.secondary->process(Secondary::Clock::now() + Millis{50}) == Secondary::Outcome::failed_over);
}

}  // namespace

TEST_CASE("pipeline disk: the initial sync makes the secondary's copy the PVM's image, sending only what differs") {
    SUBCASE("an empty new copy: only blocks with data carry data") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
        FakeDisk& pvm = pair.pvm.disk(0);
        pvm.guest_write(1 * kBlock, filled(kBlock, 0x11));
        pvm.guest_write(5 * kBlock + 512, filled(1024, 0x55));
        pair.protect();
        CHECK(pair.svm.disk(0).image_bytes() == pvm.image_bytes());
        const PrimaryStats stats = pair.primary->status();
        CHECK(stats.disk_sync_blocks == 8);
        CHECK(stats.disk_sync_blocks_sent == 2);  // the zero blocks hash the same as the new copy's
        CHECK(stats.disk_sync_bytes == 2 * kBlock);
    }
    SUBCASE("an existing copy that differs in one block: that block alone travels") {
        Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo), 0, {kDiskBytes});
        FakeDisk& pvm = pair.pvm.disk(0);
        for (unsigned b = 0; b < 8; ++b) pvm.guest_write(b * kBlock, filled(kBlock, static_cast<unsigned char>(0x20 + b)));
        FakeDisk& copy = pair.svm.disk(0);
        copy.resize(kDiskBytes);
        const auto image = pvm.image_bytes();
        copy.image().write(0, image);
        copy.image().write(6 * kBlock + 4096, filled(512, 0xee));  // one stale sector
        pair.protect();
        CHECK(copy.image_bytes() == image);
        CHECK(pair.primary->status().disk_sync_blocks_sent == 1);
        CHECK(pair.primary->status().disk_sync_bytes == kBlock);
    }
    SUBCASE("a copy larger than the image is cut to its size, and a smaller one grown") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
        pair.svm.disk(0).resize(3 * kDiskBytes);
        pair.svm.disk(0).image().write(2 * kDiskBytes, filled(512, 0x77));
        pair.protect();
        CHECK(pair.svm.disk(0).size_bytes() == kDiskBytes);
        CHECK(pair.svm.disk(0).image_bytes() == pair.pvm.disk(0).image_bytes());
    }
}

TEST_CASE("pipeline disk: writes made while memory is pre-copied reach the copy before protection starts") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
    FakeDisk& pvm = pair.pvm.disk(0);
    unsigned harvests = 0;
    // The guest writes while the pre-copy harvests (it runs; FakeBackend calls the hook only then).
    pair.pvm.on_harvest([&](FakeBackend&) {
        ++harvests;
        pvm.guest_write(harvests * 4096, filled(4096, static_cast<unsigned char>(harvests)));
    });
    pair.protect();
    pair.pvm.on_harvest({});
    REQUIRE(harvests >= 1);
    CHECK(pair.svm.disk(0).image_bytes() == pvm.image_bytes());
    CHECK(pair.primary->status().disk_writes_mirrored >= harvests);
}

TEST_CASE("pipeline disk: remus keeps writes until their checkpoint commits; a takeover drops the rest") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
    pair.protect();
    FakeDisk& pvm = pair.pvm.disk(0);
    FakeDisk& copy = pair.svm.disk(0);
    const auto at_protect = copy.image_bytes();
    pvm.guest_write(0, filled(4096, 0xa1));
    pair.primary->poll(Primary::Clock::now());  // streamed at once ...
    pair.settle();
    CHECK(copy.image_bytes() == at_protect);  // ... but kept aside
    CHECK(pair.secondary->status().disk_writes_pending == 1);
    REQUIRE(pair.checkpoint());
    CHECK(slice(copy.image_bytes(), 0, 4096) == filled(4096, 0xa1));
    // Written after the checkpoint: of no committed checkpoint when the primary dies.
    pvm.guest_write(kBlock, filled(4096, 0xb2));
    pvm.guest_discard(0, 4096);
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    kill_primary(pair);
    CHECK(slice(copy.image_bytes(), 0, 4096) == filled(4096, 0xa1));
    CHECK(slice(copy.image_bytes(), kBlock, 4096) == filled(4096, 0));
    CHECK(pair.secondary->status().disk_takeover_dropped_writes == 2);
    // The survivor's guest now writes its own disk directly.
    copy.guest_write(2 * kBlock, filled(512, 0xc3));
    CHECK(slice(copy.image_bytes(), 2 * kBlock, 512) == filled(512, 0xc3));
}

TEST_CASE("pipeline disk: a COLO SVM writes an overlay that every checkpoint drops and a takeover keeps") {
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo), 0, {kDiskBytes});
    FakeDisk& pvm = pair.pvm.disk(0);
    pvm.guest_write(0, filled(kBlock, 0x10));
    pair.protect();
    FakeDisk& copy = pair.svm.disk(0);
    // The SVM runs and writes its own version of block 0 and part of block 1.
    copy.guest_write(512, filled(1024, 0x5a));
    copy.guest_write(kBlock, filled(512, 0x5b));
    CHECK(slice(copy.image_bytes(), 512, 1024) == filled(1024, 0x10));  // not in the copy
    auto seen = copy.guest_read(0, 2048);
    CHECK(slice(seen, 0, 512) == filled(512, 0x10));
    CHECK(slice(seen, 512, 1024) == filled(1024, 0x5a));
    CHECK(slice(seen, 1536, 512) == filled(512, 0x10));
    // The PVM writes too; the checkpoint replaces the SVM's state, so its writes are gone.
    pvm.guest_write(1024, filled(512, 0x20));
    REQUIRE(pair.checkpoint());
    seen = copy.guest_read(0, 2048);
    CHECK(slice(seen, 512, 512) == filled(512, 0x10));
    CHECK(slice(seen, 1024, 512) == filled(512, 0x20));
    CHECK(copy.guest_read(kBlock, 512) == filled(512, 0));
    CHECK(pair.secondary->status().disk_overlay_bytes_dropped == 1536);
    // After the last checkpoint the SVM writes again, and the PVM writes what never commits.
    copy.guest_write(3 * kBlock, filled(512, 0x6c));
    pvm.guest_write(4 * kBlock, filled(512, 0x21));
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    kill_primary(pair);
    const auto image = copy.image_bytes();
    CHECK(slice(image, 3 * kBlock, 512) == filled(512, 0x6c));  // the SVM's memory went on from it
    CHECK(slice(image, 4 * kBlock, 512) == filled(512, 0));     // the PVM's, uncommitted
    CHECK(slice(image, 1024, 512) == filled(512, 0x20));
    CHECK(pair.secondary->status().disk_takeover_overlay_bytes == 512);
}

TEST_CASE("pipeline disk: a COLO takeover changes the SVM's disk over with the SVM paused") {
    // Otherwise a write the running SVM makes while its overlay goes into the copy is lost or
    // overwritten (the nested tier's ext4 check found a corrupt directory that way).
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo), 0, {kDiskBytes});
    pair.protect();
    CHECK_FALSE(pair.svm.paused());
    std::vector<bool> paused_at_change;
    pair.svm.disk(0).on_set_io([&] { paused_at_change.push_back(pair.svm.paused()); });
    kill_primary(pair);
    CHECK(paused_at_change == std::vector<bool>{true});
    CHECK_FALSE(pair.svm.paused());  // and it runs on afterwards
}

TEST_CASE("pipeline disk: a flush on the PVM makes the copy durable when its checkpoint commits") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
    pair.protect();
    FakeDisk& copy = pair.svm.disk(0);
    const unsigned at_protect = copy.image_flushes();  // protection starts with a durable copy
    CHECK(at_protect >= 1);
    pair.pvm.disk(0).guest_write(0, filled(512, 1));
    REQUIRE(pair.checkpoint());
    CHECK(copy.image_flushes() == at_protect);  // no flush in that epoch: none here
    pair.pvm.disk(0).guest_write(0, filled(512, 2));
    pair.pvm.disk(0).guest_flush();
    CHECK(pair.pvm.disk(0).image_flushes() >= 1);  // durable on the primary when it completes
    REQUIRE(pair.checkpoint());
    CHECK(copy.image_flushes() == at_protect + 1);
    CHECK(pair.secondary->status().disk_flushes == 1);
}

TEST_CASE("pipeline disk: a secondary refuses a checkpoint whose writes did not all arrive") {
    SUBCASE("disk-checkpoint claims more writes than came") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
        pair.protect();
        pair.pvm.disk(0).guest_write(0, filled(512, 9));
        // Checkpoint 1: begin, device-state (vCPU), checkpoint-output, then the write, disk-checkpoint, end.
        pair.to_secondary->alter_message(4, [](protocol::Message& m) {
            REQUIRE(std::holds_alternative<protocol::DiskCheckpoint>(m));
            std::get<protocol::DiskCheckpoint>(m).writes_through = 2;
        });
        pair.primary->send_checkpoint();
        CHECK(error_of([&] { pair.settle(); }) == "disk0: the checkpoint covers writes through 2, only 1 arrived");
        CHECK(slice(pair.svm.disk(0).image_bytes(), 0, 512) == filled(512, 0));
    }
    SUBCASE("a write is missing from the sequence") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0, {kDiskBytes});
        pair.protect();
        pair.pvm.disk(0).guest_write(0, filled(512, 9));
        pair.pvm.disk(0).guest_write(512, filled(512, 9));
        pair.to_secondary->alter_message(0, [](protocol::Message& m) { m = protocol::Heartbeat{1, 1}; });
        pair.primary->poll(Primary::Clock::now());
        CHECK(error_of([&] { pair.settle(); }) == "disk0: disk-write 2 where 1 was expected (writes are lost or repeated)");
    }
}

TEST_CASE("pipeline disk: the copy is marked while it is a replica; a half-applied one is refused") {
    const auto dir = std::filesystem::temp_directory_path() / ("colo-disk-test-" + std::to_string(::getpid()));
    const auto image = dir / "copy.img";
    auto owned = pair_with_copy_at(image, ProtectionMode::remus);
    Pair& pair = *owned;
    pair.protect();
    CHECK(error_of([&] { DiskReplicaMarker::refuse_if_marked(image); }) ==
          "disk image " + image.string() + " is a secondary's copy at checkpoint 0 that was never taken over (" + image.string() +
              ".colo-replica); protect the guest again to bring it up to date, or remove copy.img.colo-replica to use it as it is");
    REQUIRE(pair.checkpoint());
    // The copy's disk fails while checkpoint 2 is written into it: the secondary gives up
    // (the primary runs on unprotected) and the mark says the copy is half-applied.
    pair.pvm.disk(0).guest_write(0, filled(512, 3));
    pair.svm.disk(0).fail_image_writes(true);
    pair.primary->send_checkpoint();
    CHECK(error_of([&] { pair.settle(); }) ==
          "disk0: writing checkpoint 2 into the copy: fake disk: pwrite: Input/output error (errno 5)");
    CHECK_FALSE(pair.primary->await_checkpoint());
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(error_of([&] { DiskReplicaMarker::refuse_if_marked(image); }).find(
              "is not a consistent disk: its secondary died while writing checkpoint 2 into it") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("pipeline disk: a takeover makes the copy the guest's own disk (the mark goes)") {
    const auto dir = std::filesystem::temp_directory_path() / ("colo-disk-takeover-" + std::to_string(::getpid()));
    const auto image = dir / "copy.img";
    auto owned = pair_with_copy_at(image, ProtectionMode::colo);
    Pair& pair = *owned;
    pair.protect();
    CHECK(std::filesystem::exists(DiskReplicaMarker::path_for(image)));
    kill_primary(pair);
    CHECK_FALSE(std::filesystem::exists(DiskReplicaMarker::path_for(image)));
    CHECK(error_of([&] { DiskReplicaMarker::refuse_if_marked(image); }) == "(no error)");
    std::filesystem::remove_all(dir);
}
