#include "backends/guest_config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "backends/error.hpp"

namespace colo {

namespace {

struct Value {
    bool quoted = false;
    std::string text;
    bool is_list = false;
    std::vector<std::string> items;  // a list's quoted strings
};

class Parser {
public:
    Parser(const std::string& text, std::string origin) : text_(text), origin_(std::move(origin)) {}

    std::map<std::string, std::pair<Value, int>> parse() {
        std::map<std::string, std::pair<Value, int>> out;
        while (true) {
            skip_space_and_comments();
            if (at_end()) break;
            const int key_line = line_;
            const std::string key = identifier();
            skip_blanks();
            expect('=');
            skip_blanks();
            Value v = value();
            skip_blanks();
            if (!at_end() && peek() != '\n' && peek() != ';' && peek() != '#') {
                fail("unexpected '" + std::string(1, peek()) + "' after the value of " + key);
            }
            if (!at_end() && peek() == ';') ++pos_;
            if (out.count(key) != 0) fail("'" + key + "' is set twice");
            out[key] = {std::move(v), key_line};
        }
        return out;
    }

    [[noreturn]] void fail(const std::string& what) const { fail_at(line_, what); }
    [[noreturn]] void fail_at(int line, const std::string& what) const {
        throw Error(origin_ + ":" + std::to_string(line) + ": " + what);
    }

private:
    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return text_[pos_]; }
    void skip_blanks() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\r')) ++pos_;
    }
    void skip_space_and_comments() {
        while (!at_end()) {
            const char c = peek();
            if (c == '\n') {
                ++line_;
                ++pos_;
            } else if (c == ' ' || c == '\t' || c == '\r' || c == ';') {
                ++pos_;
            } else if (c == '#') {
                while (!at_end() && peek() != '\n') ++pos_;
            } else {
                break;
            }
        }
    }
    void expect(char c) {
        if (at_end() || peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::string identifier() {
        const std::size_t start = pos_;
        while (!at_end() && (std::isalnum(static_cast<unsigned char>(peek())) != 0 || peek() == '_')) ++pos_;
        if (start == pos_) fail("expected a key name, found '" + std::string(1, peek()) + "'");
        return text_.substr(start, pos_ - start);
    }
    std::string quoted_string() {
        const char c = peek();
        ++pos_;
        std::string s;
        while (!at_end() && peek() != c) {
            if (peek() == '\n') fail("unterminated string");
            s += peek();
            ++pos_;
        }
        if (at_end()) fail("unterminated string");
        ++pos_;
        return s;
    }
    // [ 'a', "b", ] over any number of lines, with comments between the items.
    Value list() {
        ++pos_;
        Value v;
        v.is_list = true;
        for (;;) {
            skip_space_and_comments();
            if (at_end()) fail("unterminated list (missing ']')");
            if (peek() == ']') {
                ++pos_;
                return v;
            }
            if (peek() != '"' && peek() != '\'') fail("a list holds quoted strings, found '" + std::string(1, peek()) + "'");
            v.items.push_back(quoted_string());
            skip_space_and_comments();
            if (!at_end() && peek() == ',') ++pos_;
            else if (!at_end() && peek() != ']') fail("expected ',' or ']' in a list");
        }
    }
    Value value() {
        if (at_end()) fail("missing value");
        const char c = peek();
        if (c == '[') return list();
        if (c == '"' || c == '\'') return {true, quoted_string(), false, {}};
        const std::size_t start = pos_;
        while (!at_end() && std::string_view(" \t\r\n;#").find(peek()) == std::string_view::npos) ++pos_;
        if (start == pos_) fail("missing value");
        return {false, text_.substr(start, pos_ - start), false, {}};
    }

    const std::string& text_;
    std::string origin_;
    std::size_t pos_ = 0;
    int line_ = 1;
};

bool is_interface_name(const std::string& name) {
    const auto allowed = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-'; };
    return !name.empty() && name.size() <= kMaxInterfaceName && std::all_of(name.begin(), name.end(), allowed);
}

MacAddress parse_mac(const std::string& text) {
    MacAddress mac{};
    const auto bad = [&] { return Error("mac '" + text + "' must be six hex bytes, as 52:54:00:12:34:56"); };
    if (text.size() != 17) throw bad();
    for (std::size_t i = 0; i < 6; ++i) {
        if (i > 0 && text[i * 3 - 1] != ':') throw bad();
        unsigned value = 0;
        const auto* first = text.data() + i * 3;
        const auto [ptr, ec] = std::from_chars(first, first + 2, value, 16);
        if (ec != std::errc{} || ptr != first + 2) throw bad();
        mac[i] = static_cast<std::uint8_t>(value);
    }
    if ((mac[0] & 1) != 0) throw Error("mac '" + text + "' is a multicast address (bit 0 of its first byte is set)");
    if (mac == MacAddress{}) throw Error("mac '" + text + "' is all zeros");
    return mac;
}

Ipv4Cidr parse_ipv4_cidr(const std::string& text) {
    const auto bad = [&] { return Error("ip '" + text + "' must be an IPv4 address with an optional /prefix, as 10.0.0.2/24"); };
    Ipv4Cidr out;
    out.prefix = 24;
    const std::size_t slash = text.find('/');
    const std::string address = text.substr(0, slash);
    const char* at = address.data();
    const char* end = address.data() + address.size();
    for (std::size_t i = 0; i < 4; ++i) {
        if (i > 0) {
            if (at == end || *at != '.') throw bad();
            ++at;
        }
        unsigned value = 0;
        const auto [ptr, ec] = std::from_chars(at, end, value);
        if (ec != std::errc{} || ptr == at || ptr - at > 3 || value > 255) throw bad();
        out.address[i] = static_cast<std::uint8_t>(value);
        at = ptr;
    }
    if (at != end) throw bad();
    if (slash != std::string::npos) {
        const std::string prefix = text.substr(slash + 1);
        unsigned value = 0;
        const auto [ptr, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), value);
        if (ec != std::errc{} || ptr != prefix.data() + prefix.size() || prefix.empty() || value < 1 || value > 32) {
            throw Error("ip '" + text + "': the prefix must be 1 to 32");
        }
        out.prefix = value;
    }
    return out;
}

// One element of vif = [ ... ]: comma-separated key=value (xl.cfg's vif syntax).
VifConfig parse_vif(const std::string& text) {
    VifConfig vif;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        std::string part = text.substr(start, comma - start);
        start = comma + 1;
        part.erase(0, part.find_first_not_of(" \t"));
        part.erase(part.find_last_not_of(" \t") + 1);
        if (part.empty()) {
            if (comma == text.size()) break;
            continue;
        }
        const std::size_t eq = part.find('=');
        if (eq == std::string::npos) throw Error("vif '" + text + "': '" + part + "' is not key=value");
        const std::string key = part.substr(0, eq);
        const std::string value = part.substr(eq + 1);
        if (key == "mac") {
            vif.mac = parse_mac(value);
        } else if (key == "bridge" || key == "vifname") {
            if (!is_interface_name(value)) {
                throw Error("vif " + key + " '" + value + "' must be 1 to " + std::to_string(kMaxInterfaceName) +
                            " letters, digits, '_', '.' or '-'");
            }
            (key == "bridge" ? vif.bridge : vif.vifname) = value;
        } else if (key == "ip") {
            vif.ip = parse_ipv4_cidr(value);
        } else if ((key == "type" && value == "vif") || (key == "model" && value == "virtio-net")) {
            // xl's defaults for what this NIC is anyway.
        } else {
            throw Error("vif key '" + key + "' is not supported (keys: mac, bridge, vifname, ip)");
        }
        if (comma == text.size()) break;
    }
    return vif;
}

