"""Evaluation: signal metrics (SI-SDR, bss_eval), oracle masks, semantic scores, report tables."""
