#include "toolstack/network/tcp_stream_compare.hpp"

#include <algorithm>
#include <cstring>

namespace colo::network {

namespace {

std::int64_t size_of(std::span<const std::byte> bytes) { return static_cast<std::int64_t>(bytes.size()); }

std::uint32_t syn_length(const TcpSegment& tcp) { return (tcp.flags & tcp_flag::syn) ? 1 : 0; }

}  // namespace

// --- the SVM's bytes by position

void TcpStreamCompare::Ranges::insert(std::int64_t at, std::span<const std::byte> bytes) {
    // What is there already stays (a retransmission brings the same bytes); only gaps are filled.
    std::int64_t pos = at;
    const std::int64_t end = at + size_of(bytes);
    while (pos < end) {
        auto next = ranges_.upper_bound(pos);
        if (next != ranges_.begin()) {
            const auto& [start, held] = *std::prev(next);
            const std::int64_t held_end = start + size_of(held);
            if (held_end > pos) {
                pos = std::min(end, held_end);
                continue;
            }
        }
        const std::int64_t limit = next == ranges_.end() ? end : std::min(end, next->first);
        const auto from = bytes.begin() + (pos - at);
        ranges_.emplace_hint(next, pos, std::vector<std::byte>(from, from + (limit - pos)));
        pos = limit;
    }
}

TcpStreamCompare::Ranges::Cover TcpStreamCompare::Ranges::compare(std::int64_t at, std::span<const std::byte> bytes) const {
    const std::int64_t end = at + size_of(bytes);
    std::int64_t covered = 0;
    auto it = ranges_.upper_bound(at);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < end; ++it) {
        const std::int64_t from = std::max(at, it->first);
        const std::int64_t to = std::min(end, it->first + size_of(it->second));
        if (from >= to) continue;
        if (std::memcmp(it->second.data() + (from - it->first), bytes.data() + (from - at),
                        static_cast<std::size_t>(to - from)) != 0) {
            return Cover::differ;
        }
        covered += to - from;
    }
    return covered == size_of(bytes) ? Cover::all : Cover::part;
}

std::optional<std::int64_t> TcpStreamCompare::Ranges::end() const {
    if (ranges_.empty()) return std::nullopt;
    const auto& [start, bytes] = *ranges_.rbegin();
    return start + size_of(bytes);
}

void TcpStreamCompare::Ranges::drop_below(std::int64_t at) {
    while (!ranges_.empty()) {
        auto first = ranges_.begin();
        const std::int64_t first_end = first->first + size_of(first->second);
        if (first_end <= at) {
            ranges_.erase(first);
            continue;
        }
        if (first->first < at) {
            std::vector<std::byte> tail(first->second.begin() + (at - first->first), first->second.end());
            ranges_.erase(first);
            ranges_.emplace(at, std::move(tail));
        }
        return;
    }
}

// --- one connection

std::int64_t TcpStreamCompare::position(std::uint32_t seq) {
    if (!anchor_) anchor_ = seq;
    return static_cast<std::int32_t>(seq - *anchor_);
}

bool TcpStreamCompare::translatable() const { return !svm_isn_ || pvm_isn_; }

std::uint32_t TcpStreamCompare::svm_offset() const { return svm_isn_ && pvm_isn_ ? *svm_isn_ - *pvm_isn_ : 0; }

void TcpStreamCompare::pvm(Segment segment) {
    if (segment.tcp.flags & tcp_flag::syn) pvm_isn_ = segment.tcp.seq;
    pvm_.push_back(std::move(segment));
}

void TcpStreamCompare::svm(Segment segment) { svm_.push_back(std::move(segment)); }

void TcpStreamCompare::absorb_svm() {
    while (svm_absorbed_ < svm_.size()) {
        Segment& s = svm_[svm_absorbed_];
        TcpSegment& tcp = s.tcp;
        if (tcp.flags & tcp_flag::syn) {
            svm_isn_ = tcp.seq;
            svm_syn_flags_ = tcp.flags & (tcp_flag::syn | tcp_flag::ack);
            svm_syn_ack_ = tcp.ack;
        }
        // Until the PVM's SYN shows its initial sequence number, the SVM's cannot be translated.
        if (!translatable()) return;
        tcp.seq -= svm_offset();
        const std::int64_t data = position(tcp.seq + syn_length(tcp));
        svm_bytes_.insert(data, s.payload);
        if (tcp.flags & tcp_flag::fin) svm_fin_ = data + size_of(s.payload);
        if (tcp.flags & tcp_flag::rst) svm_rst_ = true;
        if ((tcp.flags & tcp_flag::ack) && (!svm_max_ack_ || seq_before(*svm_max_ack_, tcp.ack))) svm_max_ack_ = tcp.ack;
        ++svm_absorbed_;
    }
}

