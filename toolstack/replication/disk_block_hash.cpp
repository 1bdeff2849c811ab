#include "toolstack/replication/disk_block_hash.hpp"

#include <openssl/evp.h>

#include "backends/error.hpp"

namespace colo::disk {

BlockHash hash_block(std::span<const std::byte> block) {
    BlockHash out{};
    unsigned int size = 0;
    if (EVP_Digest(block.data(), block.size(), reinterpret_cast<unsigned char*>(out.data()), &size, EVP_sha256(),
                   nullptr) != 1 ||
        size != out.size()) {
        throw Error("disk sync: SHA-256 of a block failed (OpenSSL EVP_Digest)");
    }
    return out;
}

}  // namespace colo::disk
