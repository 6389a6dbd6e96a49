"""servegen_core: load LLM-serving traces, characterize them, compose per-client workloads."""
