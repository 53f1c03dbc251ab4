"""gpicl: General-Purpose In-Context Learning by Meta-Learning Transformers, reproduced.

`gpicl.InContextClassifier` is imported on first use, so that `import gpicl.<module>` (the CLI,
the workflow) does not pay for scikit-learn."""

__all__ = ["InContextClassifier"]


def __getattr__(name: str):
    if name == "InContextClassifier":
        from gpicl.classifier import InContextClassifier

        return InContextClassifier
    raise AttributeError(f"module 'gpicl' has no attribute {name!r}")
