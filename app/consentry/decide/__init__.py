"""Decisions per use: multi-frame evidence, and (later) door and checkout policies."""
