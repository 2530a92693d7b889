"""Reference trajectories of MLX's optimizers and schedules for tests/unit/test_optim.c.

Runs mlx.optimizers (mlx on the CPU) for 10 steps on a 2-D and a 1-D parameter with a fixed
sequence of gradients, for each optimizer configuration ctune supports, and writes the
parameters after every step to tests/fixtures/optim/optim.json. Also samples mlx's schedules.

Recreate the reference venv:  python3 -m venv .venv-ref && .venv-ref/bin/pip install "mlx[cpu]" numpy
Run from the repo root:       .venv-ref/bin/python tools/make_optim_fixtures.py
"""
import json

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

STEPS = 10
rng = np.random.default_rng(1234)
W0 = rng.standard_normal((6, 5)).astype(np.float32)
B0 = rng.standard_normal((5,)).astype(np.float32)
GRADS = [(rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5,)).astype(np.float32))
         for _ in range(STEPS)]

CASES = [
    ("adam", {}, "Adam", {"learning_rate": 1e-2}),
    ("adam", {"bias_correction": True, "betas": [0.8, 0.99]}, "Adam",
     {"learning_rate": 1e-2, "bias_correction": True, "betas": [0.8, 0.99]}),
    ("adamw", {}, "AdamW", {"learning_rate": 1e-2}),
    ("adamw", {"weight_decay": 0.1, "bias_correction": True}, "AdamW",
     {"learning_rate": 1e-2, "weight_decay": 0.1, "bias_correction": True}),
    ("sgd", {}, "SGD", {"learning_rate": 1e-2}),
    ("sgd", {"momentum": 0.9, "weight_decay": 0.01, "dampening": 0.1}, "SGD",
     {"learning_rate": 1e-2, "momentum": 0.9, "weight_decay": 0.01, "dampening": 0.1}),
    ("sgd", {"momentum": 0.9, "nesterov": True}, "SGD",
     {"learning_rate": 1e-2, "momentum": 0.9, "nesterov": True}),
    ("adafactor", {}, "Adafactor", {}),
    ("adafactor", {"relative_step": False, "beta_1": 0.9, "weight_decay": 0.01, "scale_parameter": False},
     "Adafactor", {"learning_rate": 1e-2, "relative_step": False, "beta_1": 0.9, "weight_decay": 0.01,
                   "scale_parameter": False}),
    ("muon", {}, "Muon", {"learning_rate": 1e-2}),
    ("muon", {"nesterov": False, "weight_decay": 0.0, "momentum": 0.9}, "Muon",
     {"learning_rate": 1e-2, "nesterov": False, "weight_decay": 0.0, "momentum": 0.9}),
]


def run(cls, kwargs):
    opt = getattr(optim, cls)(**kwargs)
    params = {"w": mx.array(W0), "b": mx.array(B0)}
    traj = []
    for gw, gb in GRADS:
        params = opt.apply_gradients({"w": mx.array(gw), "b": mx.array(gb)}, params)
        mx.eval(params)
        traj.append({"w": np.array(params["w"]).ravel().tolist(), "b": np.array(params["b"]).ravel().tolist()})
    return traj


out = {
    "w0": W0.ravel().tolist(), "b0": B0.ravel().tolist(), "w_shape": list(W0.shape),
    "grads": [{"w": gw.ravel().tolist(), "b": gb.ravel().tolist()} for gw, gb in GRADS],
    "cases": [],
    "schedules": [],
}
for name, config, cls, kwargs in CASES:
    out["cases"].append({"optimizer": name, "config": config,
                         "learning_rate": kwargs.get("learning_rate", 0.0), "steps": run(cls, kwargs)})

SCHEDULES = [
    ("cosine_decay", [1e-2, 20], lambda: optim.cosine_decay(1e-2, 20)),
    ("cosine_decay", [1e-2, 20, 1e-4], lambda: optim.cosine_decay(1e-2, 20, 1e-4)),
    ("linear_schedule", [0.0, 1e-2, 10], lambda: optim.linear_schedule(0.0, 1e-2, 10)),
    ("exponential_decay", [1e-2, 0.9], lambda: optim.exponential_decay(1e-2, 0.9)),
    ("step_decay", [1e-2, 0.5, 4], lambda: optim.step_decay(1e-2, 0.5, 4)),
]
for name, args, make in SCHEDULES:
    fn = make()
    out["schedules"].append({"name": name, "arguments": args,
                             "values": [float(fn(mx.array(s))) for s in range(30)]})

with open("tests/fixtures/optim/optim.json", "w") as f:
    json.dump(out, f)
print("wrote tests/fixtures/optim/optim.json")
