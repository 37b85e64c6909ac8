"""Cost of Einsums that are not MAC nests (elementwise maps, softmax/norm reductions, gathers)
on a spatial architecture.

Model (documented in docs/hwmodels.md, "Non-MAC Einsums"): every PE executes one body or
reduction op per cycle, so ``compute_cycles = ceil(ops / PEs)``; each tensor's compulsory
footprint (`codesign.ir.stats`) crosses the outermost level (DRAM) once — inputs read, the
output written — so ``dram_cycles = words / bandwidth``, words counted as the MAC nests count
them (`array_words`: one per element when the dtype is wider than the word, packed when
narrower); cycles are the larger of the two.
Energy is one MAC-energy per op (an ALU op costs about a MAC of the same width; a conservative
choice) plus the DRAM per-word read/write energy.  Views (transpose, reshape, slice, concat
pieces) are free: they are folded into the address generation of their consumer, as layout
transforms are in Timeloop-style accelerators.
"""

from __future__ import annotations

import math

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.stats import einsum_stats
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions

VIEW_BOUND = "view"


def word_note(cascade: Cascade, arch: Arch) -> str:
    """What a report must say when tensors are wider than a spatial array's backing-store word:
    they are priced at one word per element, contractions and non-MAC Einsums alike
    (`array_words`); empty otherwise."""
    word = arch.levels[0].word_bits
    wide = sorted({t.dtype.value for t in cascade.tensors if t.dtype.bits > word})
    if not wide:
        return ""
    return (
        f"{', '.join(wide)} tensors priced at {arch.name}'s {word}-bit word (one word per "
        "element), contractions and non-MAC Einsums alike; quantize with --passes to price "
        "narrower storage"
    )


def array_words(cascade: Cascade, tensor: str, nbytes: int, word_bits: int) -> float:
    """Backing-store words of `nbytes` of `tensor` as the MAC nests count them (issue 11, item
    5): one array word per element for a tensor wider than the word (an unquantized f32 model on
    an int8 array is priced at the array word, contractions and epilogues alike); packed at its
    storage width when narrower (a pipeline's int4 codes)."""
    bits = cascade.tensor(tensor).dtype.bits if cascade.has_tensor(tensor) else 8
    elements = nbytes * 8 / bits
    return elements if bits >= word_bits else elements * bits / word_bits


def vector_cost(einsum: Einsum, cascade: Cascade, arch: Arch) -> Cost:
    """Price a non-MAC Einsum on `arch` (see the module docstring)."""
    stats = einsum_stats(einsum, cascade)
    if einsum.is_view:
        return Cost(0.0, 0.0, 0, 0.0, VIEW_BOUND, 0.0, 0.0, 0, ())
    ops = stats.flops
    pes = arch.compute.count
    compute_cycles = float(math.ceil(ops / pes)) if ops else 0.0
    dram = arch.levels[0]
    actions: list[TensorActions] = []
    read_words = write_words = 0.0
    for tensor, nbytes in stats.tensor_bytes:
        words = array_words(cascade, tensor, nbytes, dram.word_bits)
        is_out = tensor == einsum.output.tensor
        reads, fills = (0.0, words) if is_out else (words, 0.0)
        energy = reads * dram.read_energy_pj + fills * dram.write_energy_pj
        read_words += reads
        write_words += fills
        actions.append(TensorActions(tensor, reads, fills, 0.0, 0, energy))
    read_bw = dram.read_bandwidth_words_per_cycle
    write_bw = dram.write_bandwidth_words_per_cycle or read_bw
    dram_cycles = max(
        read_words / read_bw if read_bw else 0.0, write_words / write_bw if write_bw else 0.0
    )
    dram_energy = sum(a.energy_pj for a in actions)
    compute_energy = ops * arch.compute.mac_energy_pj
    cycles = max(compute_cycles, dram_cycles, 1.0)
    bound = COMPUTE_BOUND if compute_cycles >= dram_cycles else dram.name
    level = LevelCost(dram.name, 1, 0, dram_cycles, dram_energy, 0.0, tuple(actions))
    used = min(pes, ops) if ops else 0
    utilization = ops / (cycles * pes) if cycles else 0.0
    return Cost(
        cycles,
        dram_energy + compute_energy,
        0,
        utilization,
        bound,
        compute_cycles,
        compute_energy,
        used,
        (level,),
    )
