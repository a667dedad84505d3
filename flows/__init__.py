"""Prefect 3 flows over DVC and the marssep CLI (deployments in ../prefect.yaml)."""
