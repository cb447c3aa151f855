"""The core every command stands on: errors, the project, its settings, clients and SageMaker's files.

Nothing in core imports a command module (local/, aws/, config/, pipeline/).
"""
