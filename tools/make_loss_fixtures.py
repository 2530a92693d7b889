"""Reference distillation losses for tests/unit/test_losses.c, from PyTorch autograd.

KL(p || q) and JS divergence at temperature tau (p = softmax(teacher / tau), q = softmax(student / tau)),
over the full vocabulary and over the teacher's top-k support (student gathered at the teacher's top-k
indices, both renormalised), weighted per row (one row has weight 0), and the gradient of the weighted sum
with respect to the student logits. Writes tests/fixtures/losses/losses.safetensors.

Recreate the reference venv:  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch safetensors numpy
Run from the repo root:       .venv-ref/bin/python tools/make_loss_fixtures.py
"""
import torch
from safetensors.torch import save_file

N, V, K, TAU = 6, 37, 8, 2.0
torch.manual_seed(1234)
student = (torch.randn(N, V) * 3).double()
teacher = (torch.randn(N, V) * 3).double()
weight = torch.tensor([0.5, 1.0, 0.0, 0.25, 2.0, 1.0], dtype=torch.float64)


def divergence(s, t, js):
    lq = torch.log_softmax(s / TAU, dim=-1)
    lp = torch.log_softmax(t / TAU, dim=-1)
    if not js:
        return (lp.exp() * (lp - lq)).sum(-1)
    lm = torch.logsumexp(torch.stack([lp, lq]), dim=0) - torch.log(torch.tensor(2.0, dtype=torch.float64))
    return 0.5 * (lp.exp() * (lp - lm)).sum(-1) + 0.5 * (lq.exp() * (lq - lm)).sum(-1)


top_vals, top_idx = torch.topk(teacher, K, dim=-1)
out = {"student": student.float(), "teacher": teacher.float(), "weight": weight.float(),
       "top_values": top_vals.float(), "top_indices": top_idx.to(torch.int32)}
for name, js in (("kl", False), ("js", True)):
    for support in ("full", "topk"):
        s = student.clone().requires_grad_(True)
        if support == "full":
            rows = divergence(s, teacher, js)
        else:
            rows = divergence(torch.gather(s, 1, top_idx), top_vals, js)
        total = (rows * weight).sum()
        total.backward()
        out[f"{name}_{support}_rows"] = rows.detach().float()
        out[f"{name}_{support}_grad"] = s.grad.float()
save_file({k: v.contiguous() for k, v in out.items()}, "tests/fixtures/losses/losses.safetensors")
print("wrote tests/fixtures/losses/losses.safetensors")
