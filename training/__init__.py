"""Build-time tooling: data validation, fine-tuning, evaluation and ONNX export."""
