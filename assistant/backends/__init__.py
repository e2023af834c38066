"""Other ways to run the embedding model than sentence-transformers on torch, each an `embed.Embedder`.

`openvino`: the model exported to OpenVINO IR, in fp32 or statically quantized to int8 with NNCF
(`export_openvino`, `OpenVINOEmbedder`). Modules here import their runtime only when used, so importing
this package costs nothing.
"""
