/* A bare PVH guest for the nested tier's replication check: no kernel, no interrupts, no event
 * channel it binds, no timer it asks Xen for. Everything it is lives in its memory and its vCPU
 * registers, so a checkpoint of memory + HVM context is all of it, and a domain built fresh from
 * the same configuration and given that checkpoint runs on as the same guest.
 *
 * (A Linux PVH guest is not like that: its event channels, the VIRQ_TIMER binding, the vcpu_info
 * registration and the shared_info mapping are state in Xen, not in the guest's memory or HVM
 * context, and are rebuilt only by the guest's own resume path after a cooperative suspend. In a
 * fresh domain it waits forever for a timer interrupt. See tests/xen/README.md.)
 *
 * What it does, like the KVM built-in guest and domu_dirtier: every 100 ms it stamps 64 pages of
 * a 16 MiB working set, checking before each stamp that the page still holds the stamp the guest
 * remembers writing (a table in its own memory); a mismatch prints "CORRUPT page=I". Every 250 ms
 * it prints "seq=N" to the PV console ring and notifies xenconsoled. Time is the TSC (tsc_mode
 * "native"), at the frequency Xen reports in CPUID; in between it yields the CPU (SCHEDOP_yield).
 *
 * Boot: Xen's PVH entry (ELF note PHYS32_ENTRY) in 32-bit protected mode, paging off, flat
 * segments, interrupts off. The hypercall page is requested through Xen's CPUID-advertised MSR.
 */
#include <stdint.h>

#define HYPERVISOR_sched_op 29
#define SCHEDOP_yield 0
#define HYPERVISOR_event_channel_op 32
#define HYPERVISOR_hvm_op 34
#define EVTCHNOP_send 4
#define HVMOP_get_param 1
#define HVM_PARAM_CONSOLE_PFN 17
#define HVM_PARAM_CONSOLE_EVTCHN 18
#define DOMID_SELF 0x7ff0

#define WORK_BASE 0x400000u /* 4 MiB: above this image and its stack */
#define WORK_PAGES 4096u    /* 16 MiB */
#define PAGES_PER_PASS 64u /* 640 pages/s: a rate TCG's dom0 can keep in step with */
#define PASS_MS 100u
#define PRINT_MS 250u

/* The entry point and the note that names it; the stack is ours to set up. */
__asm__(".pushsection .note.Xen, \"a\", @note\n"
        ".balign 4\n"
        ".long 4, 4, 18\n" /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
        ".asciz \"Xen\"\n"
        ".balign 4\n"
        ".long pvh_start\n"
        ".popsection\n"
        ".pushsection .text.entry, \"ax\"\n"
        ".code32\n"
        ".globl pvh_start\n"
        "pvh_start:\n"
        "    cli\n"
        "    movl $stack_top, %esp\n"
        "    call guest_main\n"
        "1:  hlt\n"
        "    jmp 1b\n"
        ".popsection\n");

static uint8_t stack[16384] __attribute__((aligned(16), used));
__asm__(".globl stack_top\n.set stack_top, stack + 16384\n");

static uint8_t hypercall_page[4096] __attribute__((aligned(4096)));
static uint32_t last_pass[WORK_PAGES]; /* the pass (mod 2^20) that last stamped each page */

struct xen_hvm_param {
    uint16_t domid;
    uint16_t pad;
    uint32_t index;
    uint64_t value;
};

struct console_ring {
    char in[1024];
    char out[2048];
    volatile uint32_t in_cons, in_prod;
    volatile uint32_t out_cons, out_prod;
};

static long hypercall2(unsigned nr, uint32_t a1, uint32_t a2)
{
    long result;
    uint32_t clobber1, clobber2;
    __asm__ volatile("call *%[entry]"
                     : "=a"(result), "=b"(clobber1), "=c"(clobber2)
                     : [entry] "r"(hypercall_page + nr * 32), "b"(a1), "c"(a2)
                     : "memory", "edx", "esi", "edi");
    return result;
}

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static uint64_t hvm_param(uint32_t index)
{
    struct xen_hvm_param p = {DOMID_SELF, 0, index, 0};
    if (hypercall2(HYPERVISOR_hvm_op, HVMOP_get_param, (uint32_t)&p) != 0)
        return 0;
    return p.value;
}

static struct console_ring *ring;

