"""Passes: pure ``Cascade -> Cascade`` rewrites registered by name and run as text pipelines.

    from codesign.passes import run_pipeline
    quantized, reports = run_pipeline(cascade, "quantize{bits=4,group=128},canonicalize")

See docs/passes.md for the syntax, every pass and its options.
"""

# Importing the pass modules registers them (canonicalize, quantize, quantize-activations,
# mixed-precision) in `PASSES`.
from codesign.passes import attention_1pass as _attention_1pass  # noqa: F401
from codesign.passes import canonicalize as _canonicalize  # noqa: F401
from codesign.passes import flash_attention as _flash_attention  # noqa: F401
from codesign.passes import fuse as _fuse  # noqa: F401
from codesign.passes import fuse_elementwise as _fuse_elementwise  # noqa: F401
from codesign.passes import lut_precompute as _lut_precompute  # noqa: F401
from codesign.passes import mixed_precision as _mixed_precision  # noqa: F401
from codesign.passes import prune as _prune  # noqa: F401
from codesign.passes import prune_adaptive as _prune_adaptive  # noqa: F401
from codesign.passes import prune_structured as _prune_structured  # noqa: F401
from codesign.passes import quantize as _quantize  # noqa: F401
from codesign.passes.pipeline import (
    PASSES,
    PassContext,
    PassInvocation,
    Pipeline,
    known_passes,
    make_pass,
    parse_pipeline,
    register_pass,
)
from codesign.passes.report import (
    NumericalError,
    PassReport,
    TensorChange,
    format_reports,
    quantized_weight_bits,
    run_pipeline,
)

__all__ = [
    "PASSES", "NumericalError", "PassContext", "PassInvocation", "PassReport", "Pipeline",
    "TensorChange", "format_reports", "known_passes", "make_pass", "parse_pipeline",
    "quantized_weight_bits", "register_pass", "run_pipeline",
]  # fmt: skip
