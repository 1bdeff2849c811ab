#include "toolstack/protection_settings.hpp"

#include <charconv>

namespace colo {

namespace {

struct Field {
    const char* key;
    std::string ProtectionConfig::*text = nullptr;
    std::filesystem::path ProtectionConfig::*path = nullptr;
    std::optional<std::uint64_t> ProtectionConfig::*number = nullptr;
};

// One table for both directions, so a key cannot be written and not read.
constexpr Field kFields[] = {
    {"peer", &ProtectionConfig::peer},
    {"listen", &ProtectionConfig::listen},
    {"protection", &ProtectionConfig::mode},
    {"checkpoint_interval", nullptr, nullptr, &ProtectionConfig::interval_ms},
    {"heartbeat_timeout", nullptr, nullptr, &ProtectionConfig::heartbeat_timeout_ms},
    {"link_key", nullptr, &ProtectionConfig::link_key},
    {"tls_cert", nullptr, &ProtectionConfig::tls_cert},
    {"tls_key", nullptr, &ProtectionConfig::tls_key},
    {"tls_ca", nullptr, &ProtectionConfig::tls_ca},
    {"witness", &ProtectionConfig::witness},
    {"takeover", &ProtectionConfig::takeover},
    {"disk_dir", nullptr, &ProtectionConfig::disk_dir},
};

}  // namespace

std::vector<std::string> protection_lines(const ProtectionConfig& protection) {
    std::vector<std::string> lines;
    for (const Field& field : kFields) {
        std::string value;
        if (field.text != nullptr) value = protection.*field.text;
        if (field.path != nullptr) value = (protection.*field.path).string();
        if (field.number != nullptr && (protection.*field.number).has_value()) value = std::to_string(*(protection.*field.number));
        if (!value.empty()) lines.push_back(std::string(field.key) + " " + value);
    }
    return lines;
}

ProtectionConfig protection_from_lines(const std::vector<std::string>& lines) {
    ProtectionConfig protection;
    for (const std::string& line : lines) {
        const auto space = line.find(' ');
        if (space == std::string::npos) continue;
        const std::string key = line.substr(0, space), value = line.substr(space + 1);
        for (const Field& field : kFields) {
            if (key != field.key) continue;
            if (field.text != nullptr) protection.*field.text = value;
            if (field.path != nullptr) protection.*field.path = value;
            if (field.number != nullptr) {
                std::uint64_t n = 0;
                const auto* end = value.data() + value.size();
                if (std::from_chars(value.data(), end, n).ptr == end && !value.empty()) protection.*field.number = n;
            }
        }
    }
    return protection;
}

}  // namespace colo
