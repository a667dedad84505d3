"""Serving: ONNX export, onnxruntime/PyTorch separation engine, batch jobs, the functional API
(``api.separate``) and the `marssep separate` CLI."""
