package org.vsc.edge;

/**
 * Java twin of android/VscEdge.kt: the same native methods of the same class, so the host
 * JVM test binds the same JNI symbols of vsc_jni.c as the Kotlin object does on a phone.
 */
public final class VscEdge {
    static {
        System.loadLibrary("vsc_jni");
    }

    private VscEdge() {}

    public static native long open(byte[] blob);

    public static native int push(long edge, long tUs, float axG, float ayG, float azG,
            float gxRadS, float gyRadS, float gzRadS, boolean saturated);

    public static native boolean poll(long edge, long[] info, int[] dims, float[] gamma,
            float[] mu);

    public static native long droppedFrames(long edge);

    public static native String statusMessage(int status);

    public static native void close(long edge);
}
