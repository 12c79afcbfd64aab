"""Load and micro benchmarks (`make bench` = `python -m benchmarks.run`); see BENCHMARKS.md."""