// One element of disk = [ ... ]: xl's disk syntax (xl-disk-configuration): positional
// `target,format,vdev,access`, or key=value, or a mix (positional ones fill the next free
// position, as xl does). `target=` takes the rest of the element, commas included, which is why
// xl wants it last and format_disk writes it last.
DiskConfig parse_disk(const std::string& text) {
    DiskConfig disk;
    bool have_target = false, have_format = false, have_vdev = false, have_access = false;
    const auto set = [&](const std::string& key, const std::string& value) {
        if (key == "target") {
            disk.target = value;
            have_target = true;
        } else if (key == "format") {
            if (value != "raw") throw Error("disk '" + text + "': format '" + value + "' is not supported (only raw)");
            have_format = true;
        } else if (key == "vdev") {
            disk.vdev = value;
            have_vdev = true;
        } else if (key == "access") {
            if (value == "rw" || value == "w") disk.read_only = false;
            else if (value == "ro" || value == "r") disk.read_only = true;
            else throw Error("disk '" + text + "': access '" + value + "' must be rw (w) or ro (r)");
            have_access = true;
        } else if (key == "devtype" && value == "disk") {
            // xl's default for what this device is anyway.
        } else {
            throw Error("disk '" + text + "': key '" + key + "' is not supported (keys: target, format, vdev, access)");
        }
    };
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        std::string part = text.substr(start, comma - start);
        part.erase(0, part.find_first_not_of(" \t"));
        if (part.rfind("target=", 0) == 0) {
            set("target", text.substr(text.find('=', start) + 1));
            break;
        }
        part.erase(part.find_last_not_of(" \t") + 1);
        start = comma + 1;
        const std::size_t eq = part.find('=');
        if (eq != std::string::npos) {
            set(part.substr(0, eq), part.substr(eq + 1));
        } else if (!have_target) {
            set("target", part);
        } else if (!have_format) {
            if (!part.empty()) set("format", part);
            have_format = true;
        } else if (!have_vdev) {
            set("vdev", part);
        } else if (!have_access) {
            if (!part.empty()) set("access", part);
            have_access = true;
        } else {
            throw Error("disk '" + text + "': '" + part + "' is one field too many (target,format,vdev,access)");
        }
        if (comma == text.size()) break;
    }
    if (disk.target.empty()) throw Error("disk '" + text + "': no target (the raw image file)");
    if (disk.vdev.empty()) throw Error("disk '" + text + "': no vdev (xvda, xvdb, ...)");
    const auto letters = [](const std::string& s) {
        return !s.empty() && s.size() <= 3 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
    };
    bool vdev_ok = false;
    for (const char* prefix : {"xvd", "sd", "hd", "vd"}) {
        const std::string p = prefix;
        if (disk.vdev.rfind(p, 0) == 0 && letters(disk.vdev.substr(p.size()))) vdev_ok = true;
    }
    if (!vdev_ok) {
        throw Error("disk '" + text + "': vdev '" + disk.vdev + "' must be xvd, sd, hd or vd and 1 to 3 letters (xvda, ...)");
    }
    return disk;
}

}  // namespace

