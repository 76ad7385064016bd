"""Model cards (one JSON file per known model), installed as ``zfnet.model_cards``.

Converted weight files (``*.safetensors``) may be placed here by hand; they are never committed.
"""
