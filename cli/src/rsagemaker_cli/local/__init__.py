"""Commands that run the project's images on this machine against an emulated /opt/ml (no AWS)."""
