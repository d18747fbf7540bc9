#!/usr/bin/env python3
"""Runs the VSC encoder's ONNX files in onnxruntime and compares them with edge-runtime.

Called by `cargo xtask test` (xtask/src/onnx/onnxruntime.rs), which writes into --dir:
  x.npy              model inputs, one row per HAR test window (f32)
  int8.NAME.npy      edge-runtime's value of every output NAME of the int8 graph
  f32.NAME.npy       edge_runtime::F32Encoder's value of every output NAME of the f32 graph

The int8 graph must match bit for bit (float outputs compared as bits), window by window;
the f32 graph within --tolerance. Each file is run with onnxruntime's graph optimisations
on (what apps get by default) and off, on the whole batch and on the first
--single-window-runs windows one at a time. Exit status 1 on any difference.
"""

import argparse
import os
import sys

import numpy as np
import onnxruntime as ort

LEVELS = [
    ("optimised", ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
    ("unoptimised", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
]


def session(path, level):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 3  # errors only: shape-merge warnings are noise here
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types per failure
        sys.exit(f"onnxruntime {ort.__version__} cannot load {path}: {e}")


def expected(directory, prefix, sess, path):
    """The reference arrays for every output of `sess`, in graph order."""
    names = [o.name for o in sess.get_outputs()]
    files = sorted(
        f[len(prefix) + 1 : -len(".npy")]
        for f in os.listdir(directory)
        if f.startswith(prefix + ".") and f.endswith(".npy")
    )
    if sorted(names) != files:
        sys.exit(f"{path}: outputs {names} but references for {files}")
    return names, [np.load(os.path.join(directory, f"{prefix}.{n}.npy")) for n in names]


def run(sess, x, single):
    """Outputs on the whole batch, and on the first `single` rows one at a time."""
    batch = sess.run(None, {sess.get_inputs()[0].name: x})
    rows = [sess.run(None, {sess.get_inputs()[0].name: x[i : i + 1]}) for i in range(single)]
    ones = [np.concatenate([r[k] for r in rows]) for k in range(len(batch))] if rows else None
    return batch, ones


def same_rows(got, want):
    """Per row: every value identical (floats compared as bit patterns)."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return None
    if got.dtype.kind == "f":
        got, want = got.view(np.uint32), want.view(np.uint32)
    return (got == want).reshape(len(got), -1).all(axis=1)


def check_int8(args, x):
    ok = True
    for label, level in LEVELS:
        sess = session(args.int8, level)
        names, want = expected(args.dir, "int8", sess, args.int8)
        batch, ones = run(sess, x, args.single_window_runs)
        for mode, got_all in [(f"batch {len(x)}", batch), ("batch 1", ones)]:
            if got_all is None:
                continue
            n = len(got_all[0])
            identical = np.ones(n, dtype=bool)
            notes = []
            for name, got, ref in zip(names, got_all, want):
                rows = same_rows(got, ref[:n])
                if rows is None:
                    notes.append(f"{name}: {got.dtype}{got.shape} vs {ref.dtype}{ref[:n].shape}")
                    identical[:] = False
                    continue
                if not rows.all():
                    notes.append(f"{name}: {int((~rows).sum())} windows differ, first {int(np.argmin(rows))}")
                identical &= rows
            count = int(identical.sum())
            print(
                f"int8 [{label}, {mode}]: {count}/{n} windows identical in all "
                f"{len(names)} outputs ({', '.join(names)})"
            )
            for note in notes:
                print(f"    {note}")
            ok &= count == n and not notes
    return ok


def check_f32(args, x):
    ok = True
    for label, level in LEVELS:
        sess = session(args.f32, level)
        names, want = expected(args.dir, "f32", sess, args.f32)
        batch, ones = run(sess, x, args.single_window_runs)
        for mode, got_all in [(f"batch {len(x)}", batch), ("batch 1", ones)]:
            if got_all is None:
                continue
            diffs = []
            for name, got, ref in zip(names, got_all, want):
                ref = ref[: len(got)]
                if got.dtype != ref.dtype or got.shape != ref.shape:
                    print(f"f32 [{label}, {mode}]: {name} is {got.dtype}{got.shape}, expected {ref.dtype}{ref.shape}")
                    ok = False
                    continue
                # NaN anywhere makes the maximum NaN, which fails the comparison below.
                diffs.append((name, float(np.max(np.abs(got.astype(np.float64) - ref)))))
            worst = max((d for _, d in diffs), default=float("nan"))
            print(
                f"f32 [{label}, {mode}]: max abs diff {worst:.2e} (tolerance {args.tolerance:.0e}; "
                + ", ".join(f"{n} {d:.2e}" for n, d in diffs)
                + ")"
            )
            ok &= worst <= args.tolerance
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--int8", required=True)
    p.add_argument("--f32", required=True)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--single-window-runs", type=int, default=64)
    p.add_argument("--onnxruntime-version", help="fail unless this version is imported")
    args = p.parse_args()
    if args.onnxruntime_version and ort.__version__ != args.onnxruntime_version:
        sys.exit(f"onnxruntime {ort.__version__} imported, {args.onnxruntime_version} expected")
    x = np.load(os.path.join(args.dir, "x.npy"))
    args.single_window_runs = min(args.single_window_runs, len(x))
    print(f"onnxruntime {ort.__version__} (CPUExecutionProvider), numpy {np.__version__}, {len(x)} windows of {x.shape[1]} inputs")
    ok = check_int8(args, x)
    ok &= check_f32(args, x)
    print("onnxruntime parity: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