MacAddress default_mac(const std::string& guest_name, std::size_t index) {
    // FNV-1a of "NAME/INDEX": stable across hosts and runs, so a guest keeps its MAC.
    std::uint32_t hash = 2166136261u;
    for (const char c : guest_name + "/" + std::to_string(index)) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 16777619u;
    }
    return {0x52, 0x54, 0x00, static_cast<std::uint8_t>(hash >> 16), static_cast<std::uint8_t>(hash >> 8),
            static_cast<std::uint8_t>(hash)};
}

std::string format_mac(const MacAddress& mac) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < mac.size(); ++i) {
        if (i > 0) out += ':';
        out += kDigits[mac[i] >> 4];
        out += kDigits[mac[i] & 15];
    }
    return out;
}

std::string format_vif(const VifConfig& vif) {
    std::string out = "mac=" + format_mac(vif.mac);
    if (!vif.bridge.empty()) out += ",bridge=" + vif.bridge;
    if (!vif.vifname.empty()) out += ",vifname=" + vif.vifname;
    if (vif.ip) {
        out += ",ip=";
        for (std::size_t i = 0; i < 4; ++i) out += (i ? "." : "") + std::to_string(vif.ip->address[i]);
        out += "/" + std::to_string(vif.ip->prefix);
    }
    return out;
}

std::string format_disk(const DiskConfig& disk) {
    // target last: it takes the rest of the element, so a path with commas reads back whole.
    return "format=raw,vdev=" + disk.vdev + ",access=" + (disk.read_only ? "ro" : "rw") + ",target=" + disk.target.string();
}

