"""Code generation: lower a Cascade to real kernels (Apache TVM, optional extra ``tvm``).

`codesign.codegen.tvm` holds the public API (`compile_cascade`, `benchmark`, `cuda_source`,
`nvcc_compile`); TVM itself is imported only when a cascade is compiled.
"""
