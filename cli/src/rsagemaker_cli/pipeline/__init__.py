"""The SageMaker pipeline (SDK v3, the `pipeline` extra): its definition, local mode, shared helpers.

Only the pipeline commands (local/pipeline.py, aws/pipeline.py) import definition.py and
local_mode.py, and only when they run, so every other command works without the SDK.
"""
