"""The foundation every other layer stands on: errors, the format table, model metadata, verdicts and metrics,
atomic files, progress bars, machine facts, signals and quiet TensorFlow logging. Imports nothing else of
edge_dfd and no TensorFlow (numpy and the standard library only)."""
