"""The runner worker: executes scripts in its main thread and holds the warm objects.

Only this process imports torch, transformers or user code.
"""
