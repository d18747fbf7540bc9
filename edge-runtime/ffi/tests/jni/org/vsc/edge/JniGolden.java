package org.vsc.edge;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * The JNI bindings under the host JVM: run by `cargo xtask ffi` as
 * {@code java -Djava.library.path=DIR org.vsc.edge.JniGolden MODEL.vscq SAMPLES.bin}.
 * Prints one "frame ..." line per frame (xtask compares them with the golden frames) and
 * checks the error paths; exits 1 when a check fails.
 */
public final class JniGolden {
    private static int failures = 0;

    private static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("JniGolden: check failed: " + what);
            failures++;
        }
    }

    public static void main(String[] args) throws Exception {
        byte[] blob = Files.readAllBytes(Paths.get(args[0]));
        ByteBuffer samples = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[1])))
                .order(ByteOrder.LITTLE_ENDIAN);
        final int recordLen = 32;

        check(VscEdge.statusMessage(0).equals("ok"), "statusMessage(0)");
        byte[] corrupt = blob.clone();
        corrupt[corrupt.length / 2] ^= 0x5a;
        try {
            VscEdge.open(corrupt);
            check(false, "a corrupt blob opened");
        } catch (IllegalArgumentException e) {
            System.out.println("jni open (one byte corrupted) -> " + e.getMessage());
            check(e.getMessage().startsWith("model blob: CRC-32 mismatch"), e.getMessage());
        }
        try {
            VscEdge.open(null);
            check(false, "a null blob opened");
        } catch (NullPointerException e) {
            System.out.println("jni open (null) -> NullPointerException: " + e.getMessage());
        }
        try {
            VscEdge.poll(0, new long[7], new int[64], new float[64], new float[64]);
            check(false, "poll on handle 0 returned");
        } catch (IllegalStateException e) {
            System.out.println("jni poll (handle 0) -> IllegalStateException: " + e.getMessage());
        }

        long edge = VscEdge.open(blob);
        try {
            VscEdge.poll(edge, new long[7], new int[8], new float[64], new float[64]);
            check(false, "poll accepted an 8-entry dims array");
        } catch (IllegalArgumentException e) {
            System.out.println("jni poll (short array) -> IllegalArgumentException");
        }
        long[] info = new long[7];
        int[] dims = new int[64];
        float[] gamma = new float[64];
        float[] mu = new float[64];
        int frames = 0;
        long lastTUs = 0;
        for (int at = 0; at + recordLen <= samples.limit(); at += recordLen) {
            lastTUs = samples.getLong(at);
            int status = VscEdge.push(edge, lastTUs, samples.getFloat(at + 8),
                    samples.getFloat(at + 12), samples.getFloat(at + 16), samples.getFloat(at + 20),
                    samples.getFloat(at + 24), samples.getFloat(at + 28), false);
            check(status == 0, "push at " + lastTUs + " returned " + status);
            while (VscEdge.poll(edge, info, dims, gamma, mu)) {
                StringBuilder line = new StringBuilder(String.format(
                        "frame seq=%d t_ms=%d flags=0x%02x act=%d score=%d dims=", info[0],
                        info[1], info[2], info[3], info[4]));
                StringBuilder g = new StringBuilder();
                StringBuilder m = new StringBuilder();
                for (int k = 0; k < info[5]; k++) {
                    String sep = k > 0 ? "," : "";
                    line.append(sep).append(dims[k]);
                    // γ is a Q15 value divided by 32768: exact in float, so this is its Q15.
                    g.append(sep).append(Math.round(gamma[k] * 32768.0f));
                    m.append(sep).append(String.format("%08x", Float.floatToRawIntBits(mu[k])));
                }
                System.out.println(line + " gamma_q15=" + g + " mu_bits=" + m);
                frames++;
            }
        }
        int nan = VscEdge.push(edge, lastTUs + 20000, Float.NaN, 0f, 1f, 0f, 0f, 0f, false);
        System.out.println("jni push NaN -> " + nan + " (" + VscEdge.statusMessage(nan) + ")");
        check(nan == 200, "NaN sample status " + nan);
        check(VscEdge.droppedFrames(edge) == 0, "dropped frames");
        VscEdge.close(edge);
        System.out.println("jni: " + frames + " frames");
        if (failures > 0) {
            System.exit(1);
        }
    }
}
