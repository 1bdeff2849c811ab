// The RAII wrappers on real /dev/kvm: failures name the ioctl and carry errno (STYLE §7).
#include <doctest/doctest.h>

#include <string>

#include "backends/error.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vm.hpp"

using namespace colo;
using namespace colo::kvm;

TEST_CASE("kvm wrappers: a missing capability and a refused ioctl are clear errors") {
    System system;
    CHECK(system.get_api_version() == 12);
    CHECK(system.get_vcpu_mmap_size() >= 4096);
    CHECK_FALSE(system.get_supported_cpuid().empty());
    CHECK_FALSE(system.get_msr_index_list().empty());
    CHECK_THROWS_WITH_AS(system.require_extension(0x7fffffff, "KVM_CAP_FROM_THE_FUTURE"),
                         "KVM lacks KVM_CAP_FROM_THE_FUTURE", Error);

    Vm vm = system.create_vm();
    // No in-kernel irqchip was created: the kernel refuses, and the error says which ioctl.
    try {
        (void)vm.get_irqchip(0);
        FAIL("KVM_GET_IRQCHIP without an irqchip succeeded");
    } catch (const SystemError& e) {
        CHECK(e.operation() == "KVM_GET_IRQCHIP");
        CHECK(e.error_number() != 0);
        CHECK(std::string(e.what()).rfind("KVM_GET_IRQCHIP: ", 0) == 0);
    }
    Vcpu vcpu = vm.create_vcpu(0);
    CHECK(vcpu.index() == 0);
    CHECK_THROWS_AS((void)vm.create_vcpu(0), SystemError);  // the same index twice
    kvm_sregs sregs = vcpu.get_sregs();
    sregs.cr0 = 0x80000000;  // paging without protection: invalid
    sregs.efer = 0x500;
    CHECK_THROWS_AS(vcpu.set_sregs(sregs), SystemError);
}
