#include "toolstack/failover/json_reader.hpp"

#include <charconv>

#include "backends/error.hpp"

namespace colo {

namespace {

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    JsonValue document() {
        JsonValue value = parse_value(0);
        skip_space();
        if (at_ < text_.size()) fail("unexpected text after the value");
        return value;
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw Error("JSON: " + why + " at offset " + std::to_string(at_));
    }

    void skip_space() {
        while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r'))
            ++at_;
    }

    char peek() {
        skip_space();
        if (at_ >= text_.size()) fail("unexpected end");
        return text_[at_];
    }

    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++at_;
    }

    bool literal(std::string_view word) {
        if (text_.substr(at_, word.size()) != word) return false;
        at_ += word.size();
        return true;
    }

    JsonValue parse_value(std::size_t depth) {
        if (depth >= kMaxJsonDepth) fail("nested deeper than " + std::to_string(kMaxJsonDepth));
        JsonValue value;
        const char c = peek();
        if (c == '{') {
            value.kind = JsonValue::Kind::object;
            ++at_;
            if (peek() == '}') {
                ++at_;
                return value;
            }
            for (;;) {
                if (peek() != '"') fail("expected a member name");
                std::string key = parse_string();
                expect(':');
                value.members.emplace_back(std::move(key), parse_value(depth + 1));
                if (peek() == '}') break;
                expect(',');
            }
            ++at_;
        } else if (c == '[') {
            value.kind = JsonValue::Kind::array;
            ++at_;
            if (peek() == ']') {
                ++at_;
                return value;
            }
            for (;;) {
                value.items.push_back(parse_value(depth + 1));
                if (peek() == ']') break;
                expect(',');
            }
            ++at_;
        } else if (c == '"') {
            value.kind = JsonValue::Kind::string;
            value.text = parse_string();
        } else if (literal("true")) {
            value.kind = JsonValue::Kind::boolean;
            value.boolean = true;
        } else if (literal("false")) {
            value.kind = JsonValue::Kind::boolean;
        } else if (literal("null")) {
            value.kind = JsonValue::Kind::null;
        } else {
            value.kind = JsonValue::Kind::number;
            value.text = parse_number();
        }
        return value;
    }

    // RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    std::string parse_number() {
        const std::size_t start = at_;
        const auto digits = [&] {
            const std::size_t from = at_;
            while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
            if (at_ == from) fail("expected a digit");
        };
        if (at_ < text_.size() && text_[at_] == '-') ++at_;
        if (at_ < text_.size() && text_[at_] == '0') {
            ++at_;
        } else {
            if (at_ == start && (at_ >= text_.size() || text_[at_] < '1' || text_[at_] > '9')) fail("expected a value");
            digits();
        }
        if (at_ < text_.size() && text_[at_] == '.') {
            ++at_;
            digits();
        }
        if (at_ < text_.size() && (text_[at_] == 'e' || text_[at_] == 'E')) {
            ++at_;
            if (at_ < text_.size() && (text_[at_] == '+' || text_[at_] == '-')) ++at_;
            digits();
        }
        return std::string(text_.substr(start, at_ - start));
    }

    unsigned hex4() {
        if (at_ + 4 > text_.size()) fail("unexpected end in \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i, ++at_) {
            const char h = text_[at_];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else fail("bad hex digit in \\u escape");
        }
        return v;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    // At the opening quote; returns the decoded text. Bytes >= 0x80 pass through as they are.
    std::string parse_string() {
        ++at_;
        std::string out;
        for (;;) {
            if (at_ >= text_.size()) fail("unterminated string");
            const char c = text_[at_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) {
                --at_;
                fail("control character in a string");
            }
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_ >= text_.size()) fail("unterminated string");
            const char e = text_[at_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xd800 && cp < 0xdc00) {  // a high surrogate: its low half must follow
                        if (!literal("\\u")) fail("lone surrogate in \\u escape");
                        const unsigned low = hex4();
                        if (low < 0xdc00 || low >= 0xe000) fail("lone surrogate in \\u escape");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    } else if (cp >= 0xdc00 && cp < 0xe000) {
                        fail("lone surrogate in \\u escape");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default:
                    --at_;
                    fail("bad escape");
            }
        }
    }

    std::string_view text_;
    std::size_t at_ = 0;
};

}  // namespace

const JsonValue* JsonValue::member(std::string_view key) const {
    if (kind != Kind::object) return nullptr;
    for (const auto& [name, value] : members)
        if (name == key) return &value;
    return nullptr;
}

JsonValue parse_json(std::string_view text) { return Parser(text).document(); }

std::int64_t json_int64(const JsonValue& value, const std::string& what) {
    if (value.kind != JsonValue::Kind::string && value.kind != JsonValue::Kind::number)
        throw Error(what + " is " + describe(value.kind) + ", not a whole number");
    std::int64_t n = 0;
    const char* end = value.text.data() + value.text.size();
    const auto [ptr, ec] = std::from_chars(value.text.data(), end, n);
    if (ec != std::errc{} || ptr != end || value.text.empty())
        throw Error(what + " \"" + value.text + "\" is not a whole number that fits 64 bits");
    return n;
}

const char* describe(JsonValue::Kind kind) {
    switch (kind) {
        case JsonValue::Kind::null: return "null";
        case JsonValue::Kind::boolean: return "a boolean";
        case JsonValue::Kind::number: return "a number";
        case JsonValue::Kind::string: return "a string";
        case JsonValue::Kind::array: return "an array";
        case JsonValue::Kind::object: return "an object";
    }
    return "a value";
}

}  // namespace colo
