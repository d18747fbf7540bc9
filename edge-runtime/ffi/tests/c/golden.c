/* The C ABI as a native app uses it: open a model blob, push timestamped samples, poll
 * frames. Built and run by `cargo xtask ffi` (and `cargo xtask test`), once linked
 * against the static library and once against the shared one.
 *
 *   golden MODEL.vscq SAMPLES.bin FRAMES.txt FRAMES.wire
 *
 * SAMPLES.bin: records of 32 bytes, little-endian: t_us (u64), acc x y z in g, gyro
 * x y z in rad/s (f32). Every frame is written to FRAMES.txt as one line of its integer
 * fields and to FRAMES.wire as its wire bytes; xtask compares both with the frames
 * edge-runtime computes on the host (the firmware's golden frames). Before and after
 * the stream, the program checks the error paths: corrupt blobs, NULL pointers, bad
 * samples. It exits 0 when every check passed. */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vsc_edge.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "golden.c:%d: check failed: %s: ", __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = malloc(n > 0 ? (size_t)n : 1);
    if (!bytes || n < 0 || fread(bytes, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return bytes;
}

static uint64_t le_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static float le_f32(const uint8_t *p) {
    uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                    (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Bytes of one SAMPLES.bin record. */
#define RECORD_LEN 32

/* Pushes a record's sample with the timestamp `t_us`. */
static VscStatus push_record(VscEdge *edge, uint64_t t_us, const uint8_t *r) {
    return vsc_edge_push(edge, t_us, le_f32(r + 8), le_f32(r + 12), le_f32(r + 16),
                         le_f32(r + 20), le_f32(r + 24), le_f32(r + 28), false);
}

static uint32_t f32_bits(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

/* Opens `bytes` expecting `want`; prints the status and the full message. */
static void expect_open_error(const char *what, const uint8_t *bytes, size_t len,
                              VscStatus want) {
    VscEdge *edge = (VscEdge *)1; /* must be overwritten with NULL */
    char message[VSC_MESSAGE_CAPACITY];
    VscStatus status = vsc_edge_open(bytes, len, &edge, message, sizeof message);
    printf("open %-24s -> status %3d (%s): %s\n", what, (int)status, vsc_status_message(status),
           message);
    CHECK(status == want, "%s: status %d, expected %d", what, (int)status, (int)want);
    CHECK(edge == NULL, "%s: handle not NULL after a failed open", what);
    CHECK(strlen(message) > 0, "%s: empty message", what);
    vsc_edge_close(edge);
}

static void check_open_errors(const uint8_t *blob, size_t len) {
    uint8_t *copy = malloc(len);
    memcpy(copy, blob, len);

    copy[len / 2] ^= 0x5a; /* a flipped byte in the weights */
    expect_open_error("(one byte corrupted)", copy, len, VSC_STATUS_BLOB_CRC);
    copy[len / 2] ^= 0x5a;

    expect_open_error("(last byte cut off)", copy, len - 1, VSC_STATUS_BLOB_TOTAL_LENGTH);
    expect_open_error("(20 bytes)", copy, 20, VSC_STATUS_BLOB_TOO_SHORT);

    copy[0] = 'X';
    expect_open_error("(bad magic)", copy, len, VSC_STATUS_BLOB_BAD_MAGIC);
    copy[0] = blob[0];

    expect_open_error("(NULL blob)", NULL, len, VSC_STATUS_NULL_POINTER);

    VscStatus status = vsc_edge_open(blob, len, NULL, NULL, 0);
    printf("open %-24s -> status %3d (%s)\n", "(NULL out_edge)", (int)status,
           vsc_status_message(status));
    CHECK(status == VSC_STATUS_NULL_POINTER, "NULL out_edge: status %d", (int)status);

    /* A short message buffer gets a truncated, still terminated message. */
    char tiny[12];
    VscEdge *edge = NULL;
    copy[len / 2] ^= 1;
    vsc_edge_open(copy, len, &edge, tiny, sizeof tiny);
    CHECK(strcmp(tiny, "model blob:") == 0, "truncated message \"%s\"", tiny);
    free(copy);

    CHECK(strcmp(vsc_status_message(12345), "unknown status code") == 0, "unknown code");
    CHECK(strcmp(vsc_status_message(VSC_STATUS_OK), "ok") == 0, "ok message");
}

static void check_null_handles(void) {
    VscFrame frame;
    VscModelInfo info;
    CHECK(vsc_edge_push(NULL, 0, 0, 0, 1, 0, 0, 0, false) == VSC_STATUS_NULL_POINTER,
          "push(NULL)");
    CHECK(vsc_edge_push_sensor_error(NULL, 0) == VSC_STATUS_NULL_POINTER,
          "push_sensor_error(NULL)");
    CHECK(vsc_edge_poll(NULL, &frame) == -VSC_STATUS_NULL_POINTER, "poll(NULL, frame)");
    CHECK(vsc_edge_model_info(NULL, &info) == VSC_STATUS_NULL_POINTER, "model_info(NULL)");
    CHECK(vsc_edge_dropped_frames(NULL) == 0, "dropped_frames(NULL)");
    vsc_edge_close(NULL);
}

/* The frame's integer fields, one line; xtask writes the same line from the host's frame. */
static void write_golden_line(FILE *out, const VscFrame *f) {
    fprintf(out, "seq=%" PRIu32 " t_ms=%" PRIu32 " flags=0x%02x J=%u n=%u act=%u score=%d",
            f->sequence, f->timestamp_ms, f->flags, f->latent_dim, f->n_active, f->activity,
            f->activity_score);
    fprintf(out, " bits=0x%016" PRIx64 " mu_scale=0x%08" PRIx32 " dims=", f->spike_bits,
            f32_bits(f->mu_scale));
    for (int k = 0; k < f->n_active; k++) fprintf(out, "%s%u", k ? "," : "", f->active_dims[k]);
    fprintf(out, " gamma_q15=");
    for (int k = 0; k < f->n_active; k++) fprintf(out, "%s%d", k ? "," : "", f->gamma_q15[k]);
    fprintf(out, " mu_q=");
    for (int k = 0; k < f->n_active; k++) fprintf(out, "%s%d", k ? "," : "", f->mu_q[k]);
    fprintf(out, "\n");
}

/* What an app would show; also checks the struct against itself. */
static void print_frame(const VscFrame *f) {
    printf("frame %3" PRIu32 " t=%6" PRIu32 " ms flags=0x%02x activity=%u (score %+d) %2u active:",
           f->sequence, f->timestamp_ms, f->flags, f->activity, f->activity_score, f->n_active);
    int n = 0;
    for (int j = 0; j < VSC_MAX_LATENT; j++) {
        if (f->spike_bits >> j & 1) {
            CHECK(n < f->n_active && f->active_dims[n] == j, "seq %u: dim %d", f->sequence, j);
            n++;
        }
    }
    CHECK(n == f->n_active, "seq %u: %d bits set, n_active %u", f->sequence, n, f->n_active);
    for (int k = 0; k < f->n_active; k++) {
        printf(" %u(%.2f,%+.2f)", f->active_dims[k], f->gamma[k], f->mu[k]);
        CHECK(f->gamma[k] == (float)f->gamma_q15[k] / 32768.0f, "seq %u: gamma[%d]",
              f->sequence, k);
        CHECK(f->mu[k] == (float)f->mu_q[k] * f->mu_scale, "seq %u: mu[%d]", f->sequence, k);
    }
    printf("\n");
    CHECK(f->wire_len >= 2 && f->wire_len <= VSC_MAX_WIRE_LEN, "seq %u: wire_len %u",
          f->sequence, f->wire_len);
    CHECK(f->wire[0] == 0 && f->wire[f->wire_len - 1] == 0, "seq %u: wire delimiters",
          f->sequence);
    for (int i = 1; i + 1 < f->wire_len; i++)
        CHECK(f->wire[i] != 0, "seq %u: zero byte inside the wire frame", f->sequence);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.vscq SAMPLES.bin FRAMES.txt FRAMES.wire\n", argv[0]);
        return 2;
    }
    printf("vsc_edge C ABI %" PRIu32 " (header %d), sizeof(VscFrame) = %zu\n",
           vsc_edge_abi_version(), VSC_ABI_VERSION, sizeof(VscFrame));
    CHECK(vsc_edge_abi_version() == VSC_ABI_VERSION, "library and header ABI differ");

    size_t blob_len, samples_len;
    uint8_t *blob = read_file(argv[1], &blob_len);
    uint8_t *samples = read_file(argv[2], &samples_len);
    if (samples_len % RECORD_LEN != 0) {
        fprintf(stderr, "%s: %zu bytes, not a multiple of %d\n", argv[2], samples_len,
                RECORD_LEN);
        return 2;
    }
    FILE *golden = fopen(argv[3], "w");
    FILE *wire = fopen(argv[4], "wb");
    if (!golden || !wire) {
        perror("output");
        return 2;
    }

    check_open_errors(blob, blob_len);
    check_null_handles();

    VscEdge *edge = NULL;
    char message[VSC_MESSAGE_CAPACITY];
    VscStatus status = vsc_edge_open(blob, blob_len, &edge, message, sizeof message);
    if (status != VSC_STATUS_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], message);
        return 1;
    }
    free(blob); /* the library keeps its own copy */
    VscModelInfo info;
    CHECK(vsc_edge_model_info(edge, &info) == VSC_STATUS_OK, "model_info");
    printf("model %s: %" PRIu32 " bytes, crc32 0x%08" PRIx32 ", channels 0x%03x, "
           "input %u, hidden %u, latent %u, activity classes %u\n",
           argv[1], info.blob_len, info.blob_crc32, info.channel_bits, info.input_dim,
           info.hidden_dim, info.latent_dim, info.activity_classes);
    CHECK(vsc_edge_poll(edge, NULL) == -VSC_STATUS_NULL_POINTER, "poll(edge, NULL)");
    CHECK(vsc_edge_model_info(edge, NULL) == VSC_STATUS_NULL_POINTER, "model_info(edge, NULL)");

    /* The stream: push each sample, poll after each, as an app's sensor callback would. */
    size_t n_samples = samples_len / RECORD_LEN;
    int frames = 0;
    uint64_t last_t_us = 0;
    VscFrame frame;
    for (size_t i = 0; i < n_samples; i++) {
        const uint8_t *r = samples + RECORD_LEN * i;
        last_t_us = le_u64(r);
        status = push_record(edge, last_t_us, r);
        CHECK(status == VSC_STATUS_OK, "sample %zu: status %d", i, (int)status);
        while (vsc_edge_poll(edge, &frame) == 1) {
            print_frame(&frame);
            write_golden_line(golden, &frame);
            fwrite(frame.wire, 1, frame.wire_len, wire);
            frames++;
        }
    }
    printf("pushed %zu samples, polled %d frames, %" PRIu64 " dropped\n", n_samples, frames,
           vsc_edge_dropped_frames(edge));
    CHECK(vsc_edge_dropped_frames(edge) == 0, "dropped frames");

    /* Bad samples after the golden stream: reported now, flagged in the next frame. */
    status = vsc_edge_push(edge, last_t_us + 20000, NAN, 0, 1, 0, 0, 0, false);
    printf("push NaN            -> status %3d (%s)\n", (int)status, vsc_status_message(status));
    CHECK(status == VSC_STATUS_SAMPLE_NON_FINITE, "NaN sample: status %d", (int)status);
    status = vsc_edge_push(edge, last_t_us - 20000, 0, 0, 1, 0, 0, 0, false);
    printf("push t going back   -> status %3d (%s)\n", (int)status, vsc_status_message(status));
    CHECK(status == VSC_STATUS_SAMPLE_NON_MONOTONIC, "old timestamp: status %d", (int)status);
    int after = 0;
    for (size_t i = n_samples - 64; i < n_samples; i++) {
        last_t_us += 20000;
        push_record(edge, last_t_us, samples + RECORD_LEN * i);
        while (vsc_edge_poll(edge, &frame) == 1) {
            print_frame(&frame);
            after++;
        }
    }
    CHECK(after == 1, "%d frames after the bad samples", after);
    CHECK(frame.flags == (VSC_FLAG_NON_FINITE | VSC_FLAG_TIMESTAMP), "flags 0x%02x",
          frame.flags);

    vsc_edge_close(edge);
    free(samples);
    fclose(golden);
    fclose(wire);
    if (failures) {
        fprintf(stderr, "golden.c: %d checks failed\n", failures);
        return 1;
    }
    printf("golden.c: all checks passed\n");
    return 0;
}
