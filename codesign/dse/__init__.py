"""Design-space exploration (docs/dse.md): `space` (the SPACE.yaml schema and its points),
`hardware` (a point's card edited as data), `evaluate` (one point; `map_design` is the one
adapter onto the mapper), `store` (the resumable SQLite results), `executors` (inline, process
pool, Ray), `sweep` (strategies and Pareto fronts), `pareto`, `output` (tables and plots)."""