GuestConfig parse_guest_config(const std::string& text, const std::string& origin) {
    if (text.size() > kMaxGuestConfigBytes)
        throw Error(origin + ": larger than " + std::to_string(kMaxGuestConfigBytes >> 20) +
                    " MiB; a guest config is a few lines of key = value");
    Parser parser(text, origin);
    auto entries = parser.parse();
    GuestConfig config;
    int vif_line = 0;

    auto number = [&](const std::string& key, const std::pair<Value, int>& e, std::uint64_t min,
                      std::uint64_t max) {
        const auto& [v, line] = e;
        if (v.is_list) parser.fail_at(line, key + " must be a number, not a list");
        std::uint64_t n = 0;
        const auto* end = v.text.data() + v.text.size();
        const auto [ptr, ec] = std::from_chars(v.text.data(), end, n);
        if (v.quoted || ec != std::errc{} || ptr != end) {
            parser.fail_at(line, key + " must be a number, not '" + v.text + "'");
        }
        if (n < min || n > max) {
            parser.fail_at(line, key + " = " + v.text + " is out of range (" + std::to_string(min) +
                                     ".." + std::to_string(max) + ")");
        }
        return n;
    };
    auto string = [&](const std::string& key, const std::pair<Value, int>& e) {
        if (!e.first.quoted || e.first.is_list) parser.fail_at(e.second, key + " must be a quoted string");
        return e.first.text;
    };
    auto list = [&](const std::string& key, const std::pair<Value, int>& e) {
        if (!e.first.is_list) parser.fail_at(e.second, key + " must be a list: " + key + " = [ '...', ... ]");
        return e.first.items;
    };

    for (const auto& [key, entry] : entries) {
        if (key == "name") config.name = string(key, entry);
        else if (key == "backend") config.backend = string(key, entry);
        else if (key == "memory") config.memory_mib = number(key, entry, 2, kMaxMemoryMib);
        else if (key == "vcpus") config.vcpus = static_cast<unsigned>(number(key, entry, 1, kMaxVcpus));
        else if (key == "kernel") config.kernel = string(key, entry);
        else if (key == "ramdisk") config.ramdisk = string(key, entry);
        else if (key == "extra") config.extra = string(key, entry);
        else if (key == "working_set") config.working_set_mib = number(key, entry, 1, kMaxMemoryMib);
        else if (key == "dirty_rate") config.dirty_rate = number(key, entry, 0, 10'000'000);
        else if (key == "seed") config.seed = number(key, entry, 0, UINT64_MAX);
        else if (key == "print_interval") config.print_interval_ms = number(key, entry, 10, 60'000);
        else if (key == "vif") {
            const auto items = list(key, entry);
            if (items.size() > kMaxVifs) {
                parser.fail_at(entry.second, "vif lists " + std::to_string(items.size()) + " NICs, at most " +
                                                 std::to_string(kMaxVifs) + " are supported");
            }
            vif_line = entry.second;
            for (const auto& item : items) {
                try {
                    config.vifs.push_back(parse_vif(item));
                } catch (const Error& e) {
                    parser.fail_at(entry.second, e.what());
                }
            }
        }
        else if (key == "disk") {
            const auto items = list(key, entry);
            if (items.size() > kMaxDisks) {
                parser.fail_at(entry.second, "disk lists " + std::to_string(items.size()) + " disks, at most " +
                                                 std::to_string(kMaxDisks) + " are supported");
            }
            for (const auto& item : items) {
                try {
                    config.disks.push_back(parse_disk(item));
                } catch (const Error& e) {
                    parser.fail_at(entry.second, e.what());
                }
                for (std::size_t j = 0; j + 1 < config.disks.size(); ++j) {
                    if (config.disks[j].vdev == config.disks.back().vdev) {
                        parser.fail_at(entry.second, "disk " + std::to_string(j) + " and disk " +
                                                         std::to_string(config.disks.size() - 1) + " have the same vdev " +
                                                         config.disks.back().vdev);
                    }
                }
            }
        }
        else if (key == "disk_rate") config.disk_rate = number(key, entry, 0, 1'000'000);
        else if (key == "disk_blocks") config.disk_blocks = number(key, entry, 0, kMaxDiskBlocks);
        else if (key == "disk_writes") config.disk_writes = number(key, entry, 0, UINT64_MAX);
        else if (key == "disk_flush_every") config.disk_flush_every = number(key, entry, 0, 1'000'000);
        else if (key == "domain_config") {
            const std::string hex = string(key, entry);
            if (hex.size() % 2 != 0 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
                parser.fail_at(entry.second, "domain_config must be lower-case hex digits in pairs");
            }
            for (std::size_t i = 0; i < hex.size(); i += 2) {
                config.domain_config += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
            }
        }
        else if (key == "peer") config.protection.peer = string(key, entry);
        else if (key == "listen") config.protection.listen = string(key, entry);
        else if (key == "protection") {
            config.protection.mode = string(key, entry);
            if (config.protection.mode != "colo" && config.protection.mode != "remus") {
                parser.fail_at(entry.second, "protection must be \"colo\" or \"remus\", not \"" + config.protection.mode + "\"");
            }
        }
        else if (key == "checkpoint_interval") config.protection.interval_ms = number(key, entry, 1, 3'600'000);
        else if (key == "heartbeat_timeout") config.protection.heartbeat_timeout_ms = number(key, entry, 10, 3'600'000);
        else if (key == "link_key") config.protection.link_key = string(key, entry);
        else if (key == "tls_cert") config.protection.tls_cert = string(key, entry);
        else if (key == "tls_key") config.protection.tls_key = string(key, entry);
        else if (key == "tls_ca") config.protection.tls_ca = string(key, entry);
        else if (key == "witness") config.protection.witness = string(key, entry);
        else if (key == "disk_dir") config.protection.disk_dir = string(key, entry);
        else if (key == "takeover") {
            config.protection.takeover = string(key, entry);
            if (config.protection.takeover != "auto" && config.protection.takeover != "manual") {
                parser.fail_at(entry.second, "takeover must be \"auto\" or \"manual\", not \"" + config.protection.takeover + "\"");
            }
        }
        else if (key == "checkpoint_style") {
            config.checkpoint_style = string(key, entry);
            if (config.checkpoint_style != "auto" && config.checkpoint_style != "cooperative" &&
                config.checkpoint_style != "transparent") {
                parser.fail_at(entry.second, "checkpoint_style must be \"auto\", \"cooperative\" or \"transparent\", not \"" +
                                                 config.checkpoint_style + "\"");
            }
        }
        else if (key == "guest") {
            const auto g = string(key, entry);
            if (g == "builtin") config.guest = GuestKind::builtin;
            else if (g == "linux") config.guest = GuestKind::linux_kernel;
            else parser.fail_at(entry.second, "guest must be \"builtin\" or \"linux\", not \"" + g + "\"");
        } else {
            parser.fail_at(entry.second, "unknown key '" + key + "'");
        }
    }

    if (config.name.empty()) throw Error(origin + ": no name given (name = \"...\")");
    validate_guest_name(config.name, origin);
    if (config.backend != "kvm" && config.backend != "xen") {
        throw Error(origin + ": backend must be \"kvm\" or \"xen\", not \"" + config.backend + "\"");
    }
    if (config.checkpoint_style == "cooperative" && config.backend != "xen") {
        throw Error(origin + ": checkpoint_style = \"cooperative\" is for Xen guests (a KVM guest is always paused "
                             "from outside, which keeps all of its state)");
    }
    if (config.guest == GuestKind::linux_kernel && config.kernel.empty()) {
        throw Error(origin + ": guest = \"linux\" needs kernel = \"...\"");
    }
    for (std::size_t i = 0; i < config.vifs.size(); ++i) {
        VifConfig& vif = config.vifs[i];
        if (vif.mac == MacAddress{}) vif.mac = default_mac(config.name, i);
        for (std::size_t j = 0; j < i; ++j) {
            if (config.vifs[j].mac == vif.mac) {
                throw Error(origin + ":" + std::to_string(vif_line) + ": vif " + std::to_string(j) + " and vif " +
                            std::to_string(i) + " have the same mac " + format_mac(vif.mac));
            }
            if (!vif.vifname.empty() && config.vifs[j].vifname == vif.vifname) {
                throw Error(origin + ":" + std::to_string(vif_line) + ": vif " + std::to_string(j) + " and vif " +
                            std::to_string(i) + " have the same vifname " + vif.vifname);
            }
        }
    }
    const ProtectionConfig& p = config.protection;
    const bool any_tls = !p.tls_cert.empty() || !p.tls_key.empty() || !p.tls_ca.empty();
    if (any_tls && (p.tls_cert.empty() || p.tls_key.empty() || p.tls_ca.empty())) {
        throw Error(origin + ": tls_cert, tls_key and tls_ca go together (x509 needs all three)");
    }
    if (any_tls && !p.link_key.empty()) throw Error(origin + ": link_key or tls_cert/tls_key/tls_ca, not both");
    if (config.guest == GuestKind::builtin && config.working_set_mib + 4 > config.memory_mib) {
        throw Error(origin + ": working_set (" + std::to_string(config.working_set_mib) +
                    " MiB) must leave at least 4 MiB of memory (" + std::to_string(config.memory_mib) +
                    " MiB) for the guest itself");
    }
    return config;
}

void validate_guest_name(const std::string& name, const std::string& origin) {
    // The name becomes a file name (NAME.sock, NAME.log in the run dir), a Xen domain name and an
    // argument of other commands: so no path parts (".", ".."), nothing an option parser takes
    // for an option ("-rf"), and short enough for a socket path.
    const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    const bool allowed = std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
    if (name.empty() || !alnum(name.front()) || !allowed || name.size() > kMaxGuestNameLength) {
        throw Error(origin + ": name \"" + name + "\" must start with a letter or digit and hold only letters, digits, '-', " +
                    "'_' and '.' (at most " + std::to_string(kMaxGuestNameLength) + " characters)");
    }
}

GuestConfig load_guest_config(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw SystemError("open " + file.string(), errno);
    // Bounded: a path such as /dev/zero must not be read until the memory runs out.
    std::string text(kMaxGuestConfigBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (in.bad()) throw SystemError("read " + file.string(), errno);
    return parse_guest_config(text, file.string());
}

std::string format_guest_config(const GuestConfig& c) {
    std::ostringstream out;
    out << "name = \"" << c.name << "\"\n"
        << "backend = \"" << c.backend << "\"\n"
        << "memory = " << c.memory_mib << "\n"
        << "vcpus = " << c.vcpus << "\n"
        << "guest = \"" << (c.guest == GuestKind::builtin ? "builtin" : "linux") << "\"\n";
    if (!c.kernel.empty()) out << "kernel = \"" << c.kernel.string() << "\"\n";
    if (!c.ramdisk.empty()) out << "ramdisk = \"" << c.ramdisk.string() << "\"\n";
    if (!c.extra.empty()) out << "extra = \"" << c.extra << "\"\n";
    out << "working_set = " << c.working_set_mib << "\n"
        << "dirty_rate = " << c.dirty_rate << "\n"
        << "seed = " << c.seed << "\n"
        << "print_interval = " << c.print_interval_ms << "\n";
    if (!c.vifs.empty()) {
        out << "vif = [";
        for (std::size_t i = 0; i < c.vifs.size(); ++i) out << (i ? ", '" : " '") << format_vif(c.vifs[i]) << "'";
        out << " ]\n";
    }
    if (!c.disks.empty()) {
        out << "disk = [";
        for (std::size_t i = 0; i < c.disks.size(); ++i) {
            // A path holding ' is written in "..." (the parser's strings cannot hold their quote).
            const std::string item = format_disk(c.disks[i]);
            const char quote = item.find('\'') == std::string::npos ? '\'' : '"';
            out << (i ? ", " : " ") << quote << item << quote;
        }
        out << " ]\n";
    }
    out << "disk_rate = " << c.disk_rate << "\n"
        << "disk_blocks = " << c.disk_blocks << "\n"
        << "disk_writes = " << c.disk_writes << "\n"
        << "disk_flush_every = " << c.disk_flush_every << "\n";
    if (c.checkpoint_style != "auto") out << "checkpoint_style = \"" << c.checkpoint_style << "\"\n";
    if (!c.domain_config.empty()) {
        static constexpr char kDigits[] = "0123456789abcdef";
        out << "domain_config = \"";
        for (const char ch : c.domain_config) {
            const auto byte = static_cast<unsigned char>(ch);
            out << kDigits[byte >> 4] << kDigits[byte & 15];
        }
        out << "\"\n";
    }
    return out.str();
}

}  // namespace colo
