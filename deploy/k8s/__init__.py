"""Kubernetes manifests: a kustomize base with dev and prod overlays, and a renderer."""
