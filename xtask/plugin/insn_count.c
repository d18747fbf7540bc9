/*
 * QEMU TCG plugin for `cargo xtask bench mcu`: counts the guest instructions executed
 * between the entries of pairs of marker functions (regions), over the whole run.
 *
 * Usage: -plugin libinsn_count.so,region=NAME:0xSTART:0xEND[,region=...][,profile=NAME]
 * (at most 8 regions, names up to 31 characters; a region's end only counts after its
 * start). Prints, at exit, one line per region and one for the whole run:
 *   "vsc-bench: region=NAME runs=N total=T min=A max=B"
 *   "vsc-bench: all=T"
 * With `profile=NAME` (a region given before it), also a histogram of the instructions
 * executed inside that region, one line per guest address, ascending (the caller maps
 * addresses to functions with the ELF's symbols):
 *   "vsc-bench: pc=0xADDR count=N"
 *
 * Debian's qemu-system-arm 7.2 exports the plugin API (version 1) but ships no
 * qemu-plugin.h, so the few declarations used here are written out below, following
 * the documented API v1 (docs/devel/tcg-plugins.rst of QEMU 7.2).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                                     void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_REGIONS 8

/* Single-core guest (Cortex-M4), so plain counters suffice. */
struct region {
    char name[32];
    uint64_t start_addr, end_addr;
    uint64_t started_at; /* `executed` when the start marker ran */
    int inside;
    uint64_t runs, total, min_count, max_count;
};

static uint64_t executed; /* instructions, added per translation block at its entry */
static struct region regions[MAX_REGIONS];
static int n_regions;

/* Profile mode: one record per translated block, counting its executions while the
 * profiled region is open (checked at block entry, like the region counts, which add a
 * block's instructions at its entry). Kept in a list for the exit report. */
struct tb_record {
    struct tb_record *next;
    uint64_t runs;
    size_t n_insns;
    uint64_t pcs[];
};

static struct region *profiled;
static struct tb_record *tb_records;

static void on_tb_exec(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    struct tb_record *rec = udata;
    if (profiled->inside)
        rec->runs++;
}

static void record_tb(struct qemu_plugin_tb *tb, size_t n)
{
    struct tb_record *rec = malloc(sizeof *rec + n * sizeof rec->pcs[0]);
    if (rec == NULL)
        return;
    rec->runs = 0;
    rec->n_insns = n;
    for (size_t i = 0; i < n; i++)
        rec->pcs[i] = qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i));
    rec->next = tb_records;
    tb_records = rec;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, rec);
}

struct pc_count {
    uint64_t pc, count;
};

static int by_pc(const void *a, const void *b)
{
    uint64_t x = ((const struct pc_count *)a)->pc, y = ((const struct pc_count *)b)->pc;
    return (x > y) - (x < y);
}

/* Per-address sums over all records (a block may have been translated more than once). */
static void print_profile(void)
{
    size_t n = 0;
    for (struct tb_record *rec = tb_records; rec != NULL; rec = rec->next)
        if (rec->runs > 0)
            n += rec->n_insns;
    struct pc_count *counts = malloc((n ? n : 1) * sizeof *counts);
    if (counts == NULL)
        return;
    size_t k = 0;
    for (struct tb_record *rec = tb_records; rec != NULL; rec = rec->next)
        for (size_t i = 0; rec->runs > 0 && i < rec->n_insns; i++)
            counts[k++] = (struct pc_count){rec->pcs[i], rec->runs};
    qsort(counts, n, sizeof *counts, by_pc);
    char line[128];
    for (size_t i = 0; i < n;) {
        uint64_t pc = counts[i].pc, sum = 0;
        for (; i < n && counts[i].pc == pc; i++)
            sum += counts[i].count;
        snprintf(line, sizeof line, "vsc-bench: pc=%#" PRIx64 " count=%" PRIu64 "\n", pc, sum);
        qemu_plugin_outs(line);
    }
    free(counts);
}

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    struct region *r = udata;
    r->started_at = executed;
    r->inside = 1;
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    struct region *r = udata;
    if (!r->inside)
        return;
    r->inside = 0;
    uint64_t n = executed - r->started_at;
    r->runs++;
    r->total += n;
    if (n < r->min_count)
        r->min_count = n;
    if (n > r->max_count)
        r->max_count = n;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        for (int k = 0; k < n_regions; k++) {
            if (pc == regions[k].start_addr)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, &regions[k]);
            else if (pc == regions[k].end_addr)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, &regions[k]);
        }
    }
    if (profiled != NULL)
        record_tb(tb, n);
}

static void on_plugin_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    char line[1024];
    for (int k = 0; k < n_regions; k++) {
        struct region *r = &regions[k];
        snprintf(line, sizeof line,
                 "vsc-bench: region=%s runs=%" PRIu64 " total=%" PRIu64 " min=%" PRIu64 " max=%" PRIu64 "\n",
                 r->name, r->runs, r->total, r->runs ? r->min_count : 0, r->max_count);
        qemu_plugin_outs(line);
    }
    snprintf(line, sizeof line, "vsc-bench: all=%" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
    if (profiled != NULL)
        print_profile();
}

/* "NAME" of a region given earlier → profiled; 0 on success. */
static int parse_profile(const char *name)
{
    for (int k = 0; k < n_regions; k++) {
        if (strcmp(regions[k].name, name) == 0) {
            profiled = &regions[k];
            return 0;
        }
    }
    return -1;
}

/* "NAME:0xSTART:0xEND" → regions[n_regions++]; 0 on success. */
static int parse_region(const char *spec)
{
    if (n_regions == MAX_REGIONS)
        return -1;
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof regions[0].name)
        return -1;
    struct region *r = &regions[n_regions];
    memcpy(r->name, spec, (size_t)(colon - spec));
    r->name[colon - spec] = '\0';
    char *rest;
    r->start_addr = strtoull(colon + 1, &rest, 0);
    if (*rest != ':')
        return -1;
    r->end_addr = strtoull(rest + 1, &rest, 0);
    if (*rest != '\0' || r->start_addr == 0 || r->end_addr == 0)
        return -1;
    r->min_count = UINT64_MAX;
    n_regions++;
    return 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        int bad;
        if (strncmp(argv[i], "region=", 7) == 0)
            bad = parse_region(argv[i] + 7);
        else if (strncmp(argv[i], "profile=", 8) == 0)
            bad = parse_profile(argv[i] + 8);
        else
            bad = -1;
        if (bad) {
            fprintf(stderr,
                    "insn_count: bad argument %s (want region=NAME:0xSTART:0xEND or profile=NAME of a "
                    "region given before)\n",
                    argv[i]);
            return -1;
        }
    }
    if (n_regions == 0) {
        fprintf(stderr, "insn_count: need region=NAME:0xSTART:0xEND\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