std::string TcpStreamCompare::check_pvm(const Segment& p, bool& ready) {
    ready = false;
    const TcpSegment& tcp = p.tcp;
    const std::string which = "PVM frame " + std::to_string(p.index);
    if (tcp.flags & tcp_flag::syn) {
        if (!svm_isn_) return {};
        if (svm_syn_flags_ != (tcp.flags & (tcp_flag::syn | tcp_flag::ack))) {
            return which + ": the SVM's SYN has other flags";
        }
        if ((tcp.flags & tcp_flag::ack) && svm_syn_ack_ != tcp.ack) {
            return which + ": the SVM's SYN acknowledges " + std::to_string(svm_syn_ack_) + ", the PVM's " +
                   std::to_string(tcp.ack);
        }
    }
    const std::int64_t data = position(tcp.seq + syn_length(tcp));
    const std::int64_t data_end = data + size_of(p.payload);
    if (data_end > data && !(released_end_ && data_end <= *released_end_)) {
        // Bytes released already were compared already: only the rest must be the SVM's.
        const std::int64_t from = released_end_ ? std::max(data, *released_end_) : data;
        switch (svm_bytes_.compare(from, std::span(p.payload).subspan(static_cast<std::size_t>(from - data)))) {
            case Ranges::Cover::differ: return which + ": the SVM sent other bytes at sequence " + std::to_string(tcp.seq);
            case Ranges::Cover::part: return {};
            case Ranges::Cover::all: break;
        }
    }
    if ((tcp.flags & tcp_flag::fin) && !(released_end_ && data_end < *released_end_)) {
        if (svm_fin_ && *svm_fin_ != data_end) return which + ": the SVM's FIN is elsewhere";
        const auto svm_end = svm_bytes_.end();
        if (!svm_fin_ && svm_end && *svm_end > data_end) return which + ": the SVM sent bytes past the PVM's FIN";
        if (!svm_fin_) return {};
    }
    if ((tcp.flags & tcp_flag::rst) && !svm_rst_) return {};
    if ((tcp.flags & tcp_flag::ack) && !(tcp.flags & tcp_flag::syn) &&
        (!svm_max_ack_ || seq_before(*svm_max_ack_, tcp.ack))) {
        return {};
    }
    ready = true;
    return {};
}

bool TcpStreamCompare::covered(const Segment& s) {
    const TcpSegment& tcp = s.tcp;  // translated by absorb_svm
    if (tcp.length() > 0) {
        const std::int64_t end = position(tcp.seq + tcp.length());
        if (!released_end_ || end > *released_end_) return false;
    }
    if ((tcp.flags & tcp_flag::ack) && (!released_ack_ || seq_before(*released_ack_, tcp.ack))) return false;
    if ((tcp.flags & tcp_flag::rst) && !released_rst_) return false;
    return true;
}

std::string TcpStreamCompare::match(std::vector<std::uint64_t>& pvm_released, std::vector<std::uint64_t>& svm_covered) {
    absorb_svm();
    while (!pvm_.empty()) {
        const Segment& p = pvm_.front();
        bool ready = false;
        if (std::string mismatch = check_pvm(p, ready); !mismatch.empty()) return mismatch;
        if (!ready) break;
        const TcpSegment& tcp = p.tcp;
        const std::int64_t end = position(tcp.seq + tcp.length());
        if (!released_end_ || end > *released_end_) released_end_ = end;
        if ((tcp.flags & tcp_flag::ack) && (!released_ack_ || seq_before(*released_ack_, tcp.ack))) released_ack_ = tcp.ack;
        released_rst_ = released_rst_ || (tcp.flags & tcp_flag::rst);
        pvm_released.push_back(p.index);
        pvm_.pop_front();
    }
    if (released_end_) svm_bytes_.drop_below(*released_end_);
    while (svm_absorbed_ > 0 && covered(svm_.front())) {
        svm_covered.push_back(svm_.front().index);
        svm_.pop_front();
        --svm_absorbed_;
    }
    return {};
}

}  // namespace colo::network
