"""Shipping a trained run: its model as ONNX (fp32 and int8), run by ONNX Runtime.

`onnx_model` exports and checks, `quantize` makes the int8 model, `runtime` runs either with stated threads.
`trainlab.tools.export` puts them together for `trainlab export RUN`.
"""
