"""Ray Tune trainables: thin wrappers around tune_gpt.train.train."""
