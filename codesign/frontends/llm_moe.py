"""The mixture-of-experts layer of the LLM builder (`codesign.frontends.llm`): Mixtral's and
Qwen-MoE's router, top-k experts and shared expert as Einsums (docs/llm.md "Mixture of experts")."""

from __future__ import annotations

from typing import TYPE_CHECKING

# llm.py imports this module only inside the builder, so llm is complete by then
from codesign.frontends.llm import _ACT
from codesign.frontends.llm_config import active_experts
from codesign.ir.builder import var_access
from codesign.ir.cascade import Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, Gathered

if TYPE_CHECKING:
    from codesign.frontends.llm import _LLMBuilder


def _v(name: str) -> Affine:
    return Affine.var(name)


def moe_layer(self: _LLMBuilder, p: str, x: str) -> str:
    """Mixture of experts: router, the top-k experts of every token, their weighted sum,
    plus the shared expert.  Routing is data: ``{p}expert_slot`` [b, s, k] picks, for
    each token's k choices, an entry of ``{p}experts_active`` [A] (the distinct experts
    this pass reads, `active_experts`), and ``{p}expert_weight`` [b, s, k] holds the
    renormalised router probabilities.  So the MACs are exactly T k per expert MLP and the
    expert weights read are A experts' (stats count a gathered dimension by its indices)."""
    c, b = self.c, self.b
    h, f, k = c.hidden, c.intermediate, c.experts_per_token
    tokens = self.batch * self.new
    router = self.weight(f"{p}w_router", (h, c.experts), ("IN", "OUT"))
    self.b.set_role(b.matmul(f"{p}router", x, router, src="Router"), Role.OUTPUT)
    n_active = active_experts(c, tokens)
    active = b.tensor(f"{p}experts_active", (n_active,), DType.I32, Role.INPUT, ranks=("A",))
    slot = b.tensor(
        f"{p}expert_slot", (self.batch, self.new, k), DType.I32, Role.INPUT,
        ranks=("B", "S", "K"),
    )  # fmt: skip
    gate_w = b.tensor(
        f"{p}expert_weight", (self.batch, self.new, k), self.dt, Role.INPUT,
        ranks=("B", "S", "K"),
    )  # fmt: skip
    expert = Gathered(active, (Gathered(slot, (_v("b"), _v("s"), _v("j"))),))
    ext = {"b": self.batch, "s": self.new, "j": k}

    def expert_linear(label: str, wname: str, src: Access, n_in: int, n_out: int) -> str:
        w = self.weight(f"{p}w_expert_{wname}", (c.experts, n_in, n_out), ("X", "IN", "OUT"))
        out = b.tensor(f"{p}{label}", (self.batch, self.new, k, n_out), self.dt,
                       ranks=("B", "S", "K", "OUT"))  # fmt: skip
        b.einsum(
            f"{p}{label}", Access(out, (_v("b"), _v("s"), _v("j"), _v("o"))),
            Binary(BinaryOp.MUL, src, Access(w, (expert, _v("i"), _v("o")))),
            {**ext, "o": n_out, "i": n_in}, ReduceOp.SUM, ("i",), op="Expert",
        )  # fmt: skip
        return out

    x_in = Access(x, (_v("b"), _v("s"), _v("i")))
    act = _ACT[c.activation]
    if c.gated_mlp:
        gate = expert_linear("expert_gate", "gate", x_in, h, f)
        up = expert_linear("expert_up", "up", x_in, h, f)
        hid = b.map(
            f"{p}expert_act", [gate, up],
            lambda g, u: Binary(BinaryOp.MUL, Unary(act, g), u), op="Activation",
        )  # fmt: skip
    else:
        up = expert_linear("expert_up", "up", x_in, h, f)
        hid = b.map(f"{p}expert_act", [up], lambda a: Unary(act, a), op="Activation")
    down = expert_linear(
        "expert_down", "down", Access(hid, (_v("b"), _v("s"), _v("j"), _v("i"))), f, h
    )
    y = b.tensor(f"{p}moe_combine", (self.batch, self.new, h), self.dt, ranks=("B", "S", "H"))
    b.einsum(
        f"{p}moe_combine", var_access(y, ("b", "s", "o")),
        Binary(BinaryOp.MUL, Access(down, (_v("b"), _v("s"), _v("j"), _v("o"))),
               Access(gate_w, (_v("b"), _v("s"), _v("j")))),
        {**ext, "o": h}, ReduceOp.SUM, ("j",), op="Expert",
    )  # fmt: skip
    if not c.shared_intermediate:
        return y
    shared = self.mlp(p, x, c.shared_intermediate, prefix="shared_")
    if c.shared_expert_gate:
        w = self.weight(f"{p}w_shared_expert_gate", (h, 1), ("IN", "OUT"))
        g = b.matmul(f"{p}shared_expert_gate", x, w, src="Linear")
        shared = b.map(
            f"{p}shared_expert_gate_mul", [shared, g],
            lambda s_, g_: Binary(BinaryOp.MUL, s_, Unary(UnaryOp.SIGMOID, g_)),
            op="Activation",
        )  # fmt: skip
    return self.add(f"{p}shared_add", y, shared)
