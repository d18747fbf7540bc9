// The Kotlin side of vsc_jni.c: copy into the app (package org.vsc.edge). Not compiled
// here (no Kotlin compiler); `cargo xtask ffi` runs the same native methods from a Java
// twin (edge-runtime/ffi/tests/jni/org/vsc/edge/VscEdge.java).
package org.vsc.edge

object VscEdge {
    init {
        System.loadLibrary("vsc_jni")
    }

    /** Validates and copies a `.vscq` blob; throws IllegalArgumentException with the reason. */
    @JvmStatic external fun open(blob: ByteArray): Long

    /**
     * One sample at [tUs] µs of a monotonic clock (SensorEvent.timestamp / 1000), acceleration
     * including gravity in g and angular rate in rad/s on the training axes (README, "Phone
     * axes"). Returns 0, or 200/201 when the sample was dropped (NaN, time not increasing).
     */
    @JvmStatic external fun push(
        edge: Long, tUs: Long,
        axG: Float, ayG: Float, azG: Float,
        gxRadS: Float, gyRadS: Float, gzRadS: Float,
        saturated: Boolean,
    ): Int

    /**
     * Copies the oldest queued frame: [info] = sequence, timestamp_ms, flags, activity,
     * activity_score, n_active, latent_dim; [dims], [gamma], [mu] (64 entries each) get the
     * n_active active dimensions. False when no frame is ready.
     */
    @JvmStatic external fun poll(
        edge: Long, info: LongArray, dims: IntArray, gamma: FloatArray, mu: FloatArray,
    ): Boolean

    @JvmStatic external fun droppedFrames(edge: Long): Long

    @JvmStatic external fun statusMessage(status: Int): String

    @JvmStatic external fun close(edge: Long)
}
