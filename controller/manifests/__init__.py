"""Loading and validating manifests: files → YAML documents with lines → typed, checked ``Manifest``.

Pure apart from reading the files it is given. May import ``controller.vocab``; botocore only for the
ECS service model that ``ecsmodel`` checks fields against (data, never a client).
"""
