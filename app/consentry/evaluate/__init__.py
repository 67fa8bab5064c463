"""Evaluations and benchmarks that use the vision path exactly as the appliance does."""
