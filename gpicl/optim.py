"""Adam with eps outside and eps_root inside the square root, as in the authors' (optax) code.

update = m_hat / (sqrt(v_hat + eps_root) + eps). With eps_root = 1e-8 the denominator never falls
below ~1e-4, which slows learning on the plateau where gradients are tiny
(docs/paper.md#objective-and-meta-training); torch.optim.Adam has no eps_root, hence this small
class.
"""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, steps: int, schedule: dict | None) -> float:
    """Multiplier of the base learning rate at 0-based `step` of a `steps`-step run.

    Linear warm-up from 0 over `warmup_steps`, then `decay` (constant, linear or cosine) from 1
    to `final_fraction` at the last step; None: a constant learning rate (the paper's).
    """
    if not schedule:
        return 1.0
    warmup = schedule["warmup_steps"]
    if step < warmup:
        return (step + 1) / warmup
    if schedule["decay"] == "constant" or steps - 1 <= warmup:
        return 1.0
    progress = (step - warmup) / (steps - 1 - warmup)
    final = schedule["final_fraction"]
    if schedule["decay"] == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, eps_root=1e-8):
        if lr <= 0 or eps < 0 or eps_root < 0:
            raise ValueError(f"invalid Adam settings lr={lr} eps={eps} eps_root={eps_root}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
            step = self.state[params[0]]["step"] + 1
            for p in params:
                self.state[p]["step"] = step
            grads = [p.grad for p in params]
            ms = [self.state[p]["m"] for p in params]
            vs = [self.state[p]["v"] for p in params]
            torch._foreach_lerp_(ms, grads, 1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            # denom = sqrt(v / (1 - b2^t) + eps_root) + eps
            denom = torch._foreach_div(vs, 1 - b2**step)
            torch._foreach_add_(denom, group["eps_root"])
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])
            step_size = group["lr"] / (1 - b1**step)
            torch._foreach_addcdiv_(params, ms, denom, value=-step_size)
