"""Experiments with the multi-task and fusion blocks (not tests, not timings):
`python -m benchmarks.experiments [--quick]`.

- `mmoe_synthetic`: the MMoE paper's synthetic benchmark (Ma et al., KDD 2018):
  shared-bottom, MMoE and PLE as the correlation of two regression tasks falls;
- `modality`: two-branch `Fusion` models when one modality is noise, and when one is
  missing at test time (with and without `modality_dropout`);
- `partial_labels`: half of one task's labels missing, learnt with masked task losses
  against dropping the samples without them.

Every run is seeded; each experiment repeats over several seeds and reports the mean
and standard deviation. Results go to a JSON file, PNG figures and a markdown table.
"""

EXPERIMENTS = ("mmoe_synthetic", "modality", "partial_labels")

__all__ = ["EXPERIMENTS"]
