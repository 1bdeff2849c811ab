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
    Value value() {
        if (at_end()) fail("missing value");
        const char c = peek();
        if (c == '"' || c == '\'') {
            ++pos_;
            std::string s;
            while (!at_end() && peek() != c) {
                if (peek() == '\n') fail("unterminated string");
                s += peek();
                ++pos_;
            }
            if (at_end()) fail("unterminated string");
            ++pos_;
            return {true, s};
        }
        const std::size_t start = pos_;
        while (!at_end() && std::string_view(" \t\r\n;#").find(peek()) == std::string_view::npos) ++pos_;
        if (start == pos_) fail("missing value");
        return {false, text_.substr(start, pos_ - start)};
    }

    const std::string& text_;
    std::string origin_;
    std::size_t pos_ = 0;
    int line_ = 1;
};

}  // namespace

GuestConfig parse_guest_config(const std::string& text, const std::string& origin) {
    if (text.size() > kMaxGuestConfigBytes)
        throw Error(origin + ": larger than " + std::to_string(kMaxGuestConfigBytes >> 20) +
                    " MiB; a guest config is a few lines of key = value");
    Parser parser(text, origin);
    auto entries = parser.parse();
    GuestConfig config;

    auto number = [&](const std::string& key, const std::pair<Value, int>& e, std::uint64_t min,
                      std::uint64_t max) {
        const auto& [v, line] = e;
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
        if (!e.first.quoted) parser.fail_at(e.second, key + " must be a quoted string");
        return e.first.text;
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
        else if (key == "domain_config") {
            const std::string hex = string(key, entry);
            if (hex.size() % 2 != 0 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
                parser.fail_at(entry.second, "domain_config must be lower-case hex digits in pairs");
            }
            for (std::size_t i = 0; i < hex.size(); i += 2) {
                config.domain_config += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
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
    if (config.guest == GuestKind::linux_kernel && config.kernel.empty()) {
        throw Error(origin + ": guest = \"linux\" needs kernel = \"...\"");
    }
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