static void console_write(const char *text, unsigned length)
{
    if (ring == 0)
        return;
    uint32_t prod = ring->out_prod;
    for (unsigned i = 0; i < length; ++i) {
        /* A full ring waits for xenconsoled, but not for ever: the checkpointing toolstack reads
         * the ring without consuming it, and a line dropped here is a gap it would report. */
        for (uint32_t spin = 0; prod - ring->out_cons >= sizeof ring->out && spin < 100000000u; ++spin)
            __asm__ volatile("pause");
        ring->out[prod % sizeof ring->out] = text[i];
        ++prod;
    }
    __asm__ volatile("" ::: "memory"); /* the bytes before the index */
    ring->out_prod = prod;
    /* The port is asked for each time: after a takeover this is another domain with its own. */
    uint32_t port = (uint32_t)hvm_param(HVM_PARAM_CONSOLE_EVTCHN);
    if (port != 0)
        hypercall2(HYPERVISOR_event_channel_op, EVTCHNOP_send, (uint32_t)&port);
}

static unsigned append_text(char *out, unsigned at, const char *text)
{
    while (*text)
        out[at++] = *text++;
    return at;
}

static unsigned append_number(char *out, unsigned at, uint32_t value, unsigned base)
{
    char digits[12];
    unsigned n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value != 0);
    while (n > 0)
        out[at++] = digits[--n];
    return at;
}

void guest_main(void);
void guest_main(void)
{
    uint32_t a, b, c, d;
    cpuid(0x40000000, &a, &b, &c, &d);
    if (b != 0x566e6558 /* "XenV" */)
        return;
    cpuid(0x40000002, &a, &b, &c, &d);
    const uint32_t msr = b;
    const uint32_t page = (uint32_t)hypercall_page;
    __asm__ volatile("wrmsr" ::"c"(msr), "a"(page), "d"(0));
    ring = (struct console_ring *)(uint32_t)(hvm_param(HVM_PARAM_CONSOLE_PFN) << 12);

    cpuid(0x40000003, &a, &b, &c, &d); /* ECX: the guest's TSC frequency in kHz */
    const uint32_t khz = c != 0 ? c : 1000000;
    const uint64_t pass_ticks = (uint64_t)khz * PASS_MS;
    const uint64_t print_ticks = (uint64_t)khz * PRINT_MS;

    char line[96];
    unsigned n = append_text(line, 0, "pvh_seq_guest: up, tsc ");
    n = append_number(line, n, khz, 10);
    n = append_text(line, n, " kHz\n");
    console_write(line, n);

    /* Every page starts stamped "pass 0", whatever the domain builder left in it. */
    for (uint32_t i = 0; i < WORK_PAGES; ++i) {
        *(volatile uint32_t *)(WORK_BASE + i * 4096) = i << 20;
        *(volatile uint32_t *)(WORK_BASE + i * 4096 + 2048) = i << 20;
    }

    uint32_t next = 0, pass = 0, seq = 0, corrupt = 0;
    uint64_t next_pass = rdtsc(), next_print = next_pass + print_ticks;
    for (;;) {
        ++pass;
        for (uint32_t i = 0; i < PAGES_PER_PASS; ++i) {
            volatile uint32_t *first = (volatile uint32_t *)(WORK_BASE + next * 4096);
            volatile uint32_t *second = (volatile uint32_t *)(WORK_BASE + next * 4096 + 2048);
            const uint32_t want = next << 20 | last_pass[next];
            if (*first != want || *second != want) {
                if (++corrupt <= 20) {
                    n = append_text(line, 0, "CORRUPT page=");
                    n = append_number(line, n, next, 10);
                    n = append_text(line, n, " want=");
                    n = append_number(line, n, want, 16);
                    n = append_text(line, n, " got=");
                    n = append_number(line, n, *first, 16);
                    n = append_text(line, n, ",");
                    n = append_number(line, n, *second, 16);
                    line[n++] = '\n';
                    console_write(line, n);
                }
            }
            const uint32_t stamp = next << 20 | (pass & 0xfffff);
            *first = stamp;
            *second = stamp;
            last_pass[next] = pass & 0xfffff;
            next = (next + 1) % WORK_PAGES;
        }
        next_pass += pass_ticks;
        while (rdtsc() < next_pass) {
            if (rdtsc() >= next_print) {
                next_print += print_ticks;
                n = append_text(line, 0, "seq=");
                n = append_number(line, n, ++seq, 10);
                line[n++] = '\n';
                console_write(line, n);
            }
            /* Waiting is yielding: with one CPU under TCG, a guest that spun would starve dom0
             * (and the replication running there). */
            hypercall2(HYPERVISOR_sched_op, SCHEDOP_yield, 0);
        }
    }
}
