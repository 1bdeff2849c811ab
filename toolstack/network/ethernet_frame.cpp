#include "toolstack/network/ethernet_frame.hpp"

#include <cstdio>
#include <optional>

namespace colo::network {

namespace {

constexpr std::size_t kEthernetHeader = 14;

std::uint16_t be16(std::span<const std::byte> b, std::size_t at) { return read_be16(b, at); }

std::string hex16(std::uint16_t v) {
    char text[8];
    std::snprintf(text, sizeof text, "%04x", v);
    return text;
}

std::string ipv4_text(std::span<const std::byte> a) {
    return std::to_string(std::to_integer<unsigned>(a[0])) + "." + std::to_string(std::to_integer<unsigned>(a[1])) + "." +
           std::to_string(std::to_integer<unsigned>(a[2])) + "." + std::to_string(std::to_integer<unsigned>(a[3]));
}

std::string ipv6_text(std::span<const std::byte> a) {
    std::string out;
    for (std::size_t i = 0; i < 16; i += 2) out += (i ? ":" : "") + hex16(be16(a, i));
    return out;
}

FrameKey whole(std::span<const std::byte> frame, std::uint16_t ethertype) {
    return {FrameKey::Kind::other, "ethertype " + hex16(ethertype), {frame.begin(), frame.end()}, std::nullopt};
}

// The transport part of an IP packet: `protocol`, addresses as text, the bytes after the IP header.
// `l4_at`: where the transport header starts in the frame.
std::optional<FrameKey> transport_key(unsigned protocol, const std::string& src, const std::string& dst,
                                      std::span<const std::byte> l4, std::size_t l4_at, bool v6) {
    const unsigned icmp = v6 ? 58 : 1;
    if (protocol == 6) {
        if (l4.size() < 20) return std::nullopt;
        const std::size_t offset = (std::to_integer<std::size_t>(l4[12]) >> 4) * 4;
        if (offset < 20 || offset > l4.size()) return std::nullopt;
        const std::string sport = std::to_string(be16(l4, 0)), dport = std::to_string(be16(l4, 2));
        FrameKey key{FrameKey::Kind::tcp, "tcp " + src + ":" + sport + ">" + dst + ":" + dport,
                     {l4.begin() + static_cast<std::ptrdiff_t>(offset), l4.end()}, std::nullopt};
        key.tcp = TcpSegment{l4_at, offset, l4.size() - offset, read_be32(l4, 4), read_be32(l4, 8),
                             static_cast<std::uint8_t>(std::to_integer<unsigned>(l4[13]) & 0x3f),
                             "tcp " + dst + ":" + dport + ">" + src + ":" + sport};
        return key;
    }
    if (protocol == 17) {
        if (l4.size() < 8) return std::nullopt;
        const std::uint16_t length = be16(l4, 4);
        if (length < 8 || length > l4.size()) return std::nullopt;
        return FrameKey{FrameKey::Kind::udp,
                        "udp " + src + ":" + std::to_string(be16(l4, 0)) + ">" + dst + ":" + std::to_string(be16(l4, 2)),
                        {l4.begin() + 8, l4.begin() + length}, std::nullopt};
    }
    if (protocol == icmp) {
        if (l4.size() < 4) return std::nullopt;
        FrameKey key{FrameKey::Kind::icmp, std::string(v6 ? "icmpv6 " : "icmp ") + src + ">" + dst, {}, std::nullopt};
        key.compared.insert(key.compared.end(), l4.begin(), l4.begin() + 2);  // type, code
        key.compared.insert(key.compared.end(), l4.begin() + 4, l4.end());    // not the checksum
        return key;
    }
    return std::nullopt;
}

}  // namespace

FrameKey frame_key(std::span<const std::byte> frame) {
    if (frame.size() < kEthernetHeader) return {FrameKey::Kind::other, "short frame", {frame.begin(), frame.end()}, std::nullopt};
    const std::uint16_t ethertype = be16(frame, 12);
    const auto ip = frame.subspan(kEthernetHeader);
    if (ethertype == 0x0800 && ip.size() >= 20 && (std::to_integer<unsigned>(ip[0]) >> 4) == 4) {
        const std::size_t header = (std::to_integer<std::size_t>(ip[0]) & 15) * 4;
        const std::uint16_t total = be16(ip, 2);
        // A fragment's transport header is in its first piece only: fragments are compared whole.
        const bool fragment = (be16(ip, 6) & 0x3fff) != 0;
        if (header >= 20 && total >= header && total <= ip.size() && !fragment) {
            if (auto key = transport_key(std::to_integer<unsigned>(ip[9]), ipv4_text(ip.subspan(12, 4)),
                                         ipv4_text(ip.subspan(16, 4)), ip.subspan(header, total - header),
                                         kEthernetHeader + header, false)) {
                return *key;
            }
        }
    } else if (ethertype == 0x86dd && ip.size() >= 40 && (std::to_integer<unsigned>(ip[0]) >> 4) == 6) {
        const std::uint16_t payload = be16(ip, 4);
        if (std::size_t{40} + payload <= ip.size()) {
            if (auto key = transport_key(std::to_integer<unsigned>(ip[6]), ipv6_text(ip.subspan(8, 16)),
                                         ipv6_text(ip.subspan(24, 16)), ip.subspan(40, payload), kEthernetHeader + 40,
                                         true)) {
                return *key;
            }
        }
    }
    return whole(frame, ethertype);
}

std::uint16_t read_be16(std::span<const std::byte> frame, std::size_t at) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(frame[at]) << 8) | std::to_integer<unsigned>(frame[at + 1]));
}

std::uint32_t read_be32(std::span<const std::byte> frame, std::size_t at) {
    return static_cast<std::uint32_t>(read_be16(frame, at)) << 16 | read_be16(frame, at + 2);
}

void rewrite_be16(std::span<std::byte> frame, std::size_t at, std::uint16_t value, std::size_t checksum) {
    const std::uint16_t old = read_be16(frame, at);
    frame[at] = static_cast<std::byte>(value >> 8);
    frame[at + 1] = static_cast<std::byte>(value & 0xff);
    std::uint32_t sum = static_cast<std::uint16_t>(~read_be16(frame, checksum)) + static_cast<std::uint32_t>(static_cast<std::uint16_t>(~old)) + value;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const auto result = static_cast<std::uint16_t>(~sum);
    frame[checksum] = static_cast<std::byte>(result >> 8);
    frame[checksum + 1] = static_cast<std::byte>(result & 0xff);
}

void rewrite_be32(std::span<std::byte> frame, std::size_t at, std::uint32_t value, std::size_t checksum) {
    rewrite_be16(frame, at, static_cast<std::uint16_t>(value >> 16), checksum);
    rewrite_be16(frame, at + 2, static_cast<std::uint16_t>(value & 0xffff), checksum);
}

}  // namespace colo::network
