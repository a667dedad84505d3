"""Serving: ONNX export, onnxruntime/PyTorch separation engine, batch jobs and the `marssep separate` CLI."""
