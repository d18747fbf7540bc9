/* JNI bindings of the vsc_edge C ABI for the Kotlin object org.vsc.edge.VscEdge
 * (VscEdge.kt beside this file). An Android app builds this file with the NDK's CMake
 * (CMakeLists.txt beside it) and links the Rust static library libvsc_edge.a into one
 * shared library, libvsc_jni.so. `cargo xtask ffi` builds it for the host against the
 * JDK's jni.h and runs it under the host JVM, so this exact file is compiled and tested.
 *
 * Errors become Java exceptions: IllegalArgumentException for an invalid blob (with the
 * library's full message), NullPointerException for a null array, IllegalStateException
 * for a closed or poisoned handle. A handle is a jlong holding the VscEdge pointer; 0 is
 * "none". */

#include <jni.h>
#include <stdint.h>

#include "vsc_edge.h"

/* Entries of the `info` array that poll fills. */
enum {
    INFO_SEQUENCE,
    INFO_TIMESTAMP_MS,
    INFO_FLAGS,
    INFO_ACTIVITY,
    INFO_ACTIVITY_SCORE,
    INFO_N_ACTIVE,
    INFO_LATENT_DIM,
    INFO_LEN
};

static void throw_new(JNIEnv *env, const char *class_name, const char *message) {
    jclass cls = (*env)->FindClass(env, class_name);
    if (cls != NULL) (*env)->ThrowNew(env, cls, message);
}

static VscEdge *edge_of(jlong handle) { return (VscEdge *)(intptr_t)handle; }

JNIEXPORT jlong JNICALL Java_org_vsc_edge_VscEdge_open(JNIEnv *env, jclass cls,
                                                       jbyteArray blob) {
    (void)cls;
    if (blob == NULL) {
        throw_new(env, "java/lang/NullPointerException", "blob is null");
        return 0;
    }
    jsize len = (*env)->GetArrayLength(env, blob);
    jbyte *bytes = (*env)->GetByteArrayElements(env, blob, NULL);
    if (bytes == NULL) return 0; /* OutOfMemoryError is pending */
    VscEdge *edge = NULL;
    char message[VSC_MESSAGE_CAPACITY];
    VscStatus status =
        vsc_edge_open((const uint8_t *)bytes, (size_t)len, &edge, message, sizeof message);
    /* The library keeps its own copy: nothing to write back. */
    (*env)->ReleaseByteArrayElements(env, blob, bytes, JNI_ABORT);
    if (status != VSC_STATUS_OK) {
        throw_new(env, "java/lang/IllegalArgumentException", message);
        return 0;
    }
    return (jlong)(intptr_t)edge;
}

JNIEXPORT jint JNICALL Java_org_vsc_edge_VscEdge_push(JNIEnv *env, jclass cls, jlong handle,
                                                      jlong t_us, jfloat ax_g, jfloat ay_g,
                                                      jfloat az_g, jfloat gx_rad_s,
                                                      jfloat gy_rad_s, jfloat gz_rad_s,
                                                      jboolean saturated) {
    (void)cls;
    VscStatus status = vsc_edge_push(edge_of(handle), (uint64_t)t_us, ax_g, ay_g, az_g,
                                     gx_rad_s, gy_rad_s, gz_rad_s, saturated == JNI_TRUE);
    /* Dropped samples are reported by their status (and flagged in the next frame); only
     * a handle that cannot be used throws. */
    if (status == VSC_STATUS_NULL_POINTER || status == VSC_STATUS_POISONED ||
        status == VSC_STATUS_INTERNAL)
        throw_new(env, "java/lang/IllegalStateException", vsc_status_message(status));
    return status;
}

JNIEXPORT jboolean JNICALL Java_org_vsc_edge_VscEdge_poll(JNIEnv *env, jclass cls,
                                                          jlong handle, jlongArray info,
                                                          jintArray dims, jfloatArray gamma,
                                                          jfloatArray mu) {
    (void)cls;
    if (info == NULL || dims == NULL || gamma == NULL || mu == NULL) {
        throw_new(env, "java/lang/NullPointerException", "poll: an output array is null");
        return JNI_FALSE;
    }
    if ((*env)->GetArrayLength(env, info) < INFO_LEN ||
        (*env)->GetArrayLength(env, dims) < VSC_MAX_LATENT ||
        (*env)->GetArrayLength(env, gamma) < VSC_MAX_LATENT ||
        (*env)->GetArrayLength(env, mu) < VSC_MAX_LATENT) {
        throw_new(env, "java/lang/IllegalArgumentException",
                  "poll: info needs 7 entries, dims, gamma and mu 64 each");
        return JNI_FALSE;
    }
    VscFrame frame;
    int32_t got = vsc_edge_poll(edge_of(handle), &frame);
    if (got < 0) {
        throw_new(env, "java/lang/IllegalStateException", vsc_status_message(-got));
        return JNI_FALSE;
    }
    if (got == 0) return JNI_FALSE;
    jlong head[INFO_LEN];
    head[INFO_SEQUENCE] = frame.sequence;
    head[INFO_TIMESTAMP_MS] = frame.timestamp_ms;
    head[INFO_FLAGS] = frame.flags;
    head[INFO_ACTIVITY] = frame.activity;
    head[INFO_ACTIVITY_SCORE] = frame.activity_score;
    head[INFO_N_ACTIVE] = frame.n_active;
    head[INFO_LATENT_DIM] = frame.latent_dim;
    jint active_dims[VSC_MAX_LATENT];
    for (int k = 0; k < frame.n_active; k++) active_dims[k] = frame.active_dims[k];
    (*env)->SetLongArrayRegion(env, info, 0, INFO_LEN, head);
    (*env)->SetIntArrayRegion(env, dims, 0, frame.n_active, active_dims);
    (*env)->SetFloatArrayRegion(env, gamma, 0, frame.n_active, frame.gamma);
    (*env)->SetFloatArrayRegion(env, mu, 0, frame.n_active, frame.mu);
    return JNI_TRUE;
}

JNIEXPORT jlong JNICALL Java_org_vsc_edge_VscEdge_droppedFrames(JNIEnv *env, jclass cls,
                                                                jlong handle) {
    (void)env;
    (void)cls;
    return (jlong)vsc_edge_dropped_frames(edge_of(handle));
}

JNIEXPORT jstring JNICALL Java_org_vsc_edge_VscEdge_statusMessage(JNIEnv *env, jclass cls,
                                                                  jint status) {
    (void)cls;
    /* Modified UTF-8 equals UTF-8 for text without NUL or characters beyond U+FFFF, which
     * holds for every message of the library. */
    return (*env)->NewStringUTF(env, vsc_status_message(status));
}

JNIEXPORT void JNICALL Java_org_vsc_edge_VscEdge_close(JNIEnv *env, jclass cls,
                                                       jlong handle) {
    (void)env;
    (void)cls;
    vsc_edge_close(edge_of(handle));
}
