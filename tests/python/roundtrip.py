"""Runs a policy exported by `ds-td3 export` with safetensors + scipy.sparse + numpy alone and
compares its actions with those `ds-td3 act` printed for the same observations.

Usage: python3 roundtrip.py ACTOR.safetensors OBS.csv ACTIONS.csv [TOLERANCE]

Prints the largest absolute difference; exits 0 when it is within TOLERANCE (default 1e-6),
1 when it is not, and 3 when a Python package is missing (the Rust test then skips visibly).
"""
import sys

try:
    import numpy as np
    import scipy.sparse as sp
    from safetensors import safe_open
except ImportError as e:
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(3)


# --- the README's snippet (keep the two identical) ---
def load_actor(path):
    with safe_open(path, framework="numpy") as f:
        meta, t = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    layers = []
    for i in range(int(meta["num_layers"])):
        shape = tuple(int(d) for d in meta[f"layers.{i}.shape"].strip("[]").split(","))
        if meta[f"layers.{i}.kind"] == "sparse":
            w = sp.csr_matrix((t[f"layers.{i}.values"], t[f"layers.{i}.indices"], t[f"layers.{i}.indptr"]), shape=shape)
        else:
            w = t[f"layers.{i}.weight"]
        layers.append((w, t[f"layers.{i}.bias"], meta[f"layers.{i}.activation"]))
    return layers, np.float32(meta["action_bound"])

def act(actor, obs):  # obs: (batch, obs_dim) float32 -> (batch, act_dim)
    layers, bound = actor
    h = obs.T  # features × batch, as the network computes
    for w, b, activation in layers:
        h = w @ h + b[:, None]
        h = np.maximum(h, 0) if activation == "relu" else bound * np.tanh(h)
    return h.T
# --- end of the snippet ---


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    path, obs_csv, actions_csv = sys.argv[1:4]
    tolerance = float(sys.argv[4]) if len(sys.argv) == 5 else 1e-6
    actor = load_actor(path)
    obs = np.loadtxt(obs_csv, delimiter=",", dtype=np.float32, ndmin=2)
    ours = np.loadtxt(actions_csv, delimiter=",", dtype=np.float32, ndmin=2)
    theirs = np.asarray(act(actor, obs))
    if theirs.dtype != np.float32 or theirs.shape != ours.shape:
        print(f"actions are {theirs.dtype} {theirs.shape}, ds-td3 act printed {ours.shape}")
        return 1
    diff = float(np.max(np.abs(theirs.astype(np.float64) - ours.astype(np.float64))))
    kinds = ", ".join(
        f"{'sparse' if sp.issparse(w) else 'dense'} {w.shape[0]}x{w.shape[1]}" for w, _, _ in actor[0]
    )
    print(f"{obs.shape[0]} observations, layers {kinds}: max |python - ds-td3| = {diff:.3e}")
    return 0 if diff <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
