"""Performance workloads (W1 population mode at scale, W2 sample mode, W3 studies), their
baselines (a bare numpy floor and a naive per-agent Mesa model) and the scale table.

Run all with ``python -m benchmarks`` from the repository root; see BENCHMARKS.md.
"""
