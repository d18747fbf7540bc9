"""Issue 15's side-by-side reference: one VSC training step as the paper authors' TensorFlow
graph computes it (tf.compat.v1, pseudo-input prior with their selector, learned decoder
variance, Adam), at the four shapes of `cargo xtask bench train`, on uniform random data.
Written here from the authors' published graph (same operations, not their code); it
leaves out their tiling of the KL inputs, which only makes their step slower. Prints
samples/s and ms/step per shape.

    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.*
    SECS=8 /tmp/tf/bin/python xtask/reference/vsc_tf.py [edge acc smiley paper]

Run it alternately with `cargo xtask bench train --rows N --repeats 1 --seconds 8`: the
host's speed drifts, so compare within a round, not across days.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()

# name: (M input, H hidden, J latent, batch); U = 20 pseudo-inputs, as in bench.rs.
SHAPES = {
    "edge": (297, 128, 64, 128),
    "acc": (768, 128, 64, 128),
    "smiley": (1024, 256, 60, 128),
    "paper": (1152, 3000, 60, 500),
}
PSEUDO_INPUTS = 20
ALPHA, SPIKE_C, PRIOR_NU, TINY = 0.2, 100.0, 100.0, 1e-6


def build(m, h, j):
    x = tf1.placeholder(tf.float32, [None, m])
    init = tf1.glorot_uniform_initializer()

    def dense(inp, d_in, d_out, name, act=None):
        w = tf1.get_variable(name + "_w", [d_in, d_out], initializer=init)
        b = tf1.get_variable(name + "_b", [d_out], initializer=tf1.zeros_initializer())
        y = tf.matmul(inp, w) + b
        return act(y) if act else y

    def encode(inp):
        with tf1.variable_scope("encoder", reuse=tf1.AUTO_REUSE):
            hid = dense(inp, m, h, "hidden", tf.nn.relu)
            mu = dense(hid, h, j, "mu")
            logvar = dense(hid, h, j, "logvar")
            log_gamma = -tf.nn.relu(-dense(hid, h, j, "spike"))
        return mu, logvar, log_gamma

    pseudo = tf1.get_variable("pseudo_inputs", [PSEUDO_INPUTS, m], initializer=init)
    mu, logvar, log_gamma = encode(x)
    mu_p, logvar_p, log_gamma_p = encode(pseudo)
    log_gamma_p = tf1.log(tf.sigmoid(PRIOR_NU * (tf.exp(log_gamma_p) - 0.5)))
    sel = tf.sigmoid(dense(x, m, PSEUDO_INPUTS, "selector"))
    sel = sel / tf.norm(sel, axis=1, keepdims=True)  # [B, U]

    gamma = tf.exp(log_gamma)
    eps = tf1.random_normal(tf.shape(mu))
    eta = tf1.random_uniform(tf.shape(mu))
    spike = tf.sigmoid(SPIKE_C * (eta - (1.0 - gamma)))
    z = (mu + tf.sqrt(tf.exp(logvar)) * eps) * spike

    with tf1.variable_scope("decoder"):
        hid = dense(z, j, h, "hidden", tf.nn.relu)
        mean = tf.sigmoid(dense(hid, h, m, "mean"))
        dec_logvar = dense(hid, h, m, "logvar")
    var = TINY + tf.exp(dec_logvar)
    nll = tf.reduce_sum(0.5 * tf1.log(var) + 0.5 * np.log(2 * np.pi) + 0.5 * tf.square(mean - x) / var, 1)

    # Selector-weighted spike-and-slab KL to every pseudo-input's posterior, [B, J, U].
    g, gp = gamma[:, :, None], tf.exp(log_gamma_p)[None]
    lv, lvp = tf1.log(tf.exp(logvar) + TINY)[:, :, None], tf1.log(tf.exp(logvar_p) + TINY)[None]
    lvp = tf.transpose(lvp, [0, 2, 1])
    mp = tf.transpose(mu_p[None], [0, 2, 1])
    w = sel[:, None, :]
    slab = 0.5 * (lvp - lv) + (tf.exp(lv) + tf.square(mu[:, :, None] - mp)) / (2 * tf.exp(lvp)) - 0.5
    gpt = tf.transpose(gp, [0, 2, 1])
    spike_kl = (tf1.log(1 - gpt + TINY) - tf1.log(1 - g + TINY)) * (1 - g) + (tf.transpose(tf1.log(gp), [0, 2, 1]) - log_gamma[:, :, None]) * g
    kl = tf.reduce_sum(
        tf.reduce_mean(g * slab * w, 2) / tf.reduce_mean(w, 2) - tf.reduce_mean(spike_kl * w, 2) / tf.reduce_mean(w, 2),
        1,
    )
    # The prior's mean spike probability against α.
    mean_gp = tf.reduce_mean(tf.reduce_mean(gpt * w, 2) / tf.reduce_mean(w, 2), 1)
    kl_prior = -j * ((np.log(1 - ALPHA) - tf1.log(1 - mean_gp + TINY)) * (1 - mean_gp) + (np.log(ALPHA) - tf1.log(mean_gp)) * mean_gp)
    loss = tf.reduce_mean(nll + kl) + tf.reduce_mean(kl_prior)
    return x, tf1.train.AdamOptimizer(1e-3).minimize(loss)


def run(name, secs):
    m, h, j, batch = SHAPES[name]
    with tf1.Graph().as_default():
        x, step = build(m, h, j)
        cfg = tf1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=2)
        with tf1.Session(config=cfg) as sess:
            sess.run(tf1.global_variables_initializer())
            data = np.random.default_rng(0).random((4 * batch, m), dtype=np.float32)
            feeds = [data[i * batch:(i + 1) * batch] for i in range(4)]
            for i in range(3):
                sess.run(step, {x: feeds[i % 4]})
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < secs:
                sess.run(step, {x: feeds[n % 4]})
                n += 1
            dt = time.perf_counter() - t0
    print(f"reference {name:7} {n * batch / dt:10.0f} samples/s {1e3 * dt / n:9.2f} ms/step ({n} steps)", flush=True)


if __name__ == "__main__":
    for shape in sys.argv[1:] or list(SHAPES):
        if shape not in SHAPES:
            sys.exit(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
        run(shape, float(os.environ.get("SECS", "8")))
