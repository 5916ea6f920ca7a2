"""Reference implementations, one folder each; none imports anything of the model."""
