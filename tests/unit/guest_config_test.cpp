#include <doctest/doctest.h>

#include "backends/error.hpp"
#include "backends/guest_config.hpp"

#include <string>
#include <vector>

using colo::GuestConfig;
using colo::parse_guest_config;

namespace {
std::string error_of(const std::string& text) {
    try {
        (void)parse_guest_config(text, "t.cfg");
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("guest config: xl.cfg-style values, comments and separators") {
    const auto c = parse_guest_config(
        "# demo\nname = \"demo-1\"\nmemory = 256 # MiB\nvcpus=2; seed = 7\n"
        "guest = 'builtin'\nworking_set = 64\ndirty_rate = 5000\nprint_interval = 50\n",
        "t.cfg");
    CHECK(c.name == "demo-1");
    CHECK(c.memory_mib == 256);
    CHECK(c.vcpus == 2);
    CHECK(c.seed == 7);
    CHECK(c.guest == colo::GuestKind::builtin);
    CHECK(c.working_set_mib == 64);
    CHECK(c.dirty_rate == 5000);
    CHECK(c.print_interval_ms == 50);
}

TEST_CASE("guest config: a linux guest needs a kernel") {
    const auto c = parse_guest_config(
        "name=\"l\"\nguest=\"linux\"\nkernel=\"/boot/vmlinux\"\nramdisk=\"/i.cpio\"\nextra=\"quiet\"\n", "t.cfg");
    CHECK(c.guest == colo::GuestKind::linux_kernel);
    CHECK(c.kernel == "/boot/vmlinux");
    CHECK(error_of("name=\"l\"\nguest=\"linux\"\n") == "t.cfg: guest = \"linux\" needs kernel = \"...\"");
}

TEST_CASE("guest config: format then parse gives the same config") {
    auto c = parse_guest_config("name=\"x\"\nmemory=512\nvcpus=3\nguest=\"linux\"\nkernel=\"/k\"\nextra=\"a b\"\n",
                                "t.cfg");
    const auto again = parse_guest_config(colo::format_guest_config(c), "again");
    CHECK(again.name == c.name);
    CHECK(again.memory_mib == c.memory_mib);
    CHECK(again.vcpus == c.vcpus);
    CHECK(again.kernel == c.kernel);
    CHECK(again.extra == c.extra);
    CHECK(again.guest == c.guest);
}

TEST_CASE("guest config: bad input names the line and the problem") {
    CHECK(error_of("name=\"a\"\nmemory = lots\n") == "t.cfg:2: memory must be a number, not 'lots'");
    CHECK(error_of("name=\"a\"\nmemory = 1\n") == "t.cfg:2: memory = 1 is out of range (2..65536)");
    CHECK(error_of("name=\"a\"\nvcpus = 9\n") == "t.cfg:2: vcpus = 9 is out of range (1..8)");
    CHECK(error_of("name=\"a\"\ncolour = 3\n") == "t.cfg:2: unknown key 'colour'");
    CHECK(error_of("name=\"a\"\nname = \"b\"\n") == "t.cfg:2: 'name' is set twice");
    CHECK(error_of("name=\"a\nmemory=3\n") == "t.cfg:1: unterminated string");
    CHECK(error_of("name=a\n") == "t.cfg:1: name must be a quoted string");
    CHECK(error_of("memory=64\n") == "t.cfg: no name given (name = \"...\")");
    CHECK(error_of("name=\"a b\"\n") == "t.cfg: name \"a b\" must start with a letter or digit and hold only letters, "
                                          "digits, '-', '_' and '.' (at most 64 characters)");
    CHECK(error_of("name=\"a\"\nguest=\"dos\"\n") == "t.cfg:2: guest must be \"builtin\" or \"linux\", not \"dos\"");
    CHECK(error_of("name=\"a\"\nmemory=16\nworking_set=16\n").find("must leave at least 4 MiB") != std::string::npos);
    CHECK(error_of("name=\"a\" memory=3\n") == "t.cfg:1: unexpected 'm' after the value of name");
    CHECK(error_of("= 3\n") == "t.cfg:1: expected a key name, found '='");
}

TEST_CASE("guest config: a missing file is a clear error") {
    CHECK_THROWS_WITH_AS((void)colo::load_guest_config("/nonexistent/x.cfg"),
                         doctest::Contains("open /nonexistent/x.cfg: No such file or directory"), colo::Error);
}

TEST_CASE("guest config: names that are path parts, options or too long are refused") {
    for (const std::string& name : std::vector<std::string>{".", "..", "-rf", "--help", "_x", ".hidden", "a/b", std::string(65, 'a')}) {
        CAPTURE(name);
        CHECK(error_of("name=\"" + name + "\"\n").starts_with("t.cfg: name \"" + name + "\" must start with a letter or digit"));
    }
    for (const std::string& name : std::vector<std::string>{"a", "0", "web-1.example_b", std::string(64, 'z')}) {
        CAPTURE(name);
        CHECK(parse_guest_config("name=\"" + name + "\"\n", "t.cfg").name == name);
    }
}

TEST_CASE("guest config: a file larger than 1 MiB is refused, not read to its end") {
    CHECK_THROWS_WITH_AS((void)colo::load_guest_config("/dev/zero"),
                         "/dev/zero: larger than 1 MiB; a guest config is a few lines of key = value", colo::Error);
    // Valid text, just too much of it (comments): refused all the same.
    std::string text = "name=\"big\"\n";
    while (text.size() <= colo::kMaxGuestConfigBytes) text += "# padding padding padding padding padding padding\n";
    CHECK(error_of(text) == "t.cfg: larger than 1 MiB; a guest config is a few lines of key = value");
}

TEST_CASE("guest config: vif lists in xl.cfg syntax") {
    const auto c = parse_guest_config("name = \"n\"\n"
                                      "vif = [ 'mac=52:54:00:12:34:56,bridge=br0,vifname=tap-n,ip=10.0.0.2/16',  # first\n"
                                      "        \"type=vif, model=virtio-net, ip=192.168.7.9\", ]\n",
                                      "t.cfg");
    REQUIRE(c.vifs.size() == 2);
    CHECK(c.vifs[0].mac == colo::MacAddress{0x52, 0x54, 0x00, 0x12, 0x34, 0x56});
    CHECK(c.vifs[0].bridge == "br0");
    CHECK(c.vifs[0].vifname == "tap-n");
    CHECK(c.vifs[0].ip == colo::Ipv4Cidr{{10, 0, 0, 2}, 16});
    CHECK(c.vifs[1].ip == colo::Ipv4Cidr{{192, 168, 7, 9}, 24});  // no prefix: /24
    CHECK(c.vifs[1].bridge.empty());
    // No mac: 52:54:00 and a hash of the guest's name and the vif's index, the same every time.
    CHECK(c.vifs[1].mac == colo::default_mac("n", 1));
    CHECK(colo::format_mac(c.vifs[1].mac).rfind("52:54:00:", 0) == 0);
    CHECK(colo::default_mac("n", 1) != colo::default_mac("n", 0));
    CHECK(colo::default_mac("n", 1) != colo::default_mac("m", 1));
    // The secondary gets the config as text: it must read back equal.
    CHECK(parse_guest_config(colo::format_guest_config(c), "again").vifs == c.vifs);
    CHECK(parse_guest_config("name=\"n\"\nvif = []\n", "t.cfg").vifs.empty());
}

TEST_CASE("guest config: bad vifs name the line and the problem") {
    const auto vif = [](const std::string& list) { return error_of("name=\"a\"\nvif = " + list + "\n"); };
    CHECK(vif("'mac=52:54:00:12:34:56'") == "t.cfg:2: vif must be a list: vif = [ '...', ... ]");
    CHECK(vif("[ 'mac=52:54:00:12:34' ]") == "t.cfg:2: mac '52:54:00:12:34' must be six hex bytes, as 52:54:00:12:34:56");
    CHECK(vif("[ 'mac=53:54:00:12:34:56' ]") ==
          "t.cfg:2: mac '53:54:00:12:34:56' is a multicast address (bit 0 of its first byte is set)");
    CHECK(vif("[ 'mac=00:00:00:00:00:00' ]") == "t.cfg:2: mac '00:00:00:00:00:00' is all zeros");
    CHECK(vif("[ 'script=vif-bridge' ]") == "t.cfg:2: vif key 'script' is not supported (keys: mac, bridge, vifname, ip)");
    CHECK(vif("[ 'bridge' ]") == "t.cfg:2: vif 'bridge': 'bridge' is not key=value");
    CHECK(vif("[ 'vifname=a-name-longer-than-15' ]") ==
          "t.cfg:2: vif vifname 'a-name-longer-than-15' must be 1 to 15 letters, digits, '_', '.' or '-'");
    CHECK(vif("[ 'bridge=br 0' ]") == "t.cfg:2: vif bridge 'br 0' must be 1 to 15 letters, digits, '_', '.' or '-'");
    CHECK(vif("[ 'ip=10.0.0.256' ]") == "t.cfg:2: ip '10.0.0.256' must be an IPv4 address with an optional /prefix, as 10.0.0.2/24");
    CHECK(vif("[ 'ip=10.0.0.2/33' ]") == "t.cfg:2: ip '10.0.0.2/33': the prefix must be 1 to 32");
    CHECK(vif("[ 'ip=10.0.0' ]") == "t.cfg:2: ip '10.0.0' must be an IPv4 address with an optional /prefix, as 10.0.0.2/24");
    CHECK(vif("[ 'a=1', 'b=2', 'c=3', 'd=4', 'e=5' ]") == "t.cfg:2: vif lists 5 NICs, at most 4 are supported");
    CHECK(vif("[ 'mac=52:54:00:00:00:01', 'mac=52:54:00:00:00:01' ]") ==
          "t.cfg:2: vif 0 and vif 1 have the same mac 52:54:00:00:00:01");
    CHECK(vif("[ 'vifname=t0', 'vifname=t0' ]") == "t.cfg:2: vif 0 and vif 1 have the same vifname t0");
    CHECK(vif("[ 'ip=10.0.0.2' 'ip=10.0.0.3' ]") == "t.cfg:2: expected ',' or ']' in a list");
    CHECK(vif("[ 3 ]") == "t.cfg:2: a list holds quoted strings, found '3'");
    CHECK(error_of("name=\"a\"\nvif = [ 'ip=10.0.0.2',\n") == "t.cfg:3: unterminated list (missing ']')");
    CHECK(error_of("name=\"a\"\nmemory = [ 'x' ]\n") == "t.cfg:2: memory must be a number, not a list");
}

TEST_CASE("guest config: disk lists in xl's disk syntax, positional and key=value") {
    const auto c = parse_guest_config("name=\"d\"\n"
                                      "disk = [ '/img/demo.img,raw,xvda,rw',  # positional\n"
                                      "         'format=raw, vdev=xvdb, access=ro, target=/img/a,b.img',\n"
                                      "         '/img/c.img,,sdc', 'vdev=hdd,target=/img/d.img' ]\n"
                                      "disk_rate = 50; disk_blocks = 64; disk_writes = 1000; disk_flush_every = 0\n",
                                      "t.cfg");
    REQUIRE(c.disks.size() == 4);
    CHECK(c.disks[0] == colo::DiskConfig{"/img/demo.img", "xvda", false});
    CHECK(c.disks[1] == colo::DiskConfig{"/img/a,b.img", "xvdb", true});  // target= takes the rest, commas and all
    CHECK(c.disks[2] == colo::DiskConfig{"/img/c.img", "sdc", false});    // empty format: raw; no access: rw
    CHECK(c.disks[3] == colo::DiskConfig{"/img/d.img", "hdd", false});
    CHECK(parse_guest_config("name='d'\ndisk=['/img/e.img,raw,vda,r']", "t.cfg").disks.at(0) ==
          colo::DiskConfig{"/img/e.img", "vda", true});
    CHECK(c.disk_rate == 50);
    CHECK(c.disk_blocks == 64);
    CHECK(c.disk_writes == 1000);
    CHECK(c.disk_flush_every == 0);
    CHECK(colo::format_disk(c.disks[1]) == "format=raw,vdev=xvdb,access=ro,target=/img/a,b.img");
    const auto again = parse_guest_config(colo::format_guest_config(c), "again");
    CHECK(again.disks == c.disks);
    CHECK(again.disk_rate == 50);
    CHECK(again.disk_blocks == 64);
    CHECK(again.disk_writes == 1000);
    CHECK(again.disk_flush_every == 0);
    // A path holding a quote round-trips too (written in the other quotes).
    colo::GuestConfig q = c;
    q.disks = {colo::DiskConfig{"/img/it's.img", "xvda", false}};
    CHECK(parse_guest_config(colo::format_guest_config(q), "again").disks == q.disks);
    const auto defaults = parse_guest_config("name=\"d\"\n", "t.cfg");
    CHECK(defaults.disks.empty());
    CHECK(defaults.disk_rate == 200);
    CHECK(defaults.disk_blocks == 0);
    CHECK(defaults.disk_writes == 0);
    CHECK(defaults.disk_flush_every == 8);
}

TEST_CASE("guest config: bad disks name the line and the problem") {
    const auto disk = [](const std::string& list) { return error_of("name=\"a\"\n\ndisk = " + list + "\n"); };
    CHECK(disk("'/i.img,raw,xvda'") == "t.cfg:3: disk must be a list: disk = [ '...', ... ]");
    CHECK(disk("[ '/i.img,qcow2,xvda,rw' ]") == "t.cfg:3: disk '/i.img,qcow2,xvda,rw': format 'qcow2' is not supported (only raw)");
    CHECK(disk("[ 'format=vhd,vdev=xvda,target=/i' ]") == "t.cfg:3: disk 'format=vhd,vdev=xvda,target=/i': format 'vhd' is not supported (only raw)");
    CHECK(disk("[ '/i.img,raw,xvda,rx' ]") == "t.cfg:3: disk '/i.img,raw,xvda,rx': access 'rx' must be rw (w) or ro (r)");
    CHECK(disk("[ '/i.img,raw,xvda,rw,extra' ]") == "t.cfg:3: disk '/i.img,raw,xvda,rw,extra': 'extra' is one field too many (target,format,vdev,access)");
    CHECK(disk("[ '/i.img,raw' ]") == "t.cfg:3: disk '/i.img,raw': no vdev (xvda, xvdb, ...)");
    CHECK(disk("[ ',raw,xvda' ]") == "t.cfg:3: disk ',raw,xvda': no target (the raw image file)");
    CHECK(disk("[ '/i.img,raw,eth0' ]") == "t.cfg:3: disk '/i.img,raw,eth0': vdev 'eth0' must be xvd, sd, hd or vd and 1 to 3 letters (xvda, ...)");
    CHECK(disk("[ '/i.img,raw,xvda1' ]") == "t.cfg:3: disk '/i.img,raw,xvda1': vdev 'xvda1' must be xvd, sd, hd or vd and 1 to 3 letters (xvda, ...)");
    CHECK(disk("[ 'script=block,target=/i' ]") == "t.cfg:3: disk 'script=block,target=/i': key 'script' is not supported (keys: target, format, vdev, access)");
    CHECK(disk("[ '/a,raw,xvda', '/b,raw,xvda' ]") == "t.cfg:3: disk 0 and disk 1 have the same vdev xvda");
    CHECK(disk("[ '/a,,xvda', '/b,,xvdb', '/c,,xvdc', '/d,,xvdd', '/e,,xvde' ]") == "t.cfg:3: disk lists 5 disks, at most 4 are supported");
    CHECK(error_of("name=\"a\"\ndisk_rate = -1\n") == "t.cfg:2: disk_rate must be a number, not '-1'");
    CHECK(error_of("name=\"a\"\ndisk_blocks = 1048577\n") == "t.cfg:2: disk_blocks = 1048577 is out of range (0..1048576)");
}

TEST_CASE("guest config: protection keys, and that they never reach a receiver") {
    const auto c = parse_guest_config(
        "name=\"p\"\npeer = \"hostb:8471\"\nlisten=\"0.0.0.0:8472\"\nprotection=\"remus\"\ncheckpoint_interval=50\n"
        "heartbeat_timeout=400\nlink_key=\"/etc/colo-replicate/p.key\"\nwitness=\"etcd://10.0.0.9:2379/x\"\n"
        "takeover=\"manual\"\ndisk_dir=\"/var/lib/colo\"\n",
        "t.cfg");
    CHECK(c.protection.peer == "hostb:8471");
    CHECK(c.protection.listen == "0.0.0.0:8472");
    CHECK(c.protection.mode == "remus");
    CHECK(c.protection.interval_ms == 50);
    CHECK(c.protection.heartbeat_timeout_ms == 400);
    CHECK(c.protection.link_key == "/etc/colo-replicate/p.key");
    CHECK(c.protection.witness == "etcd://10.0.0.9:2379/x");
    CHECK(c.protection.takeover == "manual");
    CHECK(c.protection.disk_dir == "/var/lib/colo");
    CHECK(c.protection.declared());
    CHECK_FALSE(parse_guest_config("name=\"q\"\n", "t.cfg").protection.declared());
    // Each host's own file decides its side: the text sent to a receiver carries none of it.
    const auto sent = parse_guest_config(colo::format_guest_config(c), "sent");
    CHECK(sent.protection == colo::ProtectionConfig{});
}

TEST_CASE("guest config: bad protection keys name the line and the problem") {
    CHECK(error_of("name=\"a\"\nprotection=\"ha\"\n") == "t.cfg:2: protection must be \"colo\" or \"remus\", not \"ha\"");
    CHECK(error_of("name=\"a\"\ntakeover=\"later\"\n") == "t.cfg:2: takeover must be \"auto\" or \"manual\", not \"later\"");
    CHECK(error_of("name=\"a\"\ncheckpoint_interval=0\n") == "t.cfg:2: checkpoint_interval = 0 is out of range (1..3600000)");
    CHECK(error_of("name=\"a\"\npeer=hostb\n") == "t.cfg:2: peer must be a quoted string");
    CHECK(error_of("name=\"a\"\ntls_cert=\"/c\"\n") == "t.cfg: tls_cert, tls_key and tls_ca go together (x509 needs all three)");
    CHECK(error_of("name=\"a\"\nlink_key=\"/k\"\ntls_cert=\"/c\"\ntls_key=\"/k\"\ntls_ca=\"/a\"\n") ==
          "t.cfg: link_key or tls_cert/tls_key/tls_ca, not both");
}

TEST_CASE("guest config: checkpoint_style, Xen only for cooperative, and carried to a receiver") {
    CHECK(parse_guest_config("name=\"a\"\n", "t.cfg").checkpoint_style == "auto");
    const auto c = parse_guest_config("name=\"x\"\nbackend=\"xen\"\ncheckpoint_style=\"cooperative\"\n", "t.cfg");
    CHECK(c.checkpoint_style == "cooperative");
    CHECK(parse_guest_config(colo::format_guest_config(c), "sent").checkpoint_style == "cooperative");
    CHECK(parse_guest_config("name=\"k\"\ncheckpoint_style=\"transparent\"\n", "t.cfg").checkpoint_style == "transparent");
    CHECK(error_of("name=\"a\"\ncheckpoint_style=\"polite\"\n") ==
          "t.cfg:2: checkpoint_style must be \"auto\", \"cooperative\" or \"transparent\", not \"polite\"");
    CHECK(error_of("name=\"a\"\ncheckpoint_style=\"cooperative\"\n").find(
              "t.cfg: checkpoint_style = \"cooperative\" is for Xen guests") == 0);
}
